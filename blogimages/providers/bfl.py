"""Black Forest Labs' FLUX API: the hosted FLUX that the example styles run on ComfyUI.

Protocol (https://docs.bfl.ai/api_integration/integration_guidelines and BFL's own
integration notes, https://github.com/black-forest-labs/skills, skills/bfl-api):

* ``POST {base}/{model}`` (``/v1/flux-2-pro``, ...) with header ``x-key`` and a JSON body
  (``prompt``, ``width``, ``height``, ``seed``, ``safety_tolerance``, ``output_format``,
  ``webhook_url``, ``webhook_secret``) answers ``{"id", "polling_url"}``.
* ``GET polling_url`` (always the URL returned: the global endpoint routes jobs between
  clusters, so a URL rebuilt from the id may ask the wrong one) answers ``{"status"}``:
  ``Pending``, ``Ready`` (with ``result.sample``, a delivery URL, and ``result.seed``),
  ``Request Moderated`` / ``Content Moderated`` (safety: permanent), ``Error`` /
  ``Failed``, or ``Task not found``.
* ``result.sample`` expires 10 minutes after the job is ready
  (https://help.bfl.ai/articles/9532536301-which-api-endpoint-should-i-use): it is
  downloaded at once and only once.
* Webhooks: BFL POSTs the same body as a ``Ready`` poll to ``webhook_url`` and, when a
  ``webhook_secret`` was sent, signs the raw body with HMAC-SHA256 in
  ``X-BFL-Signature: sha256=<hex>`` (skills/bfl-api/references/webhook-integration.md).
  BFL's public API reference does not spell the signature out (search found it only in
  those integration notes), so the header is required but a delivery that fails it is
  only refused, never trusted: polling carries on.
* Cancel: search found no documented way to cancel a BFL job, so a cancel stops our
  waiting and says that BFL may still bill for the image.
* Errors: 401 key, 402 out of credit, 429 over the concurrency limit (24 running jobs on
  most endpoints), 5xx server trouble (skills/bfl-api/references/endpoints.md).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import requests
from django.utils.crypto import salted_hmac

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

# Sizes and parameters per model, from skills/bfl-api/references/endpoints.md ("Resolution
# constraints": minimum 64x64, at most 4 MP, both sides multiples of 16; [flex] takes steps
# 1-50 and guidance 1.5-10; safety_tolerance 0 strict to 5 permissive). FLUX1.1 [pro]'s
# limits (multiples of 32, 256-1440 a side) are from BFL's older API reference and were not
# confirmed by search; correct them through the 'models' option if BFL answers 422.
FLUX2 = {"multiple": 16, "min_side": 64, "max_pixels": 4 * 1024 * 1024, "safety_tolerance": [0, 5]}
DEFAULT_MODELS: dict[str, dict[str, Any]] = {
    "flux-2-pro": {**FLUX2, "label": "FLUX.2 [pro]"},
    "flux-2-max": {**FLUX2, "label": "FLUX.2 [max]"},
    "flux-2-flex": {**FLUX2, "label": "FLUX.2 [flex]", "steps": [1, 50], "guidance": [1.5, 10]},
    "flux-2-klein-4b": {**FLUX2, "label": "FLUX.2 [klein] 4B"},
    "flux-2-klein-9b": {**FLUX2, "label": "FLUX.2 [klein] 9B"},
    "flux-pro-1.1": {
        "label": "FLUX1.1 [pro]",
        "multiple": 32,
        "min_side": 256,
        "max_side": 1440,
        "safety_tolerance": [0, 6],
    },
}
SAFETY_STATUSES = {"Request Moderated", "Content Moderated"}


class BFLProvider(AsyncJobProvider):
    label = "FLUX API (Black Forest Labs)"
    kind = "bfl"
    service = "BFL"
    key_names = ("BFL_API_KEY",)
    default_models = DEFAULT_MODELS
    safety_markers = ("moderated", "content_policy_violation")
    can_cancel = False  # no documented cancel endpoint
    default_options = {
        "api_key": None,  # None: settings.BFL_API_KEY, then env BFL_API_KEY
        "base_url": "https://api.bfl.ai/v1",  # or https://api.eu.bfl.ai/v1, https://api.us.bfl.ai/v1
        "model": "flux-2-pro",
        "models": {},  # model table additions and overrides, see hosted.HostedModel
        "safety_tolerance": 2,
        "output_format": "png",  # or "jpeg"
        "webhook_secret": None,  # None: one derived from SECRET_KEY for this alias
        **ASYNC_OPTIONS,
    }

    def headers(self, key: str) -> dict[str, str]:
        return {"x-key": key, "accept": "application/json"}

    def webhook_secret(self) -> str:
        return (
            self.options["webhook_secret"]
            or salted_hmac("blogimages.bfl-webhook", self.alias, algorithm="sha256").hexdigest()
        )

    def submit(self, session: requests.Session, request: PreparedRequest, hook: str) -> Job:
        caps = self.caps(request.model)
        body: dict[str, Any] = {
            "prompt": request.prompt,
            "width": request.width,
            "height": request.height,
            "output_format": self.options["output_format"],
        }
        if request.seed is not None:
            body["seed"] = request.seed
        if caps.safety_tolerance is not None:
            low, high = caps.safety_tolerance
            body["safety_tolerance"] = max(low, min(high, int(self.options["safety_tolerance"])))
        if caps.steps is not None and request.steps is not None:
            body["steps"] = request.steps
        if caps.guidance is not None and request.guidance_scale is not None:
            body["guidance"] = request.guidance_scale
        if hook:
            body.update(webhook_url=hook, webhook_secret=self.webhook_secret())
        response = self.call(session, "POST", f"{self.base_url()}/{request.model}", "submitting the job", json=body)
        data = json_body(response) or {}
        job_id, polling_url = str(data.get("id") or ""), str(data.get("polling_url") or "")
        if not job_id:
            raise TransientProviderError("BFL accepted the job but returned no id.")
        return Job(
            id=job_id, model=request.model, urls={"poll": polling_url or f"{self.base_url()}/get_result?id={job_id}"}
        )

    def poll(self, session: requests.Session, job: Job) -> JobState:
        response = self.call(session, "GET", job.urls["poll"], f"checking job {job.id}")
        return self._state(json_body(response) or {}, job)

    def _state(self, data: dict[str, Any], job: Job) -> JobState:
        status = str(data.get("status") or "")
        if status == "Ready":
            result = data.get("result") or {}
            return JobState(
                SUCCEEDED,
                result_url=str(result.get("sample") or ""),
                seed=result.get("seed"),
                metadata={"status": status},
            )
        if status == "Pending":
            progress = data.get("progress")
            return JobState(RUNNING if progress else QUEUED, "BFL is generating" if progress else "queued at BFL")
        if status in SAFETY_STATUSES:
            return JobState(FAILED, error=self.safety_error(status))
        if status == "Task not found":
            # BFL forgets jobs (and a cluster may lose one); a new job may work.
            return JobState(FAILED, error=TransientProviderError(f"BFL no longer knows job {job.id} (Task not found)."))
        if status in ("Error", "Failed"):
            detail = clip(data.get("details") or data.get("error") or data.get("message") or "no reason given", 300)
            if self.is_safety_block(data):
                return JobState(FAILED, error=self.safety_error(detail))
            return JobState(FAILED, error=PermanentProviderError(f"BFL job {job.id} failed: {detail}."))
        if status.lower() in ("cancelled", "canceled"):
            return JobState(CANCELLED)
        return JobState(RUNNING, status or "waiting for BFL")

    def state_from_webhook(self, payload: Any, job: Job) -> JobState | None:
        if not isinstance(payload, dict) or str(payload.get("id") or "") != job.id:
            return None
        state = self._state(payload, job)
        return state if state.status in (SUCCEEDED, FAILED, CANCELLED) else None

    def verify_webhook(self, headers: dict[str, str], body: bytes) -> None:
        signature = headers.get("x-bfl-signature", "")
        if not signature.startswith("sha256="):
            raise WebhookRejected("BFL webhook without an X-BFL-Signature header.")
        expected = hmac.new(self.webhook_secret().encode(), body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature[len("sha256=") :]):
            raise WebhookRejected("BFL webhook with a wrong X-BFL-Signature.")
