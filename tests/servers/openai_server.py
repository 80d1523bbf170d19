"""An in-process server that speaks the OpenAI Images API over real HTTP.

It answers ``POST /v1/images/generations`` the way api.openai.com does (base64 image,
``usage``, error bodies ``{"error": {"message", "type", "param", "code"}}``) and
``GET /v1/models`` with each model's ``shutdown_date`` ("YYYY-MM-DD" or null, the shape of
https://developers.openai.com/api/reference/resources/models/methods/list). Tests script
what the next requests get::

    server = OpenAIImagesServer(api_key="sk-test")
    server.script("rate_limit", "ok")      # first a 429 with Retry-After, then an image
    ...
    server.generations[0]["json"]["size"]  # what the client sent
    server.models = {"gpt-image-2": "2026-12-20"}  # GET /v1/models: id -> shutdown_date (None: null)
    server.models_error = 500                 # GET /v1/models fails with this status instead

It also answers ``POST /v1/images/edits`` as ``client.images.edit`` sends it: multipart/form-data
with ``image`` (one file) or ``image[]`` (several), ``mask`` (a PNG the size of the first
image; alpha 0 marks the area to edit), ``prompt``, ``input_fidelity``, ``partial_images`` and
``stream``. The edited image is the first image at the asked size with the masked area painted
magenta (:data:`EDIT_PAINT`), so tests can see what went where. With ``stream=true`` the answer
is server-sent events: ``image_edit.partial_image`` (``b64_json``, ``partial_image_index``) for
each partial image, then ``image_edit.completed`` (the image and ``usage``), the shapes of the SDK's
``ImageEditPartialImageEvent`` and ``ImageEditCompletedEvent``. ``server.edits`` lists what was
sent: ``{"fields": {...}, "files": [{"field", "filename", "content_type", "data"}]}``.
Models in ``server.no_fidelity`` answer 400 to ``input_fidelity``, as OpenAI does for gpt-image-2.

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
import zlib
from collections import deque
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from PIL import Image, ImageFilter

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
#: The colour an edit paints where the mask is transparent.
EDIT_PAINT = (255, 0, 255)
#: What ``GET /v1/models`` lists by default: the image models OpenAI serves, none with a shutdown announced.
MODELS: dict[str, str | None] = {
    "gpt-image-2": None,
    "gpt-image-2-2026-04-21": None,
    "gpt-image-2.5-sunburst": None,
    "gpt-image-2.5-flare": None,
    "gpt-image-2.6-sunburst": None,
    "gpt-image-2.6-flare": None,
}


PROVENANCE_XMP = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description xmlns:dcterms="http://purl.org/dc/terms/" dcterms:provenance="self#jumbf=c2pa"/>'
    b"</rdf:RDF></x:xmpmeta>"
)


def c2pa_manifest_store() -> bytes:
    """A C2PA manifest store's outer JUMBF box, labelled "c2pa", holding the claim as JSON.

    OpenAI's images carry Content Credentials saying which service made them. The real
    store is a signed CBOR claim; its shape here (a "jumb" superbox with a "jumd"
    description and a content box) is what matters, as the container is where it is found.
    """
    claim = json.dumps({"claim_generator": "OpenAI-API", "title": "image.png", "actions": ["c2pa.created"]}).encode()
    description = b"jumd" + bytes.fromhex("6332706100110010800000aa00389b71") + b"\x03" + b"c2pa\x00"
    description = len(description + b"1234").to_bytes(4, "big") + description
    content = len(claim + b"12345678").to_bytes(4, "big") + b"json" + claim
    body = b"jumb" + description + content
    return (len(body) + 4).to_bytes(4, "big") + body


def with_content_credentials(data: bytes, fmt: str) -> bytes:
    """``data`` with a C2PA manifest store where the C2PA specification puts it: a PNG
    "caBX" chunk, JPEG APP11 segments (JPEG XT box framing), a WebP "C2PA" chunk."""
    store = c2pa_manifest_store()
    if fmt == "PNG":
        chunk = b"caBX" + store
        crc = zlib.crc32(chunk).to_bytes(4, "big")
        ihdr_end = 8 + 8 + 13 + 4
        return data[:ihdr_end] + len(store).to_bytes(4, "big") + chunk + crc + data[ihdr_end:]
    if fmt == "JPEG":
        # "JP", box instance 1, packet sequence 1, then the box.
        payload = b"JP" + (1).to_bytes(2, "big") + (1).to_bytes(4, "big") + store
        return data[:2] + b"\xff\xeb" + (len(payload) + 2).to_bytes(2, "big") + payload + data[2:]
    # WebP: the extended format (Pillow writes VP8X when asked for XMP), the store appended.
    chunk = b"C2PA" + len(store).to_bytes(4, "little") + store + (b"\x00" if len(store) % 2 else b"")
    body = data[8:] + chunk
    return b"RIFF" + len(body).to_bytes(4, "little") + body


class OpenAIImagesServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, api_key: str = "sk-test", *, retry_after: str = "0", delay: float = 0.0):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.api_key = api_key
        self.retry_after = retry_after
        self.delay = delay
        self.default = "ok"
        self.models: dict[str, str | None] = dict(MODELS)
        self.models_error: int | None = None
        self.requests: list[dict[str, Any]] = []  # every request, in order; header names lower-cased
        self.images: list[bytes] = []  # every image file served, in order
        self.edits: list[dict[str, Any]] = []  # every edit request's form: {"fields": {...}, "files": [...]}
        self.no_fidelity = {"gpt-image-2", "gpt-image-2-2026-04-21"}
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

    @property
    def model_lists(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"].rstrip("/") == "/v1/models"]


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
        if self.path.rstrip("/") == "/v1/models" and self.server.models_error:
            self._send(
                self.server.models_error,
                {
                    "error": {
                        "message": "The server had an error while processing your request. Sorry about that!",
                        "type": "server_error",
                        "param": None,
                        "code": None,
                    }
                },
            )
        elif self.path.rstrip("/") == "/v1/models":
            models = [
                {"id": model, "object": "model", "created": 1776729600, "owned_by": "system", "shutdown_date": date}
                for model, date in self.server.models.items()
            ]
            self._send(200, {"object": "list", "data": models})
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
        if self.path == "/v1/images/edits":
            self._edit(raw)
            return
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
        # The XMP names the manifest (dcterms:provenance), as C2PA suggests; for WebP it also
        # makes Pillow write the extended format, which extra chunks need.
        image.save(buffer, format=FORMATS[output_format], **({"xmp": PROVENANCE_XMP} if output_format != "png" else {}))
        buffer = io.BytesIO(with_content_credentials(buffer.getvalue(), FORMATS[output_format]))
        self.server.images.append(buffer.getvalue())
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

    # --- POST /v1/images/edits ----------------------------------------------------------------

    def _error(self, status: int, message: str, param: str | None, code: str | None = None) -> None:
        self._send(
            status, {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}}
        )

    def _form(self, raw: bytes) -> tuple[dict[str, str], list[dict[str, Any]]] | None:
        content_type = self.headers.get("Content-Type", "")
        if not content_type.startswith("multipart/form-data"):
            return None
        message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + raw)
        fields: dict[str, str] = {}
        files: list[dict[str, Any]] = []
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            data = part.get_payload(decode=True) or b""
            filename = part.get_filename()
            if filename is not None:
                files.append(
                    {"field": name, "filename": filename, "content_type": part.get_content_type(), "data": data}
                )
            else:
                fields[name] = data.decode()
        return fields, files

    def _edit(self, raw: bytes) -> None:
        form = self._form(raw)
        with self.server._lock:
            headers = {name.lower(): value for name, value in self.headers.items()}
            record = {"fields": form[0], "files": form[1]} if form else None
            self.server.requests.append({"method": "POST", "path": self.path, "headers": headers, "json": record})
            if record is not None:
                self.server.edits.append(record)
        if not self._authorised():
            return
        if form is None:
            self._error(400, "The request must be multipart/form-data.", None)
            return
        fields, files = form
        images = [f for f in files if f["field"] in ("image", "image[]")]
        masks = [f for f in files if f["field"] == "mask"]
        if not fields.get("prompt"):
            self._error(400, "Missing required parameter: 'prompt'.", "prompt")
            return
        if not images:
            self._error(400, "Missing required parameter: 'image'.", "image")
            return
        model = fields.get("model") or "gpt-image-2"
        if fields.get("input_fidelity") and model in self.server.no_fidelity:
            self._error(400, f"input_fidelity is not supported for model '{model}'.", "input_fidelity")
            return
        try:
            source = Image.open(io.BytesIO(images[0]["data"]))
            source.load()
        except Exception:  # noqa: BLE001 - the API's own answer to a file it cannot read
            self._error(400, "Invalid image file or mode for image 1, please check your image file.", "image")
            return
        mask = None
        if masks:
            try:
                mask = Image.open(io.BytesIO(masks[0]["data"]))
                mask.load()
            except Exception:  # noqa: BLE001
                self._error(400, "Invalid mask image: it must be a PNG.", "mask")
                return
            if mask.format != "PNG" or mask.mode not in ("RGBA", "LA"):
                self._error(400, "Invalid mask image format - mask must be a PNG with an alpha channel.", "mask")
                return
            if mask.size != source.size:
                self._error(400, "Invalid mask image - mask size does not match image size.", "mask")
                return
        outcome = self.server.next_outcome()
        if self.server.delay:
            time.sleep(self.server.delay)
        if outcome != "ok":
            status, error = ERRORS[outcome]
            headers = {"Retry-After": self.server.retry_after} if status == 429 else {}
            self._send(status, {"error": error}, headers)
            return
        painted = source.convert("RGB")
        if mask is not None:
            alpha = mask.getchannel("A").point(lambda value: 255 if value == 0 else 0)
            painted.paste(Image.new("RGB", painted.size, EDIT_PAINT), mask=alpha)
        size = fields.get("size") or "auto"
        width, height = source.size if size == "auto" else (int(v) for v in size.split("x"))
        painted = painted.resize((width, height))
        output_format = fields.get("output_format") or "png"
        buffer = io.BytesIO()
        painted.save(buffer, format=FORMATS[output_format])
        final = with_content_credentials(buffer.getvalue(), FORMATS[output_format])
        self.server.images.append(final)
        prompt_tokens = max(1, len(fields["prompt"]) // 4)
        image_tokens = 323 * len(images)
        common = {
            "background": fields.get("background") or "opaque",
            "created_at": int(time.time()),
            "output_format": output_format,
            "quality": fields.get("quality") if fields.get("quality") not in (None, "auto") else "medium",
            "size": f"{width}x{height}",
        }
        usage = {
            "input_tokens": prompt_tokens + image_tokens,
            "input_tokens_details": {"image_tokens": image_tokens, "text_tokens": prompt_tokens},
            "output_tokens": 1056,
            "total_tokens": prompt_tokens + image_tokens + 1056,
        }
        if fields.get("stream") != "true":
            self._send(
                200,
                {
                    "created": common["created_at"],
                    "background": common["background"],
                    "data": [{"b64_json": base64.b64encode(final).decode()}],
                    "output_format": output_format,
                    "quality": common["quality"],
                    "size": common["size"],
                    "usage": {**usage, "output_tokens_details": {"image_tokens": 1056, "text_tokens": 0}},
                },
            )
            return
        events = []
        for index in range(int(fields.get("partial_images") or 0)):
            blurred = painted.filter(ImageFilter.GaussianBlur(radius=8 * (3 - index)))
            partial = io.BytesIO()
            blurred.save(partial, format=FORMATS[output_format])
            events.append(
                {
                    "type": "image_edit.partial_image",
                    "b64_json": base64.b64encode(partial.getvalue()).decode(),
                    "partial_image_index": index,
                    **common,
                }
            )
        events.append(
            {"type": "image_edit.completed", "b64_json": base64.b64encode(final).decode(), "usage": usage, **common}
        )
        body = b"".join(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode() for event in events)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-request-id", f"req_{len(self.server.requests):04d}")
        self.end_headers()
        self.wfile.write(body)
