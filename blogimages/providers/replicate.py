"""Replicate's predictions API (https://replicate.com/docs/reference/http).

* Official models (``black-forest-labs/flux-schnell``) are run with
  ``POST {base}/models/{owner}/{name}/predictions``; a pinned version
  (``owner/name:<version id>``) with ``POST {base}/predictions`` and ``{"version"}``
  (https://replicate.com/docs/topics/predictions/create-a-prediction). Auth is
  ``Authorization: Bearer <REPLICATE_API_TOKEN>``.
* The answer is a prediction: ``{"id", "status", "output", "error", "urls": {"get",
  "cancel"}}``; ``status`` is ``starting``, ``processing``, ``succeeded``, ``failed`` or
  ``canceled``. With ``Prefer: wait=<seconds>`` (1-60) Replicate holds the request open
  and a quick model answers already ``succeeded`` (the ``wait`` option; the job loop then
  never polls).
* ``GET urls.get`` polls; ``POST urls.cancel`` cancels.
* Output files (``output``: one URL, or a list of them, depending on the model) are
  served from replicate.delivery and deleted after an hour; they are fetched at once,
  once.
* Webhooks: ``webhook`` and ``webhook_events_filter: ["completed"]`` in the create body
  (https://replicate.com/docs/topics/webhooks/receive-webhook); the body is the
  prediction. Replicate signs every delivery the Standard Webhooks way
  (https://replicate.com/docs/topics/webhooks/verify-webhook): ``webhook-id``,
  ``webhook-timestamp`` and ``webhook-signature`` (space-separated ``v1,<base64>``)
  headers, HMAC-SHA256 of ``{id}.{timestamp}.{body}`` keyed with the base64 part of the
  account's ``whsec_...`` secret, which is the ``webhook_secret`` option, env
  ``REPLICATE_WEBHOOK_SECRET``, or fetched once from ``GET {base}/webhooks/default/secret``.
* Safety: a prediction that trips the safety checker fails with "The input or output
  was flagged as sensitive" (E005); that is permanent. Error codes:
  https://replicate.com/docs/reference/error-codes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import threading
import time
from typing import Any

import requests

from ..contract import PreparedRequest
from ..exceptions import PermanentProviderError, TransientProviderError
from ..remote import clip, json_body
from .hosted import (
    ASYNC_OPTIONS,
    CANCELLED,
    FAILED,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    AsyncJobProvider,
    Job,
    JobState,
    WebhookRejected,
)

#: Seconds a webhook's timestamp may be from our clock (Standard Webhooks' advice: 5 minutes).
WEBHOOK_TOLERANCE = 300

# The FLUX models' inputs as their Replicate model pages list them (aspect_ratio, not a
# size; num_inference_steps; guidance for [dev]; output_format webp/jpg/png). Search confirmed
# the input names from client code, not the ranges from the model pages: correct them through
# the 'models' option if Replicate answers 422.
RATIOS = ["1:1", "16:9", "21:9", "3:2", "2:3", "4:5", "5:4", "3:4", "4:3", "9:16", "9:21"]
DEFAULT_MODELS: dict[str, dict[str, Any]] = {
    "black-forest-labs/flux-schnell": {"label": "FLUX.1 [schnell]", "aspect_ratios": RATIOS, "steps": [1, 4]},
    "black-forest-labs/flux-dev": {
        "label": "FLUX.1 [dev]",
        "aspect_ratios": RATIOS,
        "steps": [1, 50],
        "guidance": [0, 10],
    },
    "black-forest-labs/flux-1.1-pro": {"label": "FLUX1.1 [pro]", "aspect_ratios": RATIOS},
}


class ReplicateProvider(AsyncJobProvider):
    label = "Replicate"
    kind = "replicate"
    service = "Replicate"
    key_names = ("REPLICATE_API_TOKEN",)
    default_models = DEFAULT_MODELS
    safety_markers = ("flagged as sensitive", "(E005)", "nsfw")
    default_options = {
        "api_key": None,  # None: settings.REPLICATE_API_TOKEN, then env REPLICATE_API_TOKEN
        "base_url": "https://api.replicate.com/v1",
        "model": "black-forest-labs/flux-schnell",  # or "owner/name:<version id>" (add it under 'models')
        "models": {},
        "wait": 0,  # seconds for "Prefer: wait" (1-60); 0 answers at once and the job polls
        "output_format": "png",  # or "webp", "jpg"
        "webhook_secret": None,  # None: env REPLICATE_WEBHOOK_SECRET, else fetched from Replicate once
        **ASYNC_OPTIONS,
    }

    def __init__(self, alias: str, **options: Any):
        super().__init__(alias, **options)
        self._secret: str = ""
        self._lock = threading.Lock()

    def looks_like_ours(self, model: str) -> bool:
        return "/" in model and ":" not in model.split("/")[0]

    def submit(self, session: requests.Session, request: PreparedRequest, hook: str) -> Job:
        caps = self.caps(request.model)
        model_input: dict[str, Any] = {
            "prompt": request.prompt,
            "num_outputs": 1,
            "output_format": self.options["output_format"],
        }
        if "aspect_ratio" in request.extra:
            model_input["aspect_ratio"] = request.extra["aspect_ratio"]
        else:
            model_input.update(width=request.width, height=request.height)
        if request.seed is not None:
            model_input["seed"] = request.seed
        if caps.steps is not None and request.steps is not None:
            model_input["num_inference_steps"] = request.steps
        if caps.guidance is not None and request.guidance_scale is not None:
            model_input["guidance"] = request.guidance_scale
        name, _, version = request.model.partition(":")
        body: dict[str, Any] = {"input": model_input}
        if version:
            url = f"{self.base_url()}/predictions"
            body["version"] = version
        else:
            url = f"{self.base_url()}/models/{name}/predictions"
        if hook:
            body.update(webhook=hook, webhook_events_filter=["completed"])
        headers = {}
        wait = int(self.options["wait"] or 0)
        if wait:
            headers["Prefer"] = f"wait={max(1, min(60, wait))}"
        # A held request may take the whole wait; give the HTTP call that much more.
        timeout = float(self.options["request_timeout"]) + wait
        response = self.call(
            session, "POST", url, "creating the prediction", json=body, headers=headers, timeout=timeout
        )
        data = json_body(response) or {}
        job_id = str(data.get("id") or "")
        if not job_id:
            raise TransientProviderError("Replicate accepted the prediction but returned no id.")
        urls = data.get("urls") or {}
        job = Job(
            id=job_id,
            model=request.model,
            urls={
                "get": urls.get("get") or f"{self.base_url()}/predictions/{job_id}",
                "cancel": urls.get("cancel") or f"{self.base_url()}/predictions/{job_id}/cancel",
            },
        )
        job.state = self._state(data, job)
        return job

    def poll(self, session: requests.Session, job: Job) -> JobState:
        response = self.call(session, "GET", job.urls["get"], f"checking prediction {job.id}")
        return self._state(json_body(response) or {}, job)

    def _state(self, data: dict[str, Any], job: Job) -> JobState:
        status = str(data.get("status") or "")
        metrics = data.get("metrics") or {}
        if status == "succeeded":
            output = data.get("output")
            url = output[0] if isinstance(output, list) and output else output
            return JobState(
                SUCCEEDED,
                result_url=url if isinstance(url, str) else "",
                metadata={"predict_time": metrics.get("predict_time")},
            )
        if status == "failed":
            error = clip(data.get("error") or "no reason given", 300)
            if self.is_safety_block(None, error):
                return JobState(FAILED, error=self.safety_error(error))
            return JobState(FAILED, error=PermanentProviderError(f"Replicate prediction {job.id} failed: {error}."))
        if status in ("canceled", "aborted"):
            return JobState(CANCELLED)
        if status == "processing":
            return JobState(RUNNING, "Replicate is generating")
        return JobState(QUEUED, "starting on Replicate")

    def state_from_webhook(self, payload: Any, job: Job) -> JobState | None:
        if not isinstance(payload, dict) or str(payload.get("id") or "") != job.id:
            return None
        state = self._state(payload, job)
        return state if state.status in (SUCCEEDED, FAILED, CANCELLED) else None

    def cancel_job(self, session: requests.Session, job: Job) -> bool:
        url = job.urls.get("cancel") or f"{self.base_url()}/predictions/{job.id}/cancel"
        self.call(session, "POST", url, f"cancelling prediction {job.id}")
        return True

    # --- webhooks ----------------------------------------------------------------------------------

    def signing_secret(self) -> str:
        secret = self.options["webhook_secret"] or os.environ.get("REPLICATE_WEBHOOK_SECRET") or self._secret
        if secret:
            return secret
        key = self.api_key()
        if not key:
            return ""
        with self._lock:
            if not self._secret:
                try:
                    response = requests.get(
                        f"{self.base_url()}/webhooks/default/secret",
                        headers=self.headers(key),
                        timeout=float(self.options["request_timeout"]),
                    )
                except requests.RequestException:
                    return ""
                body = json_body(response) if response.status_code == 200 else None
                self._secret = str(body.get("key") or "") if isinstance(body, dict) else ""
            return self._secret

    def verify_webhook(self, headers: dict[str, str], body: bytes) -> None:
        webhook_id = headers.get("webhook-id", "")
        timestamp = headers.get("webhook-timestamp", "")
        signatures = headers.get("webhook-signature", "")
        if not (webhook_id and timestamp and signatures):
            raise WebhookRejected("Replicate webhook without webhook-id, webhook-timestamp and webhook-signature.")
        try:
            sent = int(timestamp)
        except ValueError:
            raise WebhookRejected("Replicate webhook with a timestamp that is not a number.") from None
        if abs(time.time() - sent) > WEBHOOK_TOLERANCE:
            raise WebhookRejected("Replicate webhook with a timestamp more than 5 minutes off (a replay?).")
        secret = self.signing_secret()
        if not secret:
            raise WebhookRejected(
                "No Replicate webhook secret to check the signature with (set REPLICATE_WEBHOOK_SECRET)."
            )
        try:
            key = base64.b64decode(secret.removeprefix("whsec_"))
        except (binascii.Error, ValueError):
            raise WebhookRejected("The Replicate webhook secret is not whsec_<base64>.") from None
        signed = webhook_id.encode() + b"." + timestamp.encode() + b"." + body
        expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        for candidate in signatures.split():
            version, _, signature = candidate.partition(",")
            if version == "v1" and hmac.compare_digest(expected, signature):
                return
        raise WebhookRejected("Replicate webhook with a wrong signature.")

    def check_health(self, info: dict[str, Any]) -> Any:
        # GET /account costs nothing and fails on a bad token.
        return self.health_get(f"{self.base_url()}/account", info, self.headers(self.api_key()))
