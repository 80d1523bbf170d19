"""A local server that speaks the Gemini API's ``generateContent`` for image models over real HTTP.

``POST /v1beta/models/<model>:generateContent`` (header ``x-goog-api-key``) answers a
candidate whose parts hold the image as ``inlineData`` (base64 PNG) and a line of text;
``GET /v1beta/models/<model>`` describes the model (the free health check). Scripted
outcomes, one per call::

    server.script("rate_limit", "ok")

``ok``; ``slow`` (answers after :attr:`slow_seconds`); ``prompt_blocked``
(``promptFeedback.blockReason: PROHIBITED_CONTENT``); ``image_safety`` (a candidate with
``finishReason: IMAGE_SAFETY`` and no image); ``text_only`` (the model answered in words);
``rate_limit`` (429 ``RESOURCE_EXHAUSTED`` whose wait is only in a ``RetryInfo`` detail,
``retryDelay: "7s"``); ``server_error`` (500 ``INTERNAL``).
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from .asyncjob import png

MODELS = {"gemini-2.5-flash-image", "gemini-3-pro-image-preview"}
OUTCOMES = ("ok", "slow", "prompt_blocked", "image_safety", "text_only", "rate_limit", "server_error")


def _error(code: int, status: str, message: str, details: list | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "status": status, "details": details or []}}


class GeminiServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, api_key: str = "gm-test"):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.api_key = api_key
        self.calls: list[dict[str, Any]] = []
        self.images: list[bytes] = []
        self.slow_seconds = 5.0
        self.release = threading.Event()  # ends a slow answer early
        self._script: deque[str] = deque()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1beta"

    def script(self, *outcomes: str) -> None:
        assert all(o in OUTCOMES for o in outcomes), outcomes
        self._script.extend(outcomes)

    def generate(self, model: str, body: Any) -> tuple[int, Any]:
        outcome = self._script.popleft() if self._script else "ok"
        if outcome == "rate_limit":
            details = [
                {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": []},
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"},
            ]
            return 429, _error(429, "RESOURCE_EXHAUSTED", "You exceeded your current quota.", details)
        if outcome == "server_error":
            return 500, _error(500, "INTERNAL", "An internal error has occurred.")
        if outcome == "slow":
            self.release.wait(self.slow_seconds)
        if outcome == "prompt_blocked":
            return 200, {"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}, "modelVersion": model}
        if outcome == "image_safety":
            return 200, {
                "candidates": [{"content": {"role": "model", "parts": []}, "finishReason": "IMAGE_SAFETY", "index": 0}],
                "modelVersion": model,
            }
        if outcome == "text_only":
            parts = [{"text": "I can't draw that, but here is a description instead."}]
            return 200, {"candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP"}]}
        image = png(len(self.images) + 7)
        self.images.append(image)
        parts = [
            {"text": "Here is your lighthouse."},
            {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(image).decode()}},
        ]
        return 200, {
            "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 1290, "totalTokenCount": 1302},
            "modelVersion": model,
        }


class _Handler(BaseHTTPRequestHandler):
    server: GeminiServer

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _authorised(self) -> bool:
        if self.headers.get("x-goog-api-key") == self.server.api_key:
            return True
        self._send(400, _error(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key."))
        return False

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        self.server.calls.append({"method": "GET", "path": path})
        if not self._authorised():
            return
        model = path.removeprefix("/v1beta/models/")
        if model in MODELS:
            self._send(200, {"name": f"models/{model}", "supportedGenerationMethods": ["generateContent"]})
        else:
            self._send(404, _error(404, "NOT_FOUND", f"models/{model} is not found."))

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"null")
        self.server.calls.append({"method": "POST", "path": path, "json": body, "at": time.monotonic()})
        if not self._authorised():
            return
        model, _, verb = path.removeprefix("/v1beta/models/").partition(":")
        if verb != "generateContent" or model not in MODELS:
            self._send(404, _error(404, "NOT_FOUND", f"models/{model} is not found for API version v1beta."))
            return
        status, payload = self.server.generate(model, body)
        self._send(status, payload)
