"""An in-process server that speaks the OpenAI Images API over real HTTP.

It answers ``POST /v1/images/generations`` the way api.openai.com does (base64 image,
``usage``, error bodies ``{"error": {"message", "type", "param", "code"}}``) and
``GET /v1/models`` for health checks. Tests script what the next requests get::

    server = OpenAIImagesServer(api_key="sk-test")
    server.script("rate_limit", "ok")      # first a 429 with Retry-After, then an image
    ...
    server.generations[0]["json"]["size"]  # what the client sent

Outcomes: ``ok``, ``moderation_blocked``, ``content_policy_violation``, ``rate_limit``
(429, ``Retry-After: <retry_after>``), ``insufficient_quota`` (429 that waiting cannot
fix), ``server_error`` (500), ``bad_request`` (400 with no code). Once the script runs
out, ``default`` (``ok``) applies.
"""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from PIL import Image

ERRORS: dict[str, tuple[int, dict[str, Any]]] = {
    "moderation_blocked": (
        400,
        {
            "message": "Your request was rejected by the safety system. If you believe this is an error, contact us.",
            "type": "image_generation_user_error",
            "param": None,
            "code": "moderation_blocked",
        },
    ),
    "content_policy_violation": (
        400,
        {
            "message": "Your request was rejected as a result of our safety system. Your prompt may contain text "
            "that is not allowed by our safety system.",
            "type": "invalid_request_error",
            "param": None,
            "code": "content_policy_violation",
        },
    ),
    "rate_limit": (
        429,
        {
            "message": "Rate limit reached for gpt-image-2 on images per minute (IPM): Limit 5, Used 5, Requested 1.",
            "type": "requests",
            "param": None,
            "code": "rate_limit_exceeded",
        },
    ),
    "insufficient_quota": (
        429,
        {
            "message": "You exceeded your current quota, please check your plan and billing details.",
            "type": "insufficient_quota",
            "param": None,
            "code": "insufficient_quota",
        },
    ),
    "server_error": (
        500,
        {
            "message": "The server had an error while processing your request. Sorry about that!",
            "type": "server_error",
            "param": None,
            "code": None,
        },
    ),
    "bad_request": (
        400,
        {
            "message": "Invalid value for 'size'.",
            "type": "invalid_request_error",
            "param": "size",
            "code": None,
        },
    ),
}
FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}


class OpenAIImagesServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, api_key: str = "sk-test", *, retry_after: str = "0", delay: float = 0.0):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.api_key = api_key
        self.retry_after = retry_after
        self.delay = delay
        self.default = "ok"
        self.requests: list[dict[str, Any]] = []  # every request, in order; header names lower-cased
        self._script: deque[str] = deque()
        self._lock = threading.Lock()

    def serve_forever(self, poll_interval: float = 0.05) -> None:
        # A short poll so that shutdown() at the end of each test does not wait half a second.
        super().serve_forever(poll_interval)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def script(self, *outcomes: str) -> None:
        unknown = [o for o in outcomes if o != "ok" and o not in ERRORS]
        assert not unknown, f"unknown outcome(s) {unknown}"
        with self._lock:
            self._script.extend(outcomes)

    def next_outcome(self) -> str:
        with self._lock:
            return self._script.popleft() if self._script else self.default

    @property
    def generations(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"] == "/v1/images/generations"]


class _Handler(BaseHTTPRequestHandler):
    server: OpenAIImagesServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002 - quiet in tests
        pass

    def _record(self, body: Any) -> None:
        with self.server._lock:
            headers = {name.lower(): value for name, value in self.headers.items()}
            self.server.requests.append({"method": self.command, "path": self.path, "headers": headers, "json": body})

    def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-request-id", f"req_{len(self.server.requests):04d}")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _authorised(self) -> bool:
        if self.headers.get("Authorization") == f"Bearer {self.server.api_key}":
            return True
        self._send(
            401,
            {
                "error": {
                    "message": "Incorrect API key provided.",
                    "type": "invalid_request_error",
                    "param": None,
                    "code": "invalid_api_key",
                }
            },
        )
        return False

    def do_GET(self):  # noqa: N802
        self._record(None)
        if not self._authorised():
            return
        if self.path.rstrip("/") == "/v1/models":
            self._send(
                200,
                {
                    "object": "list",
                    "data": [
                        {"id": "gpt-image-2", "object": "model", "created": 1776729600, "owned_by": "system"},
                    ],
                },
            )
        else:
            self._send(
                404,
                {
                    "error": {
                        "message": f"Unknown path {self.path}",
                        "type": "invalid_request_error",
                        "param": None,
                        "code": None,
                    }
                },
            )

    def do_POST(self):  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = None
        self._record(body)
        if not self._authorised():
            return
        if self.path != "/v1/images/generations":
            self._send(
                404, {"error": {"message": "Not found", "type": "invalid_request_error", "param": None, "code": None}}
            )
            return
        if not isinstance(body, dict) or not body.get("prompt"):
            self._send(
                400,
                {
                    "error": {
                        "message": "Missing required parameter: 'prompt'.",
                        "type": "invalid_request_error",
                        "param": "prompt",
                        "code": None,
                    }
                },
            )
            return
        outcome = self.server.next_outcome()
        if self.server.delay:
            time.sleep(self.server.delay)
        if outcome != "ok":
            status, error = ERRORS[outcome]
            headers = {"Retry-After": self.server.retry_after} if status == 429 else {}
            self._send(status, {"error": error}, headers)
            return
        size = body.get("size") or "1024x1024"
        width, height = (1024, 1024) if size == "auto" else (int(v) for v in size.split("x"))
        output_format = body.get("output_format") or "png"
        image = Image.new("RGB", (width, height), (30, 90, 160))
        buffer = io.BytesIO()
        image.save(buffer, format=FORMATS[output_format])
        prompt_tokens = max(1, len(body["prompt"]) // 4)
        self._send(
            200,
            {
                "created": int(time.time()),
                "background": "opaque",
                "data": [
                    {
                        "b64_json": base64.b64encode(buffer.getvalue()).decode(),
                        "revised_prompt": f"A detailed image of {body['prompt']}",
                    }
                ],
                "output_format": output_format,
                "quality": body.get("quality") if body.get("quality") not in (None, "auto") else "medium",
                "size": f"{width}x{height}",
                "usage": {
                    "input_tokens": prompt_tokens,
                    "input_tokens_details": {"image_tokens": 0, "text_tokens": prompt_tokens},
                    "output_tokens": 1056,
                    "output_tokens_details": {"image_tokens": 1056, "text_tokens": 0},
                    "total_tokens": prompt_tokens + 1056,
                },
            },
        )
