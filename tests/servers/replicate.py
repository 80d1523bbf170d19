"""A local server that speaks Replicate's predictions API over real HTTP.

``POST /v1/models/<owner>/<name>/predictions`` (and ``POST /v1/predictions`` with a
``version``) create a prediction, ``GET /v1/predictions/<id>`` polls it,
``POST /v1/predictions/<id>/cancel`` cancels it, ``GET /v1/account`` and
``GET /v1/webhooks/default/secret`` answer as Replicate does. Auth is ``Authorization:
Bearer``. ``Prefer: wait`` holds the create call until the prediction is done (a plan
with ``polls=0`` finishes inside it). Predictions go ``starting`` -> ``processing`` ->
``succeeded`` (``output``: a list with one file URL) / ``failed`` (the safety outcome's
error is Replicate's E005 text) / ``canceled``. Webhooks are signed the Standard
Webhooks way with :attr:`secret`. See :mod:`tests.servers.asyncjob`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
from typing import Any

from .asyncjob import Job, JobServer

SAFETY_ERROR = "The input or output was flagged as sensitive. Please try again with different inputs. (E005)"


class ReplicateServer(JobServer):
    prefix = "/v1"

    def __init__(self, api_key: str = "r8_test"):
        super().__init__(api_key)
        self.secret = "whsec_" + base64.b64encode(b"replicate-test-signing-key-32by!").decode()

    def error_body(self, status: int, message: str) -> Any:
        return {"title": message, "detail": message, "status": status}

    def route(self, method, path, query, headers, body, record):
        if headers.get("authorization") != f"Bearer {self.api_key}":
            return (
                401,
                {"title": "Unauthenticated", "detail": "You did not pass a valid authentication token", "status": 401},
                {},
            )
        if method == "GET" and path == "/v1/account":
            return 200, {"type": "user", "username": "blogimages"}, {}
        if method == "GET" and path == "/v1/webhooks/default/secret":
            return 200, {"key": self.secret}, {}
        if method == "POST" and (
            path == "/v1/predictions" or (path.startswith("/v1/models/") and path.endswith("/predictions"))
        ):
            error = self.scripted_error(self._submit_errors)
            if error:
                return error
            if not isinstance(body, dict) or not isinstance(body.get("input"), dict):
                return 422, {"title": "Input validation failed", "detail": "input is required", "status": 422}, {}
            model = body.get("version") or path.removeprefix("/v1/models/").removesuffix("/predictions")
            record["submit"] = True
            job = self.new_job(model, body, webhook=body.get("webhook") or "")
            if headers.get("prefer", "").startswith("wait"):
                # Held open: a quick prediction finishes before the answer.
                if job.plan.polls == 0 and job.state in ("queued", "running"):
                    self.finish(job)
                return 201, self.describe(job), {}
            # Without it the answer is the prediction as created, whatever happened since.
            return 201, {**self.describe(job), "status": "starting", "output": None, "error": None}, {}
        if path.startswith("/v1/predictions/"):
            rest = path.removeprefix("/v1/predictions/")
            job_id, _, action = rest.partition("/")
            job = self.jobs.get(job_id)
            if job is None:
                return 404, {"title": "Not found", "detail": "Not found.", "status": 404}, {}
            if method == "POST" and action == "cancel":
                self.cancels.append(job.id)
                if job.state in ("queued", "running"):
                    job.state = "cancelled"
                return 200, self.describe(job), {}
            if method == "GET" and not action:
                error = self.scripted_error(self._poll_errors)
                if error:
                    job.polls += 1
                    return error
                self.advance(job)
                return 200, self.describe(job), {}
        return 404, {"title": "Not found", "detail": "Not found.", "status": 404}, {}

    def describe(self, job: Job) -> dict[str, Any]:
        status = {
            "queued": "starting",
            "running": "processing",
            "done": "succeeded",
            "failed": "failed",
            "safety": "failed",
            "cancelled": "canceled",
        }[job.state]
        error = {"safety": SAFETY_ERROR, "failed": "CUDA out of memory (E1001)"}.get(job.state)
        return {
            "id": job.id,
            "model": job.model,
            "version": "hidden",
            "input": job.body.get("input"),
            "status": status,
            "output": [self.file_url(job)] if job.state == "done" else None,
            "error": error,
            "logs": "",
            "metrics": {"predict_time": 1.2} if job.state == "done" else {},
            "urls": {
                "get": f"{self.url}/predictions/{job.id}",
                "cancel": f"{self.url}/predictions/{job.id}/cancel",
                "web": f"https://replicate.com/p/{job.id}",
            },
        }

    def webhook_body(self, job: Job) -> Any:
        return self.describe(job)

    def sign(self, job: Job, body: bytes) -> dict[str, str]:
        webhook_id, timestamp = f"msg_{uuid.uuid4().hex}", str(int(time.time()))
        key = base64.b64decode(self.secret.removeprefix("whsec_"))
        digest = hmac.new(key, f"{webhook_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
        signature = "v1," + base64.b64encode(digest).decode()
        return {"webhook-id": webhook_id, "webhook-timestamp": timestamp, "webhook-signature": signature}
