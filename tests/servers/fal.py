"""A local server that speaks fal.ai's queue over real HTTP.

``POST /<model>`` (``Authorization: Key``; ``?fal_webhook=<url>`` optional) answers
``{"request_id", "status_url", "response_url", "cancel_url"}``. As on fal, those URLs
name the app (``fal-ai/flux``), not the model's sub-path (``fal-ai/flux/schnell``), so a
client that rebuilds them from the model id gets 404. ``GET status_url`` answers
``IN_QUEUE`` (with ``queue_position``), ``IN_PROGRESS``, ``COMPLETED``; ``GET
response_url`` the output (``images``, ``seed``, ``has_nsfw_concepts``) or, for the safety
outcome, 422 ``content_policy_violation``; ``PUT cancel_url`` 202
``CANCELLATION_REQUESTED`` or 400 ``ALREADY_COMPLETED``. Webhooks are
``{"request_id", "status": "OK" | "ERROR", "payload"}``, signed with this server's own
ED25519 key, whose public half it serves as a JWKS at ``/.well-known/jwks.json``.
See :mod:`tests.servers.asyncjob`.
"""

from __future__ import annotations

import base64
import hashlib
import time
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from .asyncjob import Job, JobServer

SAFETY = [
    {
        "loc": ["body", "prompt"],
        "msg": "The content was flagged by a content checker.",
        "type": "content_policy_violation",
        "url": "https://docs.fal.ai/errors#content_policy_violation",
    }
]


def app_of(model: str) -> str:
    """``fal-ai/flux/schnell`` -> ``fal-ai/flux``: the queue URLs name the app."""
    return "/".join(model.split("/")[:2])


class FalServer(JobServer):
    def __init__(self, api_key: str = "fal-test:secret"):
        super().__init__(api_key)
        self.private_key = Ed25519PrivateKey.generate()
        raw = self.private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.jwks = {
            "keys": [{"kty": "OKP", "crv": "Ed25519", "x": base64.urlsafe_b64encode(raw).decode().rstrip("=")}]
        }

    @property
    def jwks_url(self) -> str:
        return f"{self.root}/.well-known/jwks.json"

    def route(self, method, path, query, headers, body, record):
        if path == "/.well-known/jwks.json":
            return 200, self.jwks, {}
        if headers.get("authorization") != f"Key {self.api_key}":
            return 401, {"detail": "Invalid credentials"}, {}
        if "/requests/" in path:
            app, _, rest = path.strip("/").partition("/requests/")
            job_id, _, action = rest.partition("/")
            job = self.jobs.get(job_id)
            if job is None or app_of(job.model) != app:
                return 404, {"detail": "Request not found"}, {}
            if method == "GET" and action == "status":
                error = self.scripted_error(self._poll_errors)
                if error:
                    job.polls += 1
                    return error
                self.advance(job)
                return 200, self.status(job), {}
            if method == "GET" and not action:
                if job.state == "safety":
                    return 422, {"detail": SAFETY}, {}
                if job.state == "failed":
                    return 500, {"detail": "Internal error while running the model"}, {}
                if job.state != "done":
                    return 400, {"detail": "Request is still in progress"}, {}
                return 200, self.output(job), {}
            if method == "PUT" and action == "cancel":
                self.cancels.append(job.id)
                if job.state in ("queued", "running"):
                    job.state = "cancelled"
                    return 202, {"status": "CANCELLATION_REQUESTED"}, {}
                return 400, {"status": "ALREADY_COMPLETED"}, {}
            return 404, {"detail": "Not found"}, {}
        if method == "POST":
            error = self.scripted_error(self._submit_errors)
            if error:
                return error
            model = path.strip("/")
            if not isinstance(body, dict) or not body.get("prompt"):
                return 422, {"detail": [{"loc": ["body", "prompt"], "msg": "field required", "type": "missing"}]}, {}
            record["submit"] = True
            job = self.new_job(model, body, webhook=(query.get("fal_webhook") or [""])[0])
            root = f"{self.root}/{app_of(model)}/requests/{job.id}"
            return (
                200,
                {
                    "request_id": job.id,
                    "gateway_request_id": job.id,
                    "status_url": f"{root}/status",
                    "response_url": root,
                    "cancel_url": f"{root}/cancel",
                    "queue_position": 0,
                },
                {},
            )
        return 404, {"detail": "Not found"}, {}

    def status(self, job: Job) -> dict[str, Any]:
        if job.state == "queued":
            return {"status": "IN_QUEUE", "queue_position": 2, "response_url": f"{self.root}/x"}
        if job.state == "running":
            return {"status": "IN_PROGRESS", "logs": []}
        if job.state == "failed":
            return {
                "status": "COMPLETED",
                "logs": [],
                "error": "Internal error while running the model",
                "error_type": "runner_error",
            }
        return {"status": "COMPLETED", "logs": [], "metrics": {"inference_time": 0.8}}

    def output(self, job: Job) -> dict[str, Any]:
        size = job.body.get("image_size") or {}
        return {
            "images": [
                {
                    "url": self.file_url(job),
                    "width": size.get("width"),
                    "height": size.get("height"),
                    "content_type": "image/png",
                }
            ],
            "seed": job.seed,
            "has_nsfw_concepts": [False],
            "prompt": job.body.get("prompt"),
            "timings": {"inference": 0.8},
        }

    def webhook_body(self, job: Job) -> Any:
        if job.state == "done":
            return {"request_id": job.id, "gateway_request_id": job.id, "status": "OK", "payload": self.output(job)}
        return {
            "request_id": job.id,
            "gateway_request_id": job.id,
            "status": "ERROR",
            "error": "Invalid status code: 422",
            "payload": {"detail": SAFETY} if job.state == "safety" else {"detail": "Internal error"},
        }

    def sign(self, job: Job, body: bytes) -> dict[str, str]:
        user_id, timestamp = "user-test", str(int(time.time()))
        message = "\n".join([job.id, user_id, timestamp, hashlib.sha256(body).hexdigest()]).encode()
        return {
            "X-Fal-Webhook-Request-Id": job.id,
            "X-Fal-Webhook-User-Id": user_id,
            "X-Fal-Webhook-Timestamp": timestamp,
            "X-Fal-Webhook-Signature": self.private_key.sign(message).hex(),
        }
