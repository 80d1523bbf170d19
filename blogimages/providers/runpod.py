"""RunPod serverless endpoints running a ComfyUI worker (``runpod-workers/worker-comfyui`` and kin).

The job is ``POST /v2/<endpoint>/run`` with ``{"input": {"workflow": <ComfyUI API graph>}}``,
then ``GET /status/<id>`` every ``polling_interval`` until it is COMPLETED, FAILED,
CANCELLED or TIMED_OUT, within ``max_polling_duration`` seconds and
``max_polling_attempts`` polls. The graph comes from the same workflow templates as the
ComfyUI provider, so a style looks the same on a local ComfyUI and on RunPod.

``/runsync`` is not used: it holds a connection for minutes, gives no progress, and a
job it gives up on keeps running (and billing) unseen. With ``/run`` a job that outlives
our patience, or an editor's cancel, is cancelled with ``POST /cancel/<id>``.

Edits (refine, variations, upscale, reference) run the workflow's edit workflows, as on
ComfyUI (``comfyui/workflows.py``): the source (and mask) go beside the graph in
worker-comfyui's ``input.images`` (``[{"name", "image": <base64>}]``), which the worker
uploads to ComfyUI's input folder under exactly those names before it queues the graph,
whose ``LoadImage`` / ``LoadImageMask`` inputs name them. RunPod takes at most 10 MB per
``/run`` body, base64 included, so a source too large for that is refused before anything
is sent.

Workers answer in several shapes over the years; all of these give the image:
``output.images`` as base64 strings or as ``{"data" | "image": ..., "filename"}`` dicts
(``type: "s3_url"`` dicts hold a URL that is downloaded), ``output.message`` (older
workers), ``output.job_results.images``, and any of them with a ``data:image/...;base64,``
prefix.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import os
import time
from typing import Any

import requests
from django.core.exceptions import ImproperlyConfigured

from ..comfyui.workflows import EditUpload, edit_problem, edit_uploads
from ..contract import EDIT_OPERATIONS, GeneratedImage, GenerationRequest, ProgressReporter, ProviderHealth
from ..exceptions import GenerationCancelled, PermanentProviderError, ProviderError, TransientProviderError
from ..remote import (
    clip,
    connection_reason,
    decode_base64_image,
    image_type,
    is_transient_status,
    json_body,
    status_error,
)
from .workflow import WorkflowProvider

logger = logging.getLogger("blogimages.providers.runpod")

DEFAULT_BASE_URL = "https://api.runpod.ai/v2"
FINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"}
# A network hiccup while polling must not abandon a job that is running and billing.
POLL_ERRORS_TOLERATED = 5
#: RunPod's limit on a ``/run`` request body (worker-comfyui's README: 10 MB for /run, 20 MB for /runsync).
MAX_PAYLOAD_BYTES = 10_000_000


class RunPodProvider(WorkflowProvider):
    label = "RunPod (ComfyUI worker)"
    kind = "runpod"
    is_cloud = True  # billed per second: joins ``auto`` only when ENABLE_CLOUD_APIS is on
    default_options = {
        "api_key": None,  # None: env RUNPOD_API_KEY
        "endpoint_id": None,  # None: the env variable named by endpoint_env
        "endpoint_env": "RUNPOD_SERVER_100_ID",  # or RUNPOD_SERVER_150_ID, RUNPOD_SERVER_SCHNELL_ID, ...
        "base_url": DEFAULT_BASE_URL,
        "workflow": "flux1_dev",  # used when the request names none
        "workflows": {},  # operator workflows, same shape as the ComfyUI provider's
        "filename_prefix": "blogimages/result",
        # None: env POLLING_INTERVAL / MAX_POLLING_DURATION / MAX_POLLING_ATTEMPTS, else these defaults.
        "polling_interval": None,  # 1.0 s
        "max_polling_duration": None,  # 180 s from submission, queue time included
        "max_polling_attempts": None,  # 120 polls
        "request_timeout": 30.0,  # seconds for each HTTP call
        "health_timeout": 2.0,
        "download_timeout": 60.0,  # for workers that answer with an S3 URL instead of base64
        "max_payload_bytes": MAX_PAYLOAD_BYTES,  # the /run body, an edit's base64 images included
    }
    # Edits run the workflow's edit workflows (img2img, inpaint, upscale), as on ComfyUI.
    operations = frozenset(EDIT_OPERATIONS)

    # --- configuration (read at call time, so environment changes apply) ---------------------------

    def api_key(self) -> str:
        return self.options["api_key"] or os.environ.get("RUNPOD_API_KEY") or ""

    def endpoint_id(self) -> str:
        return self.options["endpoint_id"] or os.environ.get(self.options["endpoint_env"] or "", "")

    def _setting(self, option: str, env: str, default: float) -> float:
        value = self.options[option]
        if value is None:
            value = os.environ.get(env) or default
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ImproperlyConfigured(f"{env} / OPTIONS[{option!r}] must be a number, not {value!r}.") from None

    def polling_interval(self) -> float:
        return self._setting("polling_interval", "POLLING_INTERVAL", 1.0)

    def max_polling_duration(self) -> float:
        return self._setting("max_polling_duration", "MAX_POLLING_DURATION", 180.0)

    def max_polling_attempts(self) -> int:
        return int(self._setting("max_polling_attempts", "MAX_POLLING_ATTEMPTS", 120))

    def _configured(self) -> tuple[str, str]:
        key, endpoint = self.api_key(), self.endpoint_id()
        missing = [
            name for name, value in (("RUNPOD_API_KEY", key), (self.options["endpoint_env"], endpoint)) if not value
        ]
        if missing:
            raise PermanentProviderError(
                f"RunPod is not configured: set {' and '.join(missing)} in the environment "
                "(or the provider's api_key / endpoint_id options)."
            )
        return key, endpoint

    def _url(self, endpoint: str, path: str) -> str:
        return f"{self.options['base_url'].rstrip('/')}/{endpoint}/{path}"

    def _headers(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    # --- generating -------------------------------------------------------------------------------------

    def edit_refusal(self, request: GenerationRequest) -> str:
        """Besides the operation: the workflow needs an edit workflow of the right kind (a mask
        needs an inpaint one), the mask must fit the source, and the images must fit in one job."""
        refusal = super().edit_refusal(request) or edit_problem(
            self.workflows, request, self.options["workflow"], f"The {self.label} provider {self.alias!r}"
        )
        if refusal or request.edit is None:
            return refusal
        try:
            uploads = edit_uploads(self.workflows[self.choose_model(request).name], request)
        except ProviderError as exc:
            return str(exc)
        size = sum(_b64_length(upload.content) for upload in uploads)
        limit = int(self.options["max_payload_bytes"])
        # Leave room for the graph itself (a few kB) in the same body.
        if size > limit - 100_000:
            return (
                f"The image is too large to send to RunPod: {size / 1e6:.1f} MB as base64, and a job may be at most "
                f"{limit / 1e6:g} MB; use a smaller source or another provider."
            )
        return ""

    def generate(self, request: GenerationRequest, reporter: ProgressReporter) -> GeneratedImage:
        key, endpoint = self._configured()
        request = self.prepared(request)
        refusal = self.edit_refusal(request)
        if refusal:
            raise PermanentProviderError(refusal)
        workflow, graph, _, seed = self.build_graph(request)
        # The graph names the edit's files as edit_uploads() names them; the worker uploads them so.
        uploads = edit_uploads(workflow, request)
        workflow = workflow.for_request(request)
        reporter.seed(seed)
        job_input: dict[str, Any] = {"workflow": graph}
        if uploads:
            job_input["images"] = worker_images(uploads)
        timeout = float(self.options["request_timeout"])
        with requests.Session() as session:
            session.headers.update(self._headers(key))
            try:
                response = session.post(self._url(endpoint, "run"), json={"input": job_input}, timeout=timeout)
            except requests.RequestException as exc:
                raise _unreachable(exc) from exc
            _raise_for(response, endpoint, "submitting the job")
            job_id = str(_json(response).get("id") or "")
            if not job_id:
                raise TransientProviderError(f"RunPod accepted the job for endpoint {endpoint} but returned no job id.")
            reporter.remote_id(job_id, endpoint)
            status = self._poll(session, endpoint, job_id, reporter)
        output = status.get("output")
        content, filename = self._image(output, job_id)
        return GeneratedImage(
            content=content,
            seed=seed,
            model=request.model or workflow.name,
            provider=self.alias,
            remote_id=job_id,
            remote_server=endpoint,
            metadata={
                k: v
                for k, v in {
                    "workflow": workflow.name,
                    "endpoint": endpoint,
                    "job_id": job_id,
                    "worker_id": status.get("workerId"),
                    "delay_ms": status.get("delayTime"),
                    "execution_ms": status.get("executionTime"),
                    "filename": filename,
                    "operation": request.edit.operation if request.edit else None,
                    "uploads": [upload.filename for upload in uploads] or None,
                }.items()
                if v not in (None, "")
            },
        )

    def _poll(self, session: requests.Session, endpoint: str, job_id: str, reporter: ProgressReporter) -> dict:
        interval = self.polling_interval()
        max_duration = self.max_polling_duration()
        max_attempts = self.max_polling_attempts()
        timeout = float(self.options["request_timeout"])
        started = time.monotonic()
        attempts = errors = 0
        shown = 0.0
        last = "IN_QUEUE"
        while True:
            if reporter.cancelled():
                self._cancel(session, endpoint, job_id)
                raise GenerationCancelled(f"Cancelled while RunPod job {job_id} was {last}.")
            elapsed = time.monotonic() - started
            if attempts >= max_attempts or elapsed >= max_duration:
                self._cancel(session, endpoint, job_id)
                limit = f"{max_attempts} status checks" if attempts >= max_attempts else f"{max_duration:g} s"
                if last == "IN_QUEUE":
                    # No worker picked it up: capacity, worth trying again later.
                    raise TransientProviderError(
                        f"RunPod job {job_id} was still waiting for a worker after {limit}; it was cancelled. "
                        f"The endpoint {endpoint} may have no free workers (check its max workers)."
                    )
                raise PermanentProviderError(
                    f"RunPod job {job_id} did not finish within {limit} (last status {last}); it was cancelled. "
                    "Raise MAX_POLLING_DURATION / MAX_POLLING_ATTEMPTS if images take longer."
                )
            if attempts:
                time.sleep(interval)
            attempts += 1
            try:
                response = session.get(self._url(endpoint, f"status/{job_id}"), timeout=timeout)
            except requests.RequestException as exc:
                errors += 1
                if errors >= POLL_ERRORS_TOLERATED:
                    self._cancel(session, endpoint, job_id)
                    raise _unreachable(exc) from exc
                continue
            if response.status_code == 404:
                # RunPod forgets results (30 minutes after /run) and jobs it lost; a new job may work.
                raise TransientProviderError(f"RunPod no longer knows job {job_id} on endpoint {endpoint}.")
            if is_transient_status(response.status_code):
                errors += 1
                if errors >= POLL_ERRORS_TOLERATED:
                    self._cancel(session, endpoint, job_id)
                    _raise_for(response, endpoint, f"checking job {job_id}")
                continue
            _raise_for(response, endpoint, f"checking job {job_id}")
            errors = 0
            status = _json(response)
            last = str(status.get("status") or "UNKNOWN")
            if last == "COMPLETED":
                reporter.progress(99, "downloading the image")
                return status
            if last == "FAILED":
                raise PermanentProviderError(f"RunPod job {job_id} failed: {_error_text(status)}")
            if last == "TIMED_OUT":
                raise PermanentProviderError(
                    f"RunPod job {job_id} timed out on the worker (the endpoint's execution timeout); raise the "
                    "timeout in the endpoint's settings or ask for fewer steps or a smaller image."
                )
            if last == "CANCELLED":
                if reporter.cancelled():
                    raise GenerationCancelled(f"RunPod job {job_id} was cancelled.")
                raise PermanentProviderError(f"RunPod job {job_id} was cancelled on RunPod (not by blogimages).")
            percent, message = _progress(status, time.monotonic() - started)
            shown = max(shown, percent)  # a job RunPod retries goes back to IN_QUEUE; the bar does not
            reporter.progress(shown, message)

    def _cancel(self, session: requests.Session, endpoint: str, job_id: str) -> bool:
        try:
            response = session.post(
                self._url(endpoint, f"cancel/{job_id}"), timeout=float(self.options["request_timeout"])
            )
        except requests.RequestException as exc:
            logger.warning("Could not cancel RunPod job %s on %s: %s", job_id, endpoint, exc)
            return False
        if response.status_code >= 400:
            logger.warning("RunPod refused to cancel job %s on %s: %s", job_id, endpoint, response.status_code)
            return False
        return True

    def _image(self, output: Any, job_id: str) -> tuple[bytes, str]:
        found = find_image(output)
        if found is None:
            if isinstance(output, dict) and output.get("error"):
                raise PermanentProviderError(f"RunPod job {job_id} failed: {clip(output['error'], 500)}")
            shape = sorted(output) if isinstance(output, dict) else type(output).__name__
            raise PermanentProviderError(f"RunPod job {job_id} finished, but its output holds no image ({shape}).")
        value, filename = found
        if value.startswith(("http://", "https://")):
            try:
                response = requests.get(value, timeout=float(self.options["download_timeout"]))
                response.raise_for_status()
            except requests.RequestException as exc:
                raise TransientProviderError(
                    f"RunPod job {job_id} finished, but its image could not be downloaded ({connection_reason(exc)})."
                ) from exc
            content = response.content
        else:
            try:
                content = decode_base64_image(value)
            except (binascii.Error, ValueError) as exc:
                raise PermanentProviderError(
                    f"RunPod job {job_id} returned an image that is not valid base64."
                ) from exc
        if not image_type(content):
            raise PermanentProviderError(f"RunPod job {job_id} returned data that is not a PNG, JPEG or WebP image.")
        return content, filename

    # --- health and cancel --------------------------------------------------------------------------------

    def health(self) -> ProviderHealth:
        try:
            key, endpoint = self._configured()
        except PermanentProviderError as exc:
            return ProviderHealth(ok=False, detail=str(exc))
        try:
            response = requests.get(
                self._url(endpoint, "health"), headers=self._headers(key), timeout=float(self.options["health_timeout"])
            )
        except requests.RequestException as exc:
            return ProviderHealth(ok=False, detail=f"RunPod is unreachable ({connection_reason(exc)})")
        if response.status_code == 401:
            return ProviderHealth(ok=False, detail="RunPod refused the API key (RUNPOD_API_KEY)")
        if response.status_code == 404:
            return ProviderHealth(ok=False, detail=f"RunPod has no endpoint {endpoint}")
        if response.status_code >= 400:
            return ProviderHealth(ok=False, detail=f"RunPod answered {response.status_code} for endpoint {endpoint}")
        data = _json(response)
        workers, jobs = data.get("workers") or {}, data.get("jobs") or {}
        detail = (
            f"RunPod endpoint {endpoint}: {workers.get('idle', 0)} idle, {workers.get('running', 0)} running workers, "
            f"{jobs.get('inQueue', 0)} jobs queued"
        )
        return ProviderHealth(ok=True, detail=detail, info={"workers": workers, "jobs": jobs})

    def cancel(self, remote_id: str, remote_server: str = "") -> bool:
        """Cancel our job on our endpoint; ids recorded by other providers (``auto`` asks each) are left alone."""
        try:
            key, endpoint = self._configured()
        except PermanentProviderError:
            return False
        if not remote_id or remote_server != endpoint:
            return False
        with requests.Session() as session:
            session.headers.update(self._headers(key))
            return self._cancel(session, endpoint, remote_id)


# --- edits ---------------------------------------------------------------------------------------------------


def worker_images(uploads: list[EditUpload]) -> list[dict[str, str]]:
    """worker-comfyui's ``input.images``: each file under the name the graph loads it by."""
    return [{"name": upload.filename, "image": base64.b64encode(upload.content).decode("ascii")} for upload in uploads]


