"""fal.ai's queue (https://docs.fal.ai/documentation/model-apis/inference/queue).

* ``POST {base}/{model}`` (``https://queue.fal.run/fal-ai/flux/schnell``) with
  ``Authorization: Key <FAL_KEY>`` and the model's input as JSON answers ``{"request_id",
  "status_url", "response_url", "cancel_url"}`` (https://docs.fal.ai/model-endpoints/queue).
  Those URLs are used as given: for a model under a sub-path they name the app, not the
  sub-path.
* ``GET status_url`` answers ``{"status": "IN_QUEUE", "queue_position"}``,
  ``IN_PROGRESS`` or ``COMPLETED``; then ``GET response_url`` gives the model's output
  (``{"images": [{"url", "width", "height", "content_type"}], "seed",
  "has_nsfw_concepts"}``) or its error (422 ``[{"type": "content_policy_violation", ...}]``
  for a safety block: permanent).
* ``PUT cancel_url`` cancels: 202 ``CANCELLATION_REQUESTED``, 400 ``ALREADY_COMPLETED``.
* Webhooks: ``?fal_webhook=<url>`` on the submit
  (https://docs.fal.ai/model-endpoints/webhooks); fal POSTs ``{"request_id", "status":
  "OK" | "ERROR", "payload": <the output>, "error"}``, signed with ED25519 over
  ``request_id \\n user_id \\n timestamp \\n hex(sha256(body))`` in the
  ``X-Fal-Webhook-Request-Id``, ``-User-Id``, ``-Timestamp`` and ``-Signature`` headers,
  checked against every key of fal's JWKS (``https://rest.fal.ai/.well-known/jwks.json``,
  cacheable for 24 hours; timestamps within 5 minutes). The check needs the
  ``cryptography`` package; without it fal's webhooks are refused and jobs are polled.
* Safety: with ``enable_safety_checker`` fal blacks out a flagged image and says so in
  ``has_nsfw_concepts``; that is a safety block, not an image.
* Image URLs (fal.media) are fetched once, like every result URL.
"""

from __future__ import annotations

import base64
import hashlib
import threading
import time
from typing import Any
from urllib.parse import quote

import requests

from ..contract import PreparedRequest
from ..exceptions import PermanentProviderError, ProviderError, TransientProviderError
from ..remote import clip, json_body
from .hosted import (
    ASYNC_OPTIONS,
    FAILED,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    AsyncJobProvider,
    Job,
    JobState,
    WebhookRejected,
)

WEBHOOK_TOLERANCE = 300
JWKS_TTL = 24 * 3600

# fal's FLUX endpoints take image_size as {"width", "height"} (or a preset name); the limits
# below (multiples of 16 up to 14142 px a side for [schnell] and [dev], steps 1-12 and 1-50,
# guidance 1-20) are from the endpoints' API pages (fal.ai/models/fal-ai/flux/schnell/api),
# which search did not return: correct them through the 'models' option if fal answers 422.
DEFAULT_MODELS: dict[str, dict[str, Any]] = {
    "fal-ai/flux/schnell": {"label": "FLUX.1 [schnell] on fal", "multiple": 16, "max_side": 14142, "steps": [1, 12]},
    "fal-ai/flux/dev": {
        "label": "FLUX.1 [dev] on fal",
        "multiple": 16,
        "max_side": 14142,
        "steps": [1, 50],
        "guidance": [1, 20],
    },
    "fal-ai/flux-pro/v1.1": {"label": "FLUX1.1 [pro] on fal", "multiple": 16, "max_side": 14142},
}


