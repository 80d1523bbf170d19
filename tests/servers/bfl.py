"""A local server that speaks Black Forest Labs' FLUX API over real HTTP.

``POST /v1/<model>`` (header ``x-key``) answers ``{"id", "polling_url"}``; the polling URL
points at ``/v1/cluster-b/get_result?id=...``, a path a client could not rebuild from
the id, as BFL's global endpoint routes jobs between clusters. ``GET`` it answers
``Pending``, then ``Ready`` with ``result.sample`` (a file on this server), ``Request
Moderated`` for the safety outcome, or ``Error``. A webhook is POSTed with the body of a
``Ready`` poll and ``X-BFL-Signature: sha256=<hmac of the body with webhook_secret>``.
BFL has no cancel endpoint, so neither has this server. See :mod:`tests.servers.asyncjob`.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from .asyncjob import Job, JobServer

MODELS = {"flux-2-pro", "flux-2-max", "flux-2-flex", "flux-2-klein-4b", "flux-2-klein-9b", "flux-pro-1.1"}


class BFLServer(JobServer):
    prefix = "/v1"

    def error_body(self, status: int, message: str) -> Any:
        return {"detail": message}

    def route(self, method, path, query, headers, body, record):
        if headers.get("x-key") != self.api_key:
            return 401, {"detail": "Not authenticated - Invalid Authentication"}, {}
        if method == "GET" and path == "/v1/cluster-b/get_result":
            job = self.jobs.get((query.get("id") or [""])[0])
            if job is None:
                return 200, {"id": query.get("id", [""])[0], "status": "Task not found"}, {}
            error = self.scripted_error(self._poll_errors)
            if error:
                job.polls += 1
                return error
            self.advance(job)
            return 200, self.describe(job), {}
        if method == "POST" and path.startswith("/v1/"):
            error = self.scripted_error(self._submit_errors)
            if error:
                return error
            model = path.removeprefix("/v1/")
            if model not in MODELS:
                return 404, {"detail": "Not Found"}, {}
            if not isinstance(body, dict) or not body.get("prompt"):
                return 422, {"detail": [{"loc": ["body", "prompt"], "msg": "Field required", "type": "missing"}]}, {}
            record["submit"] = True
            job = self.new_job(model, body, webhook=body.get("webhook_url") or "")
            polling_url = f"{self.url}/cluster-b/get_result?id={job.id}"
            return 200, {"id": job.id, "polling_url": polling_url}, {}
        return 404, {"detail": "Not Found"}, {}

    def describe(self, job: Job) -> dict[str, Any]:
        if job.state == "done":
            result = {"sample": self.file_url(job), "prompt": job.body.get("prompt"), "seed": job.seed}
            return {"id": job.id, "status": "Ready", "result": result}
        if job.state == "safety":
            return {"id": job.id, "status": "Request Moderated", "result": None}
        if job.state == "failed":
            return {"id": job.id, "status": "Error", "details": "Internal generation error"}
        return {"id": job.id, "status": "Pending", "progress": 0.5 if job.state == "running" else None}

    def webhook_body(self, job: Job) -> Any:
        return self.describe(job)

    def sign(self, job: Job, body: bytes) -> dict[str, str]:
        secret = job.body.get("webhook_secret") or ""
        return {"X-BFL-Signature": "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()}
