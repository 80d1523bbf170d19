"""An in-process server that speaks RunPod's serverless API (``/v2/<endpoint>/...``) over real HTTP.

It stands in for ``api.runpod.ai`` in front of a ComfyUI worker::

    server = RunPodServer(api_key="rp-test", endpoints=("ep100",))
    server.plan(output_format="message")   # how the next job behaves
    ...
    server.runs[0]["json"]["input"]["workflow"]   # the graph the client sent
    server.jobs[job_id].status                     # IN_QUEUE, IN_PROGRESS, COMPLETED, ...

Routes: ``POST /run`` (``{"id", "status": "IN_QUEUE"}``), ``GET /status/<id>``,
``POST /cancel/<id>``, ``GET /health``. Auth is ``Authorization: Bearer <key>`` (or the
bare key, which RunPod also accepts); anything else is 401. An unknown endpoint is 404.

A job moves one state per status poll: ``queue_polls`` polls IN_QUEUE, ``progress_polls``
polls IN_PROGRESS (with ``workerId``), then its outcome:

* ``ok``: COMPLETED with the image in ``output_format``: ``images_data`` (worker-comfyui
  5.x: ``[{"filename", "type": "base64", "data"}]``), ``images_image`` (``[{"image",
  "filename"}]``), ``images_b64`` (plain strings), ``data_url`` (strings with a
  ``data:image/png;base64,`` prefix), ``message`` (older workers: ``{"message", "status":
  "success"}``), ``job_results`` (``{"job_results": {"images": [...]}}``), ``s3_url``
  (``type: "s3_url"`` dicts whose URL this server serves);
* ``failed``: FAILED with the RunPod SDK's JSON-encoded handler exception in ``error``;
* ``failed_text``: FAILED with a plain ``error`` string (a handler that returned ``{"error"}``);
* ``timed_out``: TIMED_OUT (the endpoint's execution timeout);
* ``stuck``: IN_PROGRESS forever; ``queued``: IN_QUEUE forever.

``run_error`` answers the next ``/run`` with ``rate_limit`` (429, ``Retry-After``) or
``server_error`` (502 HTML from the edge) instead of accepting the job.

The image is a PNG of the size in the graph's latent node, coloured by the sampler's seed.

Edits, as worker-comfyui's handler does them: ``input.images`` (``[{"name", "image"}]``,
base64 with or without a ``data:`` prefix) is checked when the job starts (not a list of
objects with both keys: FAILED with the handler's sentence) and each file is stored under
its ``name`` in ``server.inputs`` (ComfyUI's input folder, overwriting); a bad base64 is
FAILED "Failed to upload one or more input images". A ``LoadImage`` / ``LoadImageMask`` whose
file is not there fails the job as ComfyUI's validation does. Otherwise the output is made
from the loaded image: scaled as the graph's ``ImageScale`` / ``ImageScaleBy`` /
``ImageUpscaleWithModel`` say, blended towards the seed's colour by the sampler's
``denoise``, and, where a mask is loaded (``LoadImageMask``'s channel, or ``LoadImage``'s
MASK output, 1 - alpha), only inside it. A ``/run`` body over ``max_body`` bytes (RunPod's
10 MB) is answered 413.
"""

from __future__ import annotations

import base64
import io
import json
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from PIL import Image, ImageOps, PngImagePlugin

OUTPUT_FORMATS = ("images_data", "images_image", "images_b64", "data_url", "message", "job_results", "s3_url")
OUTCOMES = ("ok", "failed", "failed_text", "timed_out", "stuck", "queued")


@dataclass
class Plan:
    outcome: str = "ok"
    output_format: str = "images_data"
    queue_polls: int = 1
    progress_polls: int = 2


@dataclass
class Job:
    id: str
    endpoint: str
    workflow: Any
    plan: Plan
    status: str = "IN_QUEUE"
    polls: int = 0
    created: float = field(default_factory=time.time)
    output: Any = None
    error: str | None = None
    images: Any = None  # input.images as sent


class RunPodServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, api_key: str = "rp-test", endpoints: tuple[str, ...] = ("ep100",)):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.api_key = api_key
        self.endpoints = set(endpoints)
        self.requests: list[dict[str, Any]] = []
        self.jobs: dict[str, Job] = {}
        self.files: dict[str, bytes] = {}  # served at /files/<name>, for the s3_url format
        self.inputs: dict[str, bytes] = {}  # the worker's ComfyUI input folder, filled from input.images
        self.max_body = 10_000_000  # RunPod's limit for a /run body
        self.default_plan = Plan()
        self._plans: deque[Plan] = deque()
        self._run_errors: deque[str] = deque()
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v2"

    def plan(self, **kwargs: Any) -> Plan:
        plan = Plan(**kwargs)
        assert plan.outcome in OUTCOMES and plan.output_format in OUTPUT_FORMATS, plan
        with self._lock:
            self._plans.append(plan)
        return plan

    def run_error(self, *errors: str) -> None:
        assert all(e in ("rate_limit", "server_error") for e in errors), errors
        with self._lock:
            self._run_errors.extend(errors)

    def paths(self, kind: str = "") -> list[str]:
        return [r["path"] for r in self.requests if kind in r["path"]]

    @property
    def runs(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"].endswith("/run")]

    # --- behaviour ---------------------------------------------------------------------------------

    def submit(self, endpoint: str, body: Any) -> tuple[int, Any, dict[str, str]]:
        with self._lock:
            error = self._run_errors.popleft() if self._run_errors else None
            plan = self._plans.popleft() if self._plans else self.default_plan
        if error == "rate_limit":
            return 429, {"error": "rate limit exceeded"}, {"Retry-After": "0"}
        if error == "server_error":
            return 502, "<html><body><h1>502 Bad Gateway</h1></body></html>", {}
        if not isinstance(body, dict) or "input" not in body:
            return 400, {"error": "input is required"}, {}
        job_input = body["input"] or {}
        job = Job(
            id=f"{uuid.uuid4()}-u1",
            endpoint=endpoint,
            workflow=job_input.get("workflow") if isinstance(job_input, dict) else None,
            plan=plan,
            images=job_input.get("images") if isinstance(job_input, dict) else None,
        )
        with self._lock:
            self.jobs[job.id] = job
        return 200, {"id": job.id, "status": "IN_QUEUE"}, {}

    def advance(self, job: Job) -> dict[str, Any]:
        with self._lock:
            if job.status in ("IN_QUEUE", "IN_PROGRESS"):
                job.polls += 1
                plan = job.plan
                if plan.outcome == "queued" or job.polls <= plan.queue_polls:
                    job.status = "IN_QUEUE"
                elif plan.outcome == "stuck" or job.polls <= plan.queue_polls + plan.progress_polls:
                    job.status = "IN_PROGRESS"
                else:
                    self._finish(job)
            return self.describe(job)

    def _finish(self, job: Job) -> None:
        outcome = job.plan.outcome
        problem = self._worker_inputs(job) if outcome == "ok" else None
        if problem:
            job.status = "FAILED"
            job.error = problem
        elif outcome == "failed":
            job.status = "FAILED"
            job.error = json.dumps(
                {
                    "error_type": "<class 'ValueError'>",
                    "error_message": "Workflow validation failed: Value not in list: "
                    "ckpt_name: 'flux1-dev.safetensors' not in []",
                    "error_traceback": 'Traceback (most recent call last):\n  File "/handler.py", line 600 ...',
                    "hostname": "abc123xyz-64410b2d",
                    "worker_id": "abc123xyz",
                    "runpod_version": "1.7.9",
                }
            )
        elif outcome == "failed_text":
            job.status = "FAILED"
            job.error = "Error queuing workflow: HTTP Error 400: Bad Request"
        elif outcome == "timed_out":
            job.status = "TIMED_OUT"
        else:
            job.status = "COMPLETED"
            job.output = self._output(job)

    def _worker_inputs(self, job: Job) -> str | None:
        """worker-comfyui's validate_input and upload_images, then ComfyUI's check of the loaders."""
        images = job.images
        if images is not None:
            if not isinstance(images, list) or not all(
                isinstance(image, dict) and "name" in image and "image" in image for image in images
            ):
                return "'images' must be a list of objects with 'name' and 'image' keys"
            for image in images:
                data = image["image"]
                data = data.split(",", 1)[1] if isinstance(data, str) and "," in data else data
                try:
                    blob = base64.b64decode(data)
                except (ValueError, TypeError):
                    return "Failed to upload one or more input images"
                self.inputs[image["name"]] = blob  # (called from advance(), under the lock)
        for node_id, node in (job.workflow or {}).items():
            if isinstance(node, dict) and node.get("class_type") in ("LoadImage", "LoadImageMask"):
                name = (node.get("inputs") or {}).get("image")
                if name not in self.inputs:
                    return (
                        f"Workflow validation failed:\n\u2022 Node {node_id} ({node['class_type']}): "
                        f"Invalid image file: {name}"
                    )
        return None

    def _output(self, job: Job) -> Any:
        png = render(job.workflow, self.inputs)
        b64 = base64.b64encode(png).decode()
        name = "ComfyUI_00001_.png"
        fmt = job.plan.output_format
        if fmt == "images_data":
            return {"images": [{"filename": name, "type": "base64", "data": b64}]}
        if fmt == "images_image":
            return {"images": [{"image": b64, "filename": name}]}
        if fmt == "images_b64":
            return {"images": [b64]}
        if fmt == "data_url":
            return {"images": [f"data:image/png;base64,{b64}"]}
        if fmt == "message":
            return {"message": b64, "status": "success"}
        if fmt == "job_results":
            return {"job_results": {"images": [b64], "seed": seed_of(job.workflow)}}
        key = f"{job.id}/{name}"
        self.files[key] = png
        host, port = self.server_address[:2]
        return {"images": [{"filename": name, "type": "s3_url", "data": f"http://{host}:{port}/files/{key}"}]}

    def describe(self, job: Job) -> dict[str, Any]:
        body: dict[str, Any] = {"id": job.id, "status": job.status}
        if job.status != "IN_QUEUE":
            body.update(delayTime=1200 + 7 * job.plan.queue_polls, workerId="abc123xyz")
        if job.status in ("COMPLETED", "FAILED", "TIMED_OUT"):
            body["executionTime"] = 3400
        if job.output is not None:
            body["output"] = job.output
        if job.error is not None:
            body["error"] = job.error
        return body

    def health(self, endpoint: str) -> dict[str, Any]:
        with self._lock:
            jobs = [job for job in self.jobs.values() if job.endpoint == endpoint]
        count = {
            status: sum(job.status == status for job in jobs)
            for status in ("COMPLETED", "FAILED", "IN_PROGRESS", "IN_QUEUE")
        }
        return {
            "jobs": {
                "completed": count["COMPLETED"],
                "failed": count["FAILED"],
                "inProgress": count["IN_PROGRESS"],
                "inQueue": count["IN_QUEUE"],
                "retried": 0,
            },
            "workers": {
                "idle": 1,
                "initializing": 0,
                "ready": 1,
                "running": count["IN_PROGRESS"],
                "throttled": 0,
                "unhealthy": 0,
            },
        }


def latent_size(workflow: Any) -> tuple[int, int]:
    for node in (workflow or {}).values():
        if isinstance(node, dict) and node.get("class_type") in ("EmptyLatentImage", "EmptySD3LatentImage"):
            return int(node["inputs"]["width"]), int(node["inputs"]["height"])
    return 64, 64


def seed_of(workflow: Any) -> int:
    for node in (workflow or {}).values():
        if isinstance(node, dict) and "seed" in node.get("inputs", {}):
            return int(node["inputs"]["seed"])
    return 0


def edited(workflow: dict[str, Any], inputs: dict[str, bytes]) -> Image.Image | None:
    """What an edit graph makes of its loaded image; None for a graph that loads none."""
    nodes = {node_id: node for node_id, node in workflow.items() if isinstance(node, dict)}
    by_class = {}
    for node_id, node in nodes.items():
        by_class.setdefault(node.get("class_type"), (node_id, node))
    if "LoadImage" not in by_class:
        return None
    load_id, load = by_class["LoadImage"]
    loaded = Image.open(io.BytesIO(inputs[load["inputs"]["image"]]))
    image = loaded.convert("RGB")
    mask = None
    if "LoadImageMask" in by_class:
        spec = by_class["LoadImageMask"][1]["inputs"]
        channels = {"red": "R", "green": "G", "blue": "B", "alpha": "A"}
        mask = Image.open(io.BytesIO(inputs[spec["image"]])).convert("RGBA").getchannel(channels[spec["channel"]])
        if spec["channel"] == "alpha":
            mask = ImageOps.invert(mask)
    elif any(value == [load_id, 1] for node in nodes.values() for value in (node.get("inputs") or {}).values()):
        alpha = loaded.convert("RGBA").getchannel("A")
        mask = ImageOps.invert(alpha)  # LoadImage's MASK: 1 - alpha
    if "ImageUpscaleWithModel" in by_class:
        image = image.resize((image.width * 4, image.height * 4), Image.LANCZOS)
    if "ImageScaleBy" in by_class:
        factor = float(by_class["ImageScaleBy"][1]["inputs"]["scale_by"])
        image = image.resize((round(image.width * factor), round(image.height * factor)), Image.LANCZOS)
    if "ImageScale" in by_class:
        spec = by_class["ImageScale"][1]["inputs"]
        image = image.resize((int(spec["width"]), int(spec["height"])), Image.LANCZOS)
    denoise = next(
        (float(node["inputs"]["denoise"]) for node in nodes.values() if "denoise" in (node.get("inputs") or {})),
        None,
    )
    if denoise is not None:
        seed = seed_of(workflow)
        painted = Image.blend(image, Image.new("RGB", image.size, (seed % 251, 100, 200)), denoise)
        if mask is None:
            image = painted
        else:
            mask = mask.resize(image.size).point(lambda value: 255 if value >= 128 else 0)
            image = Image.composite(painted, image, mask)
    return image


def render(workflow: Any, inputs: dict[str, bytes] | None = None) -> bytes:
    """The PNG the worker returns: the file ComfyUI's SaveImage wrote, with the graph it ran
    as a tEXt "prompt" chunk."""
    seed = seed_of(workflow)
    image = edited(workflow or {}, inputs or {})
    if image is None:
        image = Image.new("RGB", latent_size(workflow), (seed % 251, 100, 200))
    info = PngImagePlugin.PngInfo()
    info.add_text("prompt", json.dumps(workflow))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


class _Handler(BaseHTTPRequestHandler):
    server: RunPodServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002 - quiet in tests
        pass

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        if isinstance(payload, (bytes, str)):
            data = payload.encode() if isinstance(payload, str) else payload
            content_type = "text/html" if isinstance(payload, str) else "image/png"
        else:
            data, content_type = json.dumps(payload).encode(), "application/json"
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _route(self, body: Any) -> tuple[str, str, str] | None:
        path = urlsplit(self.path).path
        with self.server._lock:
            headers = {name.lower(): value for name, value in self.headers.items()}
            self.server.requests.append({"method": self.command, "path": path, "headers": headers, "json": body})
        if path.startswith("/files/"):
            return "", "files", path[len("/files/") :]
        auth = self.headers.get("Authorization", "")
        if auth not in (f"Bearer {self.server.api_key}", self.server.api_key):
            self._send(401, "Unauthorized")
            return None
        parts = path.strip("/").split("/")
        if len(parts) < 3 or parts[0] != "v2":
            self._send(404, {"error": "not found"})
            return None
        endpoint, action, rest = parts[1], parts[2], "/".join(parts[3:])
        if endpoint not in self.server.endpoints:
            self._send(404, {"error": f"endpoint {endpoint} not found"})
            return None
        return endpoint, action, rest

    def do_GET(self):  # noqa: N802
        route = self._route(None)
        if route is None:
            return
        endpoint, action, rest = route
        server = self.server
        if action == "files" and rest in server.files:
            self._send(200, server.files[rest])
        elif action == "health" and not rest:
            self._send(200, server.health(endpoint))
        elif action == "status" and rest:
            job = server.jobs.get(rest)
            if job is None or job.endpoint != endpoint:
                self._send(404, {"error": "request does not exist"})
            else:
                self._send(200, server.advance(job))
        else:
            self._send(404, {"error": "not found"})

    def do_POST(self):  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if urlsplit(self.path).path.endswith("/run") and length > self.server.max_body:
            if self._route(None) is None:
                return
            self._send(413, {"error": f"request body is {length} bytes; the limit is {self.server.max_body}"})
            return
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        route = self._route(body)
        if route is None:
            return
        endpoint, action, rest = route
        server = self.server
        if action == "run" and not rest:
            status, payload, headers = server.submit(endpoint, body)
            self._send(status, payload, headers)
        elif action == "cancel" and rest:
            job = server.jobs.get(rest)
            if job is None or job.endpoint != endpoint:
                self._send(404, {"error": "request does not exist"})
                return
            with server._lock:
                if job.status in ("IN_QUEUE", "IN_PROGRESS"):
                    job.status = "CANCELLED"
            self._send(200, {"id": job.id, "status": job.status})
        else:
            self._send(404, {"error": "not found"})
