"""What the local servers for hosted job APIs (BFL, Replicate, fal.ai) share.

Each server subclasses :class:`JobServer` and speaks its service's protocol; the plans,
result files, scripted errors and webhook deliveries are the same for all, so one set of
tests runs against each::

    server.plan(outcome="ok", polls=3)          # three "still working" polls, then done
    server.plan(outcome="safety")               # the service's safety block
    server.plan(outcome="stuck")                # never finishes
    server.plan(expire=True)                    # the result URL answers 410
    server.plan(webhook="early")                # finish at once and call the webhook
                                                # before answering the submit
    server.plan(webhook="early", bad_signature=True)
    server.submit_errors("rate_limit", "server_error")   # the next submits fail so
    server.poll_errors("rate_limit")                     # the next polls fail so

``server.polls`` counts status polls, ``server.cancels`` lists cancelled job ids,
``server.downloads`` counts fetches of each result file, ``server.webhook_answers`` the
HTTP status each webhook delivery got.
"""

from __future__ import annotations

import io
import json
import threading
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from PIL import Image

OUTCOMES = ("ok", "safety", "failed", "stuck")


@dataclass
class Plan:
    outcome: str = "ok"
    polls: int = 2  # status polls answered "still working" before the outcome
    expire: bool = False
    webhook: str = "none"  # "none" or "early"
    bad_signature: bool = False


@dataclass
class Job:
    id: str
    model: str
    body: Any
    plan: Plan
    webhook: str = ""
    polls: int = 0
    state: str = "queued"  # queued, running, done, failed, safety, cancelled
    file: str = ""
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def png(seed: int, width: int = 24, height: int = 16) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (seed % 256, (seed // 256) % 256, 90)).save(buffer, "PNG")
    return buffer.getvalue()


class JobServer(ThreadingHTTPServer):
    daemon_threads = True
    prefix = ""  # path prefix of the API, e.g. "/v1"

    def __init__(self, api_key: str = "key-test"):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.api_key = api_key
        self.requests: list[dict[str, Any]] = []
        self.jobs: dict[str, Job] = {}
        self.files: dict[str, bytes] = {}
        self.expired: set[str] = set()
        self.downloads: Counter[str] = Counter()
        self.cancels: list[str] = []
        self.webhook_answers: list[int] = []
        self.default_plan = Plan()
        self._plans: deque[Plan] = deque()
        self._submit_errors: deque[str] = deque()
        self._poll_errors: deque[str] = deque()
        self.lock = threading.Lock()

    # --- scripting --------------------------------------------------------------------------------

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    @property
    def url(self) -> str:
        return self.root + self.prefix

    def plan(self, **kwargs: Any) -> Plan:
        plan = Plan(**kwargs)
        assert plan.outcome in OUTCOMES, plan
        with self.lock:
            self._plans.append(plan)
        return plan

    def submit_errors(self, *errors: str) -> None:
        self._submit_errors.extend(errors)

    def poll_errors(self, *errors: str) -> None:
        self._poll_errors.extend(errors)

    @property
    def polls(self) -> int:
        return sum(job.polls for job in self.jobs.values())

    @property
    def submits(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r.get("submit")]

    # --- shared behaviour -----------------------------------------------------------------------------

    def next_plan(self) -> Plan:
        with self.lock:
            return self._plans.popleft() if self._plans else self.default_plan

    def scripted_error(self, queue: deque[str]) -> tuple[int, Any, dict[str, str]] | None:
        with self.lock:
            error = queue.popleft() if queue else None
        if error == "rate_limit":
            return 429, self.error_body(429, "Too many requests"), {"Retry-After": "7"}
        if error == "rate_limit_now":
            return 429, self.error_body(429, "Too many requests"), {"Retry-After": "0"}
        if error == "server_error":
            return 500, self.error_body(500, "Internal server error"), {}
        return None

    def error_body(self, status: int, message: str) -> Any:
        return {"detail": message}

    def new_job(self, model: str, body: Any, webhook: str = "") -> Job:
        plan = self.next_plan()
        seed = body.get("seed") if isinstance(body, dict) and isinstance(body.get("seed"), int) else 4242
        if (
            isinstance(body, dict)
            and isinstance(body.get("input"), dict)
            and isinstance(body["input"].get("seed"), int)
        ):
            seed = body["input"]["seed"]
        job = Job(id=str(uuid.uuid4()), model=model, body=body, plan=plan, webhook=webhook, seed=seed)
        with self.lock:
            self.jobs[job.id] = job
        if plan.webhook == "early":
            self.finish(job)
            if webhook:
                self.deliver(job)
        return job

    def advance(self, job: Job) -> None:
        """One status poll: count it and move the job on."""
        with self.lock:
            job.polls += 1
            if job.state not in ("queued", "running"):
                return
            if job.plan.outcome == "stuck" or job.polls <= job.plan.polls:
                job.state = "queued" if job.polls <= 1 else "running"
                return
        self.finish(job)

    def finish(self, job: Job) -> None:
        outcome = job.plan.outcome
        if outcome == "ok":
            job.file = f"{job.id}.png"
            self.files[job.file] = png(job.seed)
            if job.plan.expire:
                self.expired.add(job.file)
            job.state = "done"
        elif outcome == "safety":
            job.state = "safety"
        elif outcome == "failed":
            job.state = "failed"

    def file_url(self, job: Job) -> str:
        return f"{self.root}/files/{job.file}"

    def deliver(self, job: Job) -> None:
        """POST the job's webhook, signed as the service signs it, and record the answer."""
        body = json.dumps(self.webhook_body(job)).encode()
        headers = {"Content-Type": "application/json", **self.sign(job, body)}
        if job.plan.bad_signature:
            headers = {
                name: (value[:-4] + "AAAA" if "signature" in name.lower() else value) for name, value in headers.items()
            }
        answer = requests.post(job.webhook, data=body, headers=headers, timeout=10)
        self.webhook_answers.append(answer.status_code)

    def webhook_body(self, job: Job) -> Any:
        raise NotImplementedError

    def sign(self, job: Job, body: bytes) -> dict[str, str]:
        return {}

    def serve_file(self, name: str) -> tuple[int, Any, dict[str, str]]:
        self.downloads[name] += 1
        if name in self.expired or name not in self.files:
            # Azure/S3-style answer for a signed URL past its expiry.
            return 410, "<Error><Code>AuthenticationFailed</Code><Message>Signature expired</Message></Error>", {}
        return 200, self.files[name], {"Content-Type": "image/png"}

    def route(
        self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str], body: Any, record: dict
    ) -> tuple[int, Any, dict[str, str]]:
        """Answer one API call; mark a submit with ``record["submit"] = True``."""
        raise NotImplementedError


class _Handler(BaseHTTPRequestHandler):
    server: JobServer

    def log_message(self, *args: Any) -> None:
        pass

    def _handle(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        parts = urlsplit(self.path)
        headers = {k.lower(): v for k, v in self.headers.items()}
        record = {"method": method, "path": parts.path, "query": parts.query, "headers": headers, "json": body}
        self.server.requests.append(record)
        if parts.path.startswith("/files/"):
            status, payload, extra = self.server.serve_file(parts.path.removeprefix("/files/"))
        else:
            status, payload, extra = self.server.route(method, parts.path, parse_qs(parts.query), headers, body, record)
        if isinstance(payload, (dict, list)):
            data, content_type = json.dumps(payload).encode(), "application/json"
        elif isinstance(payload, bytes):
            data, content_type = payload, extra.pop("Content-Type", "application/octet-stream")
        else:
            data, content_type = str(payload).encode(), "text/html"
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in extra.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")
