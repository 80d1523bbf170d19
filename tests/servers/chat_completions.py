"""An in-process server that speaks the OpenAI chat completions protocol over real HTTP.

``POST /v1/chat/completions`` takes ``{"model", "messages": [...]}`` where a message's
``content`` is a string or a list of parts (``{"type": "text", "text"}`` and
``{"type": "image_url", "image_url": {"url": "data:image/png;base64,..."}}``), and answers
the way api.openai.com does (``chat.completion`` with ``choices[0].message.content`` and
``usage``; errors as ``{"error": {"message", "type", "param", "code"}}``). Tests script what
the next requests get::

    server = ChatCompletionsServer(api_key="sk-test")
    server.script("rate_limit", "ok")   # first a 429 with Retry-After, then an answer
    server.reply = "A lighthouse at dusk"  # what "ok" answers for text; None: a description
    server.completions[0]["json"]       # what the client sent
    server.images(0)                    # the images of the first request, decoded (Pillow)

Outcomes: ``ok``; ``server_error`` (500); ``rate_limit`` (429, ``Retry-After: <retry_after>``);
``slow`` (answers after ``delay`` seconds, later than a client's timeout); ``malformed``
(200 with a body that is not a chat completion); ``empty`` (a completion whose content is
null, with a refusal). Once the script runs out, ``default`` (``ok``) applies. A request with
images that "ok" answers gets a description of the first image (its size and its colour in
the middle), so a test can see that the image arrived whole.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from PIL import Image

OUTCOMES = ("ok", "server_error", "rate_limit", "slow", "malformed", "empty")


class ChatCompletionsServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, api_key: str = "", *, retry_after: str = "7", delay: float = 3.0):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.api_key = api_key  # blank: no key needed (a local server)
        self.retry_after = retry_after
        self.delay = delay
        self.default = "ok"
        self.reply: str | None = None  # what "ok" answers; None: made from the request
        self.requests: list[dict[str, Any]] = []  # every request, in order; header names lower-cased
        self._script: deque[str] = deque()
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def serve_forever(self, poll_interval: float = 0.05) -> None:
        super().serve_forever(poll_interval)

    def shutdown(self) -> None:
        self._stop.set()  # a "slow" answer still waiting ends now
        super().shutdown()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def script(self, *outcomes: str) -> None:
        unknown = [o for o in outcomes if o not in OUTCOMES]
        assert not unknown, f"unknown outcome(s) {unknown}"
        with self._lock:
            self._script.extend(outcomes)

    def next_outcome(self) -> str:
        with self._lock:
            return self._script.popleft() if self._script else self.default

    @property
    def completions(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"] == "/v1/chat/completions"]

    def texts(self, index: int = -1) -> str:
        """All the text of one request's messages, joined."""
        return "\n".join(_texts(self.completions[index]["json"]))

    def images(self, index: int = -1) -> list[Image.Image]:
        """The images of one request's ``image_url`` parts, decoded."""
        return [_decode(url) for url in _image_urls(self.completions[index]["json"])]


def _parts(body: dict[str, Any]):
    for message in body.get("messages", []):
        content = message.get("content")
        if isinstance(content, str):
            yield {"type": "text", "text": content}
        elif isinstance(content, list):
            yield from content


def _texts(body: dict[str, Any]) -> list[str]:
    return [part.get("text", "") for part in _parts(body) if part.get("type") == "text"]


def _image_urls(body: dict[str, Any]) -> list[str]:
    return [part["image_url"]["url"] for part in _parts(body) if part.get("type") == "image_url"]


def _decode(url: str) -> Image.Image:
    header, _, payload = url.partition(",")
    if not header.startswith("data:image/") or not header.endswith(";base64"):
        raise ValueError(f"not a base64 image data URL: {header[:40]!r}")
    image = Image.open(io.BytesIO(base64.b64decode(payload, validate=True)))
    image.load()
    return image


def _problem(body: Any) -> str | None:
    """What the real API would answer 400 for, or None."""
    if not isinstance(body, dict):
        return "We could not parse the JSON body of your request."
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "you must provide a model parameter"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "'messages' must be a non-empty array."
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("system", "developer", "user", "assistant"):
            return f"Invalid value for 'messages[{index}].role'."
        content = message.get("content")
        if isinstance(content, str):
            continue
        if not isinstance(content, list):
            return f"Invalid type for 'messages[{index}].content'."
        for number, part in enumerate(content):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text" and isinstance(part.get("text"), str):
                continue
            if kind == "image_url" and isinstance(part.get("image_url"), dict):
                url = part["image_url"].get("url", "")
                if url.startswith("data:"):
                    try:
                        _decode(url)
                    except (ValueError, binascii.Error, OSError):
                        return f"Invalid image in 'messages[{index}].content[{number}]'."
                    continue
                if url.startswith(("http://", "https://")):
                    continue
            return f"Invalid content part 'messages[{index}].content[{number}]'."
    return None


class _Handler(BaseHTTPRequestHandler):
    server: ChatCompletionsServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002 - quiet in tests
        pass

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(raw)

    def _error(self, status: int, message: str, kind: str, code: str | None = None, **headers: str) -> None:
        self._send(status, {"error": {"message": message, "type": kind, "param": None, "code": code}}, headers)

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        with self.server._lock:
            headers = {name.lower(): value for name, value in self.headers.items()}
            self.server.requests.append({"method": "POST", "path": self.path, "headers": headers, "json": body})
        if self.path != "/v1/chat/completions":
            return self._error(404, f"Invalid URL (POST {self.path})", "invalid_request_error")
        if self.server.api_key and headers.get("authorization") != f"Bearer {self.server.api_key}":
            return self._error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
        problem = _problem(body)
        if problem:
            return self._error(400, problem, "invalid_request_error")
        outcome = self.server.next_outcome()
        if outcome == "server_error":
            return self._error(
                500, "The server had an error while processing your request. Sorry about that!", "server_error"
            )
        if outcome == "rate_limit":
            return self._error(
                429,
                f"Rate limit reached for {body['model']} on requests per min (RPM): Limit 3, Used 3, Requested 1.",
                "requests",
                "rate_limit_exceeded",
                **{"Retry-After": self.server.retry_after},
            )
        if outcome == "slow":
            self.server._stop.wait(self.server.delay)
        if outcome == "malformed":
            return self._send(200, {"id": "chatcmpl-1", "object": "chat.completion", "result": "A lighthouse"})
        content, refusal = self._answer(body), None
        if outcome == "empty":
            content, refusal = None, "I can't help with that."
        return self._send(
            200,
            {
                "id": f"chatcmpl-{len(self.server.requests)}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content, "refusal": refusal},
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150},
            },
        )

    def _answer(self, body: dict[str, Any]) -> str:
        if self.server.reply is not None:
            return self.server.reply
        urls = _image_urls(body)
        if urls:
            image = _decode(urls[0]).convert("RGB")
            width, height = image.size
            colour = image.getpixel((width // 2, height // 2))
            return f'"A picture {width} by {height} pixels, rgb{tuple(colour)} in the middle."'
        return '"A lighthouse on a cliff at dusk, waves below, warm light"'