class FalProvider(AsyncJobProvider):
    label = "fal.ai"
    kind = "fal"
    service = "fal.ai"
    key_names = ("FAL_KEY",)
    default_models = DEFAULT_MODELS
    safety_markers = ("content_policy_violation",)
    default_options = {
        "api_key": None,  # None: settings.FAL_KEY, then env FAL_KEY
        "base_url": "https://queue.fal.run",
        "model": "fal-ai/flux/schnell",
        "models": {},
        "enable_safety_checker": True,
        "output_format": "png",  # or "jpeg"
        "jwks_url": "https://rest.fal.ai/.well-known/jwks.json",
        **ASYNC_OPTIONS,
    }

    def __init__(self, alias: str, **options: Any):
        super().__init__(alias, **options)
        self._jwks: tuple[float, list[dict[str, Any]]] = (0.0, [])
        self._lock = threading.Lock()

    def headers(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Key {key}"}

    def looks_like_ours(self, model: str) -> bool:
        return model.startswith("fal-ai/")

    def submit(self, session: requests.Session, request: PreparedRequest, hook: str) -> Job:
        caps = self.caps(request.model)
        body: dict[str, Any] = {
            "prompt": request.prompt,
            "image_size": {"width": request.width, "height": request.height},
            "num_images": 1,
            "enable_safety_checker": bool(self.options["enable_safety_checker"]),
            "output_format": self.options["output_format"],
        }
        if request.seed is not None:
            body["seed"] = request.seed
        if caps.steps is not None and request.steps is not None:
            body["num_inference_steps"] = request.steps
        if caps.guidance is not None and request.guidance_scale is not None:
            body["guidance_scale"] = request.guidance_scale
        url = f"{self.base_url()}/{request.model}"
        if hook:
            url += f"?fal_webhook={quote(hook, safe='')}"
        response = self.call(session, "POST", url, "queueing the request", json=body)
        data = json_body(response) or {}
        job_id = str(data.get("request_id") or "")
        if not job_id:
            raise TransientProviderError("fal.ai queued the request but returned no request_id.")
        root = self._request_root(request.model, job_id)
        return Job(
            id=job_id,
            model=request.model,
            urls={
                "status": data.get("status_url") or f"{root}/status",
                "response": data.get("response_url") or root,
                "cancel": data.get("cancel_url") or f"{root}/cancel",
            },
        )

    def poll(self, session: requests.Session, job: Job) -> JobState:
        response = self.call(session, "GET", job.urls["status"], f"checking request {job.id}")
        data = json_body(response) or {}
        status = str(data.get("status") or "")
        if status == "IN_QUEUE":
            position = data.get("queue_position")
            return JobState(QUEUED, f"queued at fal.ai (position {position})" if position is not None else "queued")
        if status == "IN_PROGRESS":
            return JobState(RUNNING, "fal.ai is generating")
        if status != "COMPLETED":
            return JobState(RUNNING, status or "waiting for fal.ai")
        if data.get("error"):
            return JobState(FAILED, error=self._failure(data.get("error"), data.get("error_type"), job))
        try:
            result = self.call(session, "GET", job.urls["response"], f"reading the result of request {job.id}")
        except ProviderError as exc:
            # The job is over either way: a transient failure fails this attempt (the job queue
            # retries it) rather than asking again for a result that is not coming.
            return JobState(FAILED, error=exc)
        return self._output(json_body(result), job)

    def _failure(self, error: Any, kind: Any, job: Job) -> PermanentProviderError | TransientProviderError:
        text = self.error_text(error) if not isinstance(error, str) else clip(error, 300)
        if self.is_safety_block(error, f"{text} {kind or ''}"):
            return self.safety_error(text)
        return PermanentProviderError(f"fal.ai request {job.id} failed: {text or 'no reason given'}.")

    def _output(self, output: Any, job: Job) -> JobState:
        if not isinstance(output, dict):
            return JobState(FAILED, error=PermanentProviderError(f"fal.ai request {job.id} answered without JSON."))
        flagged = output.get("has_nsfw_concepts") or []
        if any(flagged):
            return JobState(FAILED, error=self.safety_error("the safety checker flagged the image"))
        images = output.get("images") or []
        url = images[0].get("url") if images and isinstance(images[0], dict) else ""
        return JobState(
            SUCCEEDED,
            result_url=str(url or ""),
            seed=output.get("seed"),
            metadata={"timings": output.get("timings")},
        )

    def state_from_webhook(self, payload: Any, job: Job) -> JobState | None:
        if not isinstance(payload, dict) or str(payload.get("request_id") or "") != job.id:
            return None
        if payload.get("status") == "OK":
            return self._output(payload.get("payload"), job)
        return JobState(
            FAILED, error=self._failure(payload.get("payload") or payload.get("error"), payload.get("error"), job)
        )

    def _request_root(self, model: str, job_id: str) -> str:
        # The queue's request URLs name the app ("fal-ai/flux"), not the endpoint's sub-path
        # ("fal-ai/flux/schnell"); rebuilt only when a job id is all we have (a later cancel).
        app = "/".join(model.split("/")[:2])
        return f"{self.base_url()}/{app}/requests/{job_id}"

    def cancel_job(self, session: requests.Session, job: Job) -> bool:
        url = job.urls.get("cancel") or f"{self._request_root(job.model, job.id)}/cancel"
        try:
            self.call(session, "PUT", url, f"cancelling request {job.id}")
        except PermanentProviderError:
            return False  # 400 ALREADY_COMPLETED: nothing left to stop
        return True

    # --- webhooks ----------------------------------------------------------------------------------

    def _keys(self) -> list[dict[str, Any]]:
        with self._lock:
            fetched, keys = self._jwks
            if keys and time.monotonic() - fetched < JWKS_TTL:
                return keys
            try:
                response = requests.get(self.options["jwks_url"], timeout=float(self.options["request_timeout"]))
                body = json_body(response) if response.status_code == 200 else None
            except requests.RequestException:
                body = None
            keys = [k for k in (body or {}).get("keys", []) if isinstance(k, dict) and k.get("x")]
            if keys:
                self._jwks = (time.monotonic(), keys)
            return keys

    def verify_webhook(self, headers: dict[str, str], body: bytes) -> None:
        try:
            from cryptography.exceptions import InvalidSignature
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
        except ImportError:
            raise WebhookRejected(
                "fal.ai signs webhooks with ED25519; install the cryptography package to accept them."
            ) from None
        names = ("x-fal-webhook-request-id", "x-fal-webhook-user-id", "x-fal-webhook-timestamp")
        request_id, user_id, timestamp = (headers.get(name, "") for name in names)
        signature = headers.get("x-fal-webhook-signature", "")
        if not (request_id and user_id and timestamp and signature):
            raise WebhookRejected("fal.ai webhook without its X-Fal-Webhook-* signature headers.")
        try:
            if abs(time.time() - int(timestamp)) > WEBHOOK_TOLERANCE:
                raise WebhookRejected("fal.ai webhook with a timestamp more than 5 minutes off (a replay?).")
            signature_bytes = bytes.fromhex(signature)
        except ValueError:
            raise WebhookRejected("fal.ai webhook with a malformed timestamp or signature.") from None
        message = "\n".join([request_id, user_id, timestamp, hashlib.sha256(body).hexdigest()]).encode()
        keys = self._keys()
        if not keys:
            raise WebhookRejected("fal.ai's public keys (JWKS) could not be fetched to check the webhook.")
        for jwk in keys:
            try:
                raw = base64.urlsafe_b64decode(jwk["x"] + "=" * (-len(jwk["x"]) % 4))
                Ed25519PublicKey.from_public_bytes(raw).verify(signature_bytes, message)
                return
            except (InvalidSignature, ValueError):
                continue
        raise WebhookRejected("fal.ai webhook with a wrong signature.")