def _b64_length(content: bytes) -> int:
    return 4 * ((len(content) + 2) // 3)


# --- reading RunPod's answers ---------------------------------------------------------------------------


def find_image(output: Any, depth: int = 0) -> tuple[str, str] | None:
    """The first image in a worker's output: (base64 text, data URL or http URL; its file name or "")."""
    if depth > 4 or output is None:
        return None
    if isinstance(output, str):
        return (output, "") if _looks_like_image(output) else None
    if isinstance(output, list):
        for item in output:
            found = find_image(item, depth + 1)
            if found:
                return found
        return None
    if not isinstance(output, dict):
        return None
    filename = str(output.get("filename") or output.get("name") or "")
    for key in ("data", "image", "base64", "url"):
        value = output.get(key)
        if isinstance(value, str) and _looks_like_image(value):
            return value, filename
    for key in ("images", "message", "job_results", "output", "result"):
        if key in output:
            found = find_image(output[key], depth + 1)
            if found:
                return found
    return None


def _looks_like_image(value: str) -> bool:
    if value.startswith(("data:image/", "http://", "https://")):
        return True
    # Base64 of PNG, JPEG, WebP and GIF headers; anything else (a status text) is not an image.
    return value.startswith(("iVBORw0KGgo", "/9j/", "UklGR", "R0lGOD"))


def _progress(status: dict[str, Any], elapsed: float) -> tuple[float, str]:
    if status.get("status") == "IN_QUEUE":
        return 2, f"waiting for a RunPod worker ({elapsed:.0f} s)"
    update = status.get("output")
    if isinstance(update, dict) and isinstance(update.get("progress"), (int, float)):
        fraction = float(update["progress"])
        fraction = fraction / 100 if fraction > 1 else fraction
        return 10 + 85 * fraction, str(update.get("message") or f"generating, {fraction:.0%}")
    message = update if isinstance(update, str) and update else f"running on worker {status.get('workerId') or '?'}"
    # RunPod reports no steps: an estimate that moves and never claims to be done.
    return 10 + 85 * (1 - math.exp(-elapsed / 40)), message


def _error_text(status: dict[str, Any]) -> str:
    error = status.get("error")
    if error is None and isinstance(status.get("output"), dict):
        error = status["output"].get("error")
    if isinstance(error, str):
        # The RunPod SDK sends a handler's exception as a JSON string.
        try:
            parsed = json.loads(error)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            error = parsed
    if isinstance(error, dict):
        error = error.get("error_message") or error.get("message") or error.get("error") or json.dumps(error)
    return clip(error or "the worker gave no reason", 500)


def _json(response: requests.Response) -> dict[str, Any]:
    data = json_body(response)
    if data is None:
        raise TransientProviderError(f"RunPod answered {response.status_code} with something that is not JSON.")
    return data if isinstance(data, dict) else {}


def _unreachable(exc: Exception) -> TransientProviderError:
    return TransientProviderError(f"RunPod is unreachable ({connection_reason(exc)}).")


def _raise_for(response: requests.Response, endpoint: str, doing: str) -> None:
    status = response.status_code
    if status < 400:
        return
    body = json_body(response)
    detail = body.get("error") or body.get("message") if isinstance(body, dict) else None
    detail = clip(detail or response.text or response.reason, 300)
    if status == 401:
        raise PermanentProviderError("RunPod refused the API key; check RUNPOD_API_KEY (or the api_key option).")
    if status == 404:
        raise PermanentProviderError(
            f"RunPod has no endpoint {endpoint!r} (while {doing}); check the endpoint id ({detail})."
        )
    raise status_error(
        response,
        transient=f"RunPod was busy or failing while {doing} ({status}): {detail}",
        permanent=f"RunPod rejected the request while {doing} ({status}): {detail}",
    )
