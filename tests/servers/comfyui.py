"""An in-process fake ComfyUI that answers like the recordings in ``comfyui-protocol/``.

HTTP and the websocket share one port (aiohttp, like ComfyUI itself), on an event loop in
a background thread, so the real client talks to it over real sockets::

    with FakeComfyUI(run_time=0.2) as server:
        provider = ComfyUIProvider("comfyui", urls=[server.url])
        ...
        server.requests        # [(method, path, json_body), ...] as received
        server.prompts         # {prompt_id: graph} of accepted prompts

What it copies from the recordings of ComfyUI 0.3.64 (``comfyui_recorded.json.gz`` holds
the recorded ``/object_info``, ``/system_stats``, execution errors and tracebacks):

* ``POST /prompt`` validates like ComfyUI's ``validate_prompt`` and answers 400 bodies of
  the same shape and wording (``value_not_in_list``, ``required_input_missing``, min/max,
  type errors, ``invalid_prompt``, ``prompt_no_outputs``, ``no_prompt``, bad links with
  the recorded tracebacks); a malformed or empty body gets the 500 ``text/plain`` page.
  ``number`` counts every POST whose body parses; ``front: true`` makes it negative.
* One prompt runs at a time. Message order: ``status``, ``execution_start``,
  ``execution_cached``, per node ``progress_state`` / ``executing`` / ``progress`` (samplers,
  one per step) / ``progress_state``, ``executed`` for output nodes, ``execution_success``,
  then the history entry is written, then ``status``, then ``executing {node: null}``. While
  a prompt is queued or running ``/history/<id>`` is ``{}``. Nodes whose inputs match the
  previous successful prompt are cached, as ComfyUI does (an identical graph writes no
  new file).
* Model files named ``broken*``, ``garbage*`` or ``valid_but_unknown*`` pass validation
  and fail while loading with the recorded ``execution_error``.
* ``POST /queue`` ``delete`` / ``clear`` touch pending prompts only; ``POST /interrupt``
  with no body or ``{}`` stops whatever runs, with ``{"prompt_id": X}`` only X if it is
  running; both take effect at the next node or sampler step and end with
  ``execution_interrupted``. ``/queue`` lists pending prompts in heap order.
* Messages go to the newest socket of the prompt's ``client_id``; a prompt without one
  sends only ``progress_state``/``progress`` (to everyone) and no ``executing``. A socket
  that reconnects mid-run gets ``executing {node}`` without a ``prompt_id``.
* A foreign ``Origin`` header gets 403 with an empty body; every route is also under ``/api``.
* ``POST /upload/image`` stores files as recorded (05b): without ``overwrite`` a different file
  of the same name becomes ``name (1).png`` and identical bytes return the existing name; no
  ``image`` field is 400. ``LoadImage`` / ``LoadImageMask`` of a file that is not there fail
  validation (``custom_validation_failed``), and graphs that load a file are run on its
  pixels (resizes, a sampler's blend towards its seed's colour by ``denoise``, noise masks,
  ``ImageCompositeMasked``): see the "uploads and edit graphs" section. ``uploads`` lists them.
* With ``jobs_api=True`` it is a newer ComfyUI (``/system_stats`` reports ``comfyui_version``
  ``NEWER_VERSION`` unless ``comfyui_version`` says otherwise): ``GET /api/jobs`` and
  ``GET /api/jobs/<id>`` answer as ComfyUI's ``server.py`` and ``comfy_execution/jobs.py``
  do (Comfy-Org/ComfyUI PR #11054): a job is ``pending`` / ``in_progress`` from the queue or
  ``completed`` / ``failed`` from history (with ``outputs`` and ``execution_status``), an
  unknown id is 404 ``{"error": "Job not found"}``, and ``POST /prompt`` stamps
  ``extra_data.create_time``. By default those routes are 404, as on 0.3.64.

Knobs for tests: ``run_time`` (seconds per prompt, or a callable of the graph; a prompt's
``extra_data["fake_run_time"]`` overrides it), ``models`` (files per model folder),
``previews`` (``"legacy"`` or ``"metadata"`` binary frames), ``stall_socket`` (stop
sending frames after ``execution_start``), ``drop_socket`` (close the client's socket
mid-run), ``gc_stall`` (block the whole loop that long before ``executing {node: null}``
when ``gc_idle`` seconds passed since the last one, like ComfyUI's ``gc.collect()``),
``history_lag`` (between ``execution_success`` and the history write; the recordings show
a fraction of a millisecond), ``fail_next()`` (answer the next requests with a 5xx) and
``system_devices``; ``batch_extra`` (a prompt with ``batch_size`` N makes N images, one
per batch index, in ``run_time * (1 + batch_extra * (N - 1))``: a batch costs less than N
runs); ``ignore_interrupt`` answers ``POST /interrupt`` with 200 and stops
nothing (a node stuck in a long call that never checks for interrupts), ``jobs_api`` and
``comfyui_version`` as above; ``model_switch_cost`` (seconds a checkpoint or diffusion-model
loader adds when it runs, i.e. when the previous prompt did not load the same file: ComfyUI
keeps the last model; every load is listed in ``loads`` and at ``GET /fake/loads``).
``python -m tests.servers.comfyui`` runs one on its own.
"""

from __future__ import annotations

import asyncio
import copy
import gzip
import hashlib
import heapq
import io
import json
import os
import socket
import struct
import threading
import time
import uuid
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlparse

from aiohttp import WSMsgType, web
from PIL import Image, ImageOps, PngImagePlugin

RECORDED = Path(__file__).with_name("comfyui_recorded.json.gz")
INTERNAL_ERROR = "500 Internal Server Error\n\nServer got itself in trouble"

# Model folders whose files fill each loader's combo inputs (the recorded lists are empty).
MODEL_INPUTS = {
    ("CheckpointLoaderSimple", "ckpt_name"): "checkpoints",
    ("UNETLoader", "unet_name"): "diffusion_models",
    ("CLIPLoader", "clip_name"): "text_encoders",
    ("DualCLIPLoader", "clip_name1"): "text_encoders",
    ("DualCLIPLoader", "clip_name2"): "text_encoders",
    ("TripleCLIPLoader", "clip_name1"): "text_encoders",
    ("TripleCLIPLoader", "clip_name2"): "text_encoders",
    ("TripleCLIPLoader", "clip_name3"): "text_encoders",
    ("VAELoader", "vae_name"): "vae",
    ("LoraLoader", "lora_name"): "loras",
    ("LoraLoaderModelOnly", "lora_name"): "loras",
    ("UpscaleModelLoader", "model_name"): "upscale_models",
}
# Files that make the shipped workflow templates valid out of the box.
DEFAULT_MODELS = {
    "checkpoints": [
        "sd3.5_large.safetensors",
        "sd3.5_large_turbo.safetensors",
        "sd_xl_base_1.0.safetensors",
    ],
    "diffusion_models": ["flux1-dev.safetensors"],
    "text_encoders": ["clip_g.safetensors", "clip_l.safetensors", "t5xxl_fp16.safetensors"],
    "vae": ["ae.safetensors"],
    "loras": [],
}
SAMPLERS = {"KSampler", "KSamplerAdvanced", "SamplerCustom", "SamplerCustomAdvanced"}
NEWER_VERSION = "0.5.1"  # what a jobs_api fake reports: a release after the jobs API was added (0.3.64 has none)
JOB_STATUSES = ["pending", "in_progress", "completed", "failed"]  # comfy_execution/jobs.py JobStatus.ALL
BROKEN_PREFIXES = ("broken", "garbage", "valid_but_unknown")
# Inputs that name a file in the input folder (LoadImage's VALIDATE_INPUTS checks it exists).
UPLOADED_INPUTS = {("LoadImage", "image"), ("LoadImageMask", "image")}
FILE_LOADERS = {"LoadImage", "LoadImageMask"}
RESAMPLE = {
    "nearest-exact": Image.NEAREST,
    "bilinear": Image.BILINEAR,
    "area": Image.BOX,
    "bicubic": Image.BICUBIC,
    "lanczos": Image.LANCZOS,
}


@lru_cache(maxsize=1)
def recorded() -> dict[str, Any]:
    return json.loads(gzip.decompress(RECORDED.read_bytes()))


class Interrupted(Exception):
    def __init__(self, node_id: str):
        self.node_id = node_id


class ExecutionFailed(Exception):
    def __init__(self, node_id: str, payload: dict[str, Any]):
        self.node_id = node_id
        self.payload = payload


class FakeComfyUI:
    def __init__(
        self,
        *,
        run_time: float | Callable[[dict], float] = 0.05,
        models: dict[str, list[str]] | None = None,
        previews: str | None = None,
        stall_socket: bool = False,
        drop_socket: bool = False,
        gc_stall: float = 0.0,
        gc_idle: float = 10.0,
        history_lag: float = 0.0005,
        system_devices: list[dict[str, Any]] | None = None,
        jobs_api: bool = False,
        comfyui_version: str | None = None,
        ignore_interrupt: bool = False,
        batch_extra: float = 0.25,
        model_switch_cost: float = 0.0,
        port: int = 0,
    ):
        self.run_time = run_time
        self.models = {**DEFAULT_MODELS, **(models or {})}
        self.previews = previews
        self.stall_socket = stall_socket
        self.drop_socket = drop_socket
        self.gc_stall = gc_stall
        self.gc_idle = gc_idle
        self.history_lag = history_lag
        self.system_devices = system_devices
        self.jobs_api = jobs_api
        self.comfyui_version = comfyui_version or (NEWER_VERSION if jobs_api else None)
        self.ignore_interrupt = ignore_interrupt
        self.batch_extra = batch_extra
        self.model_switch_cost = model_switch_cost
        self.loads: list[dict[str, Any]] = []  # model loads: {"prompt_id", "model", "at"}
        self.uploads: list[dict[str, Any]] = []  # POST /upload/image: what was sent and the answer
        self._port = port
        # Observations for tests (appended on the server thread, read anywhere).
        self.requests: list[tuple[str, str, Any]] = []
        self.prompts: dict[str, dict] = {}
        self.interrupts: list[Any] = []
        self.started: list[str] = []  # prompt ids in the order they began running
        self.run_times: dict[str, float] = {}  # prompt id -> seconds from execution_start to the end
        self.timeline: dict[str, dict[str, float]] = {}  # prompt id -> wall-clock times: posted, started, finished
        # Server state, touched only on the loop thread.
        self.number = 0
        self.pending: list[tuple] = []  # a heap, as in ComfyUI's PromptQueue
        self.running: tuple | None = None
        self.history: dict[str, dict] = {}
        self.sockets: dict[str, web.WebSocketResponse] = {}
        self.flags: dict[str, dict] = {}
        self.files: dict[tuple[str, str, str], bytes] = {}
        self.counters: dict[tuple[str, str], int] = {}
        self.cache: dict[str, dict | None] = {}  # node signature -> UI output, from the last good prompt
        self._interrupt = False
        self._stalled: set[str] = set()
        self._current_client: str | None = None
        self._current_node: str | None = None
        self._last_gc = float("-inf")  # the first prompt after start-up stalls, as recorded
        self._fail: list[tuple[int, str]] = []
        self._info: tuple[str, dict, bytes] = ("", {}, b"")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._wakeup: asyncio.Event | None = None
        self._worker: asyncio.Task | None = None
        self.url = ""

    # --- life cycle -------------------------------------------------------------------------

    def start(self) -> FakeComfyUI:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self._port))
        self._port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self._port}"
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        async def setup():
            self._wakeup = asyncio.Event()
            self._runner = web.AppRunner(self._app(), handle_signals=False, access_log=None, shutdown_timeout=0.5)
            await self._runner.setup()
            await web.SockSite(self._runner, sock).start()
            self._worker = asyncio.ensure_future(self._prompt_worker())

        def run():
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(setup())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name=f"fake-comfyui-{self._port}", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if not self._loop or not self._loop.is_running():
            return

        async def shutdown():
            if self._worker:
                self._worker.cancel()
            for ws in list(self.sockets.values()):
                await ws.close()
            await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> FakeComfyUI:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._port

    # --- test controls (thread-safe) -------------------------------------------------------

    def fail_next(self, count: int = 1, status: int = 500, path: str = "/prompt") -> None:
        """Answer the next ``count`` requests to ``path`` with ``status`` (plain text, as aiohttp does)."""
        self._fail.extend([(status, path)] * count)

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the server's loop and return its result (to read state consistently)."""

        async def wrapper():
            return fn()

        return asyncio.run_coroutine_threadsafe(wrapper(), self._loop).result(10)

    def loop_close(self, ws: web.WebSocketResponse) -> None:
        """Close a client's socket from the server side (call it through ``call``)."""
        asyncio.ensure_future(ws.close())

    def queue_ids(self) -> tuple[list[str], list[str]]:
        """(running ids, pending ids in the order they will run)."""
        return self.call(
            lambda: ([self.running[1]] if self.running else [], [item[1] for item in sorted(self.pending)])
        )

    def post(self, graph: dict, **body: Any) -> str:
        """Queue a prompt as another user would (for tests of "never touch other work")."""
        import requests

        response = requests.post(f"{self.url}/prompt", json={"prompt": graph, **body}, timeout=5)
        response.raise_for_status()
        return response.json()["prompt_id"]

    # --- the app -------------------------------------------------------------------------------

    def _app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=100 * 1024 * 1024)
        routes = [
            ("GET", "/ws", self.ws_handler),
            ("GET", "/system_stats", self.system_stats),
            ("GET", "/features", self.features),
            ("GET", "/queue", self.get_queue),
            ("POST", "/queue", self.post_queue),
            ("GET", "/prompt", self.get_prompt),
            ("POST", "/prompt", self.post_prompt),
            ("POST", "/interrupt", self.post_interrupt),
            ("GET", "/history", self.get_history),
            ("GET", "/history/{prompt_id}", self.get_history_item),
            ("GET", "/object_info", self.get_object_info),
            ("GET", "/object_info/{node_class}", self.get_object_info_item),
            ("GET", "/models", self.get_models),
            ("GET", "/models/{folder}", self.get_model_folder),
            ("GET", "/embeddings", self.get_embeddings),
            ("GET", "/view", self.view),
            ("GET", "/fake/loads", self.get_loads),
            ("POST", "/upload/image", self.upload_image),
        ]
        for method, path, handler in routes:
            app.router.add_route(method, path, handler)
            app.router.add_route(method, "/api" + path, handler)
        if self.jobs_api:
            # Registered as "/api/jobs" in ComfyUI's server.py: there is no unprefixed /jobs.
            app.router.add_route("GET", "/api/jobs", self.get_jobs)
            app.router.add_route("GET", "/api/jobs/{job_id}", self.get_job)
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler):
        body = None
        if request.method == "POST" and request.can_read_body and request.content_type != "multipart/form-data":
            raw = await request.read()
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode("utf-8", "replace")
        self.requests.append((request.method, request.path_qs, body))
        origin = request.headers.get("Origin")
        if origin and urlparse(origin).netloc != request.host:
            # ComfyUI's origin-only middleware: a browser page from elsewhere may not drive it.
            return web.Response(status=403)
        if request.method == "OPTIONS":
            return web.Response(status=200)
        path = request.path.removeprefix("/api")
        for index, (status, fail_path) in enumerate(self._fail):
            if fail_path == path:
                del self._fail[index]
                return web.Response(status=status, text=INTERNAL_ERROR if status == 500 else "")
        return await handler(request)

    # --- websocket -------------------------------------------------------------------------------

    async def ws_handler(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0, timeout=2.0)  # a gone client must not hold up stop()
        await ws.prepare(request)
        sid = request.query.get("clientId") or uuid.uuid4().hex
        self.sockets[sid] = ws  # the newest socket of an id wins; the old one goes silent
        self._stalled.discard(sid)
        try:
            await ws.send_str(json.dumps({"type": "status", "data": {**self._status(), "sid": sid}}))
            if self._current_client == sid and self._current_node is not None:
                # What ComfyUI sends a socket that reconnects mid-run: no prompt_id.
                await ws.send_str(json.dumps({"type": "executing", "data": {"node": self._current_node}}))
            first = True
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    try:
                        data = json.loads(msg.data)
                    except ValueError:
                        continue
                    if first and data.get("type") == "feature_flags":
                        self.flags[sid] = data.get("data") or {}
                        await ws.send_str(json.dumps({"type": "feature_flags", "data": recorded()["features"]}))
                first = False
        finally:
            if self.sockets.get(sid) is ws:
                del self.sockets[sid]
        return ws

    async def send(self, event: str, data: dict, sid: str | None) -> None:
        """Send to one client id (its newest socket) or, with ``sid=None``, to everyone."""
        targets = list(self.sockets.items()) if sid is None else [(sid, self.sockets.get(sid))]
        text = json.dumps({"type": event, "data": data})
        for target_sid, ws in targets:
            if ws is None or ws.closed or target_sid in self._stalled:
                continue
            try:
                await ws.send_str(text)
            except (ConnectionError, RuntimeError):
                pass

    async def send_bytes(self, payload: bytes, sid: str | None) -> None:
        ws = self.sockets.get(sid) if sid else None
        if ws is not None and not ws.closed and sid not in self._stalled:
            try:
                await ws.send_bytes(payload)
            except (ConnectionError, RuntimeError):
                pass

    def _status(self) -> dict:
        remaining = len(self.pending) + (1 if self.running else 0)
        return {"status": {"exec_info": {"queue_remaining": remaining}}}

    async def queue_updated(self) -> None:
        await self.send("status", self._status(), None)

    # --- plain GETs -------------------------------------------------------------------------------

    async def system_stats(self, request: web.Request) -> web.Response:
        stats = copy.deepcopy(recorded()["system_stats"])
        if self.system_devices is not None:
            stats["devices"] = self.system_devices
        if self.comfyui_version:
            stats["system"]["comfyui_version"] = self.comfyui_version
        return web.json_response(stats)

    async def features(self, request: web.Request) -> web.Response:
        return web.json_response(recorded()["features"])

    async def get_prompt(self, request: web.Request) -> web.Response:
        return web.json_response({"exec_info": self._status()["status"]["exec_info"]})

    async def get_queue(self, request: web.Request) -> web.Response:
        running = [list(self.running)] if self.running else []
        # ComfyUI returns its heap as it is, not sorted (the recording shows [-55, 54, 53]).
        return web.json_response({"queue_running": running, "queue_pending": [list(item) for item in self.pending]})

    async def get_history(self, request: web.Request) -> web.Response:
        items = list(self.history.items())
        if "max_items" in request.query:
            items = items[-int(request.query["max_items"]) :]
        return web.json_response(dict(items))

    async def get_history_item(self, request: web.Request) -> web.Response:
        prompt_id = request.match_info["prompt_id"]
        entry = self.history.get(prompt_id)
        return web.json_response({prompt_id: entry} if entry else {})

    def object_info(self) -> dict[str, Any]:
        """The recorded /object_info with this server's model files in the loaders' lists.

        Built once per set of models: tests may change ``models`` between prompts, as an
        operator copies files in (ComfyUI rescans without a restart).
        """
        key = json.dumps(self.models, sort_keys=True)
        if self._info[0] != key:
            info = copy.deepcopy(recorded()["object_info"])
            for (node_class, input_name), folder in MODEL_INPUTS.items():
                spec = info[node_class]["input"]["required"][input_name]
                files = list(self.models.get(folder, []))
                if node_class == "VAELoader":
                    files.append("pixel_space")
                if spec[0] == "COMBO":
                    spec[1]["options"] = files
                else:
                    spec[0] = files
            self._info = (key, info, json.dumps(info).encode())
        return self._info[1]

    async def get_object_info(self, request: web.Request) -> web.Response:
        self.object_info()
        return web.Response(body=self._info[2], content_type="application/json")

    async def get_object_info_item(self, request: web.Request) -> web.Response:
        node_class = request.match_info["node_class"]
        info = self.object_info()
        return web.json_response({node_class: info[node_class]} if node_class in info else {})

    async def get_models(self, request: web.Request) -> web.Response:
        return web.json_response(sorted(self.models))

    async def get_model_folder(self, request: web.Request) -> web.Response:
        folder = request.match_info["folder"]
        if folder not in self.models:
            return web.Response(status=404)
        return web.json_response(self.models[folder])

    async def get_embeddings(self, request: web.Request) -> web.Response:
        return web.json_response([])

    async def view(self, request: web.Request) -> web.Response:
        filename = request.query.get("filename", "")
        subfolder = request.query.get("subfolder", "")
        kind = request.query.get("type", "output")
        if not filename or ".." in filename or ".." in subfolder or filename.startswith("/"):
            return web.Response(status=400)
        data = self.files.get((kind, subfolder, filename))
        if data is None:
            return web.Response(status=404)
        headers = {"Content-Disposition": f'filename="{filename}"'}
        preview = request.query.get("preview")
        if preview:
            fmt, _, quality = preview.partition(";")
            image = Image.open(io.BytesIO(data))
            buffer = io.BytesIO()
            image.convert("RGB").save(buffer, format=fmt.upper(), quality=int(quality or 90))
            return web.Response(body=buffer.getvalue(), content_type=f"image/{fmt}", headers=headers)
        etag = hashlib.sha1(data).hexdigest()[:16]
        headers.update({"Etag": f'"{etag}-{len(data):x}"', "Accept-Ranges": "bytes"})
        return web.Response(body=data, content_type="image/png", headers=headers)

    # --- queue control ------------------------------------------------------------------------------

    async def post_queue(self, request: web.Request) -> web.Response:
        body = await request.json()  # malformed -> aiohttp's 500 page, as ComfyUI
        if body.get("clear"):
            self.pending.clear()
        for prompt_id in body.get("delete", []):
            self.pending = [item for item in self.pending if item[1] != prompt_id]
            heapq.heapify(self.pending)
        await self.queue_updated()
        return web.Response(status=200)

    async def post_interrupt(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            body = {}
        self.interrupts.append(body)
        target = (body or {}).get("prompt_id")
        if self.running and (target is None or target == self.running[1]) and not self.ignore_interrupt:
            self._interrupt = True
        return web.Response(status=200)

    # --- the jobs API (newer servers) -----------------------------------------------------------------

    @staticmethod
    def _job_from_queue(item: tuple, status: str) -> dict:
        number, prompt_id, _, extra_data, _ = item
        job = {
            "id": prompt_id,
            "status": status,
            "priority": number,
            "create_time": extra_data.get("create_time"),
            "outputs_count": 0,
            "workflow_id": ((extra_data.get("extra_pnginfo") or {}).get("workflow") or {}).get("id"),
        }
        return {key: value for key, value in job.items() if value is not None}  # ComfyUI's prune_dict

    @staticmethod
    def _job_from_history(prompt_id: str, entry: dict, *, full: bool) -> dict:
        number, _, prompt, extra_data, _ = entry["prompt"]
        status_info = entry.get("status") or {}
        started = ended = error = None
        for name, data in status_info.get("messages") or []:
            if name == "execution_start":
                started = data.get("timestamp")
            elif name in ("execution_success", "execution_error", "execution_interrupted"):
                ended = data.get("timestamp")
                if name == "execution_error":
                    error = data
        outputs = entry.get("outputs") or {}
        items = [
            {**item, "nodeId": node_id, "mediaType": kind}
            for node_id, node_outputs in outputs.items()
            for kind, node_items in node_outputs.items()
            if isinstance(node_items, list)
            for item in node_items
        ]
        preview = next((item for item in items if item.get("type") == "output"), items[0] if items else None)
        job = {
            "id": prompt_id,
            "status": "failed" if status_info.get("status_str") == "error" else "completed",
            "priority": number,
            "create_time": extra_data.get("create_time"),
            "execution_start_time": started,
            "execution_end_time": ended,
            "execution_error": error,
            "outputs_count": len(items),
            "preview_output": preview,
            "workflow_id": ((extra_data.get("extra_pnginfo") or {}).get("workflow") or {}).get("id"),
        }
        job = {key: value for key, value in job.items() if value is not None}
        if full:
            job.update(
                outputs=outputs, execution_status=status_info, workflow={"prompt": prompt, "extra_data": extra_data}
            )
        return job

    async def get_job(self, request: web.Request) -> web.Response:
        job_id = request.match_info["job_id"]
        if job_id in self.history:
            return web.json_response(self._job_from_history(job_id, self.history[job_id], full=True))
        if self.running and self.running[1] == job_id:
            return web.json_response(self._job_from_queue(self.running, "in_progress"))
        for item in self.pending:
            if item[1] == job_id:
                return web.json_response(self._job_from_queue(item, "pending"))
        return web.json_response({"error": "Job not found"}, status=404)

    async def get_jobs(self, request: web.Request) -> web.Response:
        query = request.query
        statuses = JOB_STATUSES
        if query.get("status"):
            statuses = [part.strip().lower() for part in query["status"].split(",") if part.strip()]
            invalid = [part for part in statuses if part not in JOB_STATUSES]
            if invalid:
                message = f"Invalid status value(s): {', '.join(invalid)}. Valid values: {', '.join(JOB_STATUSES)}"
                return web.json_response({"error": message}, status=400)
        sort_by, order = query.get("sort_by", "created_at").lower(), query.get("sort_order", "desc").lower()
        if sort_by not in ("created_at", "execution_duration"):
            return web.json_response({"error": "sort_by must be 'created_at' or 'execution_duration'"}, status=400)
        if order not in ("asc", "desc"):
            return web.json_response({"error": "sort_order must be 'asc' or 'desc'"}, status=400)
        limit = None
        if "limit" in query:
            try:
                limit = int(query["limit"])
            except ValueError:
                return web.json_response({"error": "limit must be an integer"}, status=400)
            if limit <= 0:
                return web.json_response({"error": "limit must be a positive integer"}, status=400)
        try:
            offset = max(0, int(query.get("offset", 0)))
        except ValueError:
            return web.json_response({"error": "offset must be an integer"}, status=400)
        jobs = []
        if "in_progress" in statuses and self.running:
            jobs.append(self._job_from_queue(self.running, "in_progress"))
        if "pending" in statuses:
            jobs.extend(self._job_from_queue(item, "pending") for item in self.pending)
        for prompt_id, entry in self.history.items():
            failed = (entry.get("status") or {}).get("status_str") == "error"
            if ("failed" if failed else "completed") in statuses:
                jobs.append(self._job_from_history(prompt_id, entry, full=False))

        def key(job: dict) -> float:
            if sort_by == "execution_duration":
                start, end = job.get("execution_start_time", 0), job.get("execution_end_time", 0)
                return end - start if start and end else 0
            return job.get("create_time", 0)

        jobs.sort(key=key, reverse=order == "desc")
        total = len(jobs)
        jobs = jobs[offset:]
        if limit is not None:
            jobs = jobs[:limit]
        pagination = {"offset": offset, "limit": limit, "total": total, "has_more": offset + len(jobs) < total}
        return web.json_response({"jobs": jobs, "pagination": pagination})

    # --- POST /prompt and validation ----------------------------------------------------------------

    async def post_prompt(self, request: web.Request) -> web.Response:
        body = await request.json()  # malformed or empty -> 500 text/plain, as recorded (D1, D2)
        if "number" in body:
            number = float(body["number"])
        else:
            number = -self.number if body.get("front") else self.number
            self.number += 1
        if "prompt" not in body:
            error = {
                "type": "no_prompt",
                "message": "No prompt provided",
                "details": "No prompt provided",
                "extra_info": {},
            }
            return web.json_response({"error": error, "node_errors": {}}, status=400)
        prompt = body["prompt"]
        prompt_id = str(body.get("prompt_id") or uuid.uuid4())
        ok, error, outputs, node_errors = self.validate_prompt(prompt)
        extra_data = dict(body.get("extra_data") or {})
        if "client_id" in body:
            extra_data["client_id"] = body["client_id"]
        if not ok:
            return web.json_response({"error": error, "node_errors": node_errors}, status=400)
        if self.jobs_api:
            extra_data["create_time"] = int(time.time() * 1000)  # newer servers stamp it for /api/jobs
        self.prompts[prompt_id] = prompt
        self.timeline[prompt_id] = {"posted": time.time()}
        heapq.heappush(self.pending, (number, prompt_id, prompt, extra_data, outputs))
        await self.queue_updated()
        self._wakeup.set()
        return web.json_response({"prompt_id": prompt_id, "number": number, "node_errors": node_errors})

    def validate_prompt(self, prompt: Any) -> tuple[bool, dict | None, list[str], dict]:
        info = self.object_info()
        if not isinstance(prompt, dict):
            prompt = {}
        outputs = []
        for node_id, node in prompt.items():
            if "class_type" not in node:
                return (
                    False,
                    {
                        "type": "invalid_prompt",
                        "message": "Cannot execute because a node is missing the class_type property.",
                        "details": f"Node ID '#{node_id}'",
                        "extra_info": {},
                    },
                    [],
                    {},
                )
            if node["class_type"] not in info:
                return (
                    False,
                    {
                        "type": "invalid_prompt",
                        "message": f"Cannot execute because node {node['class_type']} does not exist.",
                        "details": f"Node ID '#{node_id}'",
                        "extra_info": {},
                    },
                    [],
                    {},
                )
            if info[node["class_type"]]["output_node"]:
                outputs.append(node_id)
        if not outputs:
            error = {"type": "prompt_no_outputs", "message": "Prompt has no outputs", "details": "", "extra_info": {}}
            return False, error, [], {}
        good, failed, node_errors, validated = [], [], {}, {}
        for output in outputs:
            try:
                valid, reasons = self._validate_inputs(prompt, output, validated, info)
            except (KeyError, IndexError) as exc:
                valid = False
                reasons = [
                    {
                        "type": "exception_during_validation",
                        "message": "Exception when validating node",
                        "details": str(exc),
                        "extra_info": {
                            "exception_type": type(exc).__name__,
                            "traceback": recorded()["validation_tracebacks"][type(exc).__name__],
                        },
                    }
                ]
                validated[output] = (False, reasons)
            if valid:
                good.append(output)
                continue
            if reasons:
                failed.append(reasons)
            for node_id, (node_valid, node_reasons) in validated.items():
                if not node_valid and node_reasons:
                    entry = node_errors.setdefault(
                        node_id,
                        {
                            "errors": node_reasons,
                            "dependent_outputs": [],
                            "class_type": prompt[node_id]["class_type"],
                        },
                    )
                    entry["dependent_outputs"].append(output)
        if not good:
            details = "\n".join(f"{r['message']}: {r['details']}" for reasons in failed for r in reasons)
            return (
                False,
                {
                    "type": "prompt_outputs_failed_validation",
                    "message": "Prompt outputs failed validation",
                    "details": details,
                    "extra_info": {},
                },
                [],
                node_errors,
            )
        return True, None, good, node_errors

    def _validate_inputs(self, prompt: dict, node_id: str, validated: dict, info: dict) -> tuple[bool, list]:
        if node_id in validated:
            return validated[node_id]
        node = prompt[node_id]
        inputs = node.get("inputs", {})
        spec = info[node["class_type"]]["input"]
        errors, valid = [], True
        for category in ("required", "optional"):
            for name, config in spec.get(category, {}).items():
                input_type = config[0]
                extra = config[1] if len(config) > 1 else {}
                if name not in inputs:
                    if category == "required":
                        errors.append(
                            {
                                "type": "required_input_missing",
                                "message": "Required input is missing",
                                "details": name,
                                "extra_info": {"input_name": name},
                            }
                        )
                    continue
                value = inputs[name]
                config_json = [input_type, extra]
                if isinstance(value, list):
                    linked = prompt[value[0]]  # KeyError: a link to a missing node (G1)
                    # IndexError on a missing slot (G2); a tuple, for ComfyUI's wording of it.
                    received = tuple(info[linked["class_type"]]["output"])[value[1]]
                    if isinstance(input_type, str) and input_type not in ("*", received):
                        errors.append(
                            {
                                "type": "return_type_mismatch",
                                "message": "Return type mismatch between linked nodes",
                                "details": f"{name}, received_type({received}) mismatch input_type({input_type})",
                                "extra_info": {
                                    "input_name": name,
                                    "input_config": config_json,
                                    "received_type": received,
                                    "linked_node": value,
                                },
                            }
                        )
                        continue
                    try:
                        linked_valid, _ = self._validate_inputs(prompt, value[0], validated, info)
                    except (KeyError, IndexError) as exc:
                        validated[value[0]] = (
                            False,
                            [
                                {
                                    "type": "exception_during_inner_validation",
                                    "message": "Exception when validating inner node",
                                    "details": str(exc),
                                    "extra_info": {
                                        "input_name": name,
                                        "input_config": config_json,
                                        "exception_message": str(exc),
                                        "exception_type": type(exc).__name__,
                                        "traceback": recorded()["validation_tracebacks"][type(exc).__name__],
                                        "linked_node": value,
                                    },
                                }
                            ],
                        )
                        linked_valid = False
                    valid = valid and linked_valid
                    continue
                try:
                    if input_type == "INT":
                        value = int(value)
                    elif input_type == "FLOAT":
                        value = float(value)
                    elif input_type == "STRING":
                        value = str(value)
                    elif input_type == "BOOLEAN":
                        value = bool(value)
                except (TypeError, ValueError) as exc:
                    errors.append(
                        {
                            "type": "invalid_input_type",
                            "message": f"Failed to convert an input value to a {input_type} value",
                            "details": f"{name}, {value}, {exc}",
                            "extra_info": {
                                "input_name": name,
                                "input_config": config_json,
                                "received_value": value,
                                "exception_message": str(exc),
                            },
                        }
                    )
                    continue
                if "min" in extra and value < extra["min"]:
                    errors.append(
                        {
                            "type": "value_smaller_than_min",
                            "message": f"Value {value} smaller than min of {extra['min']}",
                            "details": name,
                            "extra_info": {"input_name": name, "input_config": config_json, "received_value": value},
                        }
                    )
                    continue
                if "max" in extra and value > extra["max"]:
                    errors.append(
                        {
                            "type": "value_bigger_than_max",
                            "message": f"Value {value} bigger than max of {extra['max']}",
                            "details": name,
                            "extra_info": {"input_name": name, "input_config": config_json, "received_value": value},
                        }
                    )
                    continue
                if (node["class_type"], name) in UPLOADED_INPUTS:
                    # LoadImage's VALIDATE_INPUTS replaces the combo check: the file must exist.
                    if self._input_file(str(value)) is None:
                        errors.append(
                            {
                                "type": "custom_validation_failed",
                                "message": "Custom validation failed for node",
                                "details": f"{name} - Invalid image file: {value}",
                                "extra_info": {"input_name": name},
                            }
                        )
                        continue
                    inputs[name] = value
                    continue
                options = extra.get("options", []) if input_type == "COMBO" else input_type
                if isinstance(options, list) and value not in options:
                    # ComfyUI leaves long lists (scanned model folders) out of the answer.
                    long_list = len(options) > 20
                    shown = f"(list of length {len(options)})" if long_list else options
                    errors.append(
                        {
                            "type": "value_not_in_list",
                            "message": "Value not in list",
                            "details": f"{name}: '{value}' not in {shown}",
                            "extra_info": {
                                "input_name": name,
                                "input_config": None if long_list else config_json,
                                "received_value": value,
                            },
                        }
                    )
                    continue
                inputs[name] = value
        result = (not errors and valid, errors)
        validated[node_id] = result
        return result

    # --- execution ----------------------------------------------------------------------------------

    async def _prompt_worker(self) -> None:
        while True:
            while not self.pending:
                self._wakeup.clear()
                await self._wakeup.wait()
            self.running = heapq.heappop(self.pending)
            await self.queue_updated()
            try:
                await self._execute(*self.running)
            except asyncio.CancelledError:
                raise
            finally:
                self.running = None
                self._interrupt = False
                self._current_client = self._current_node = None

    def _order(self, prompt: dict, outputs: list[str]) -> list[str]:
        order: list[str] = []

        def visit(node_id: str) -> None:
            if node_id in order:
                return
            for value in prompt[node_id].get("inputs", {}).values():
                if isinstance(value, list):
                    visit(value[0])
            order.append(node_id)

        for output in outputs:
            visit(output)
        return order

    def _signature(self, prompt: dict, node_id: str, memo: dict) -> str:
        if node_id not in memo:
            node = prompt[node_id]
            parts = {
                name: ("link", self._signature(prompt, value[0], memo), value[1]) if isinstance(value, list) else value
                for name, value in sorted(node.get("inputs", {}).items())
            }
            memo[node_id] = hashlib.sha256(json.dumps([node["class_type"], parts], default=str).encode()).hexdigest()
        return memo[node_id]

    async def _execute(self, number, prompt_id: str, prompt: dict, extra_data: dict, outputs: list[str]) -> None:
        info = self.object_info()
        sid = extra_data.get("client_id")
        messages: list[list] = []
        started = time.monotonic()
        self.started.append(prompt_id)
        self.timeline.setdefault(prompt_id, {})["started"] = time.time()

        async def event(name: str, data: dict, *, record: bool = False, broadcast: bool = False) -> None:
            if record:
                messages.append([name, data])
            if sid is not None:
                await self.send(name, data, sid)
            elif broadcast:
                # A prompt without client_id: only progress reaches anyone (to everyone).
                await self.send(name, data, None)

        def now_ms() -> int:
            return int(time.time() * 1000)

        self._current_client = sid
        await event("execution_start", {"prompt_id": prompt_id, "timestamp": now_ms()}, record=True)
        if self.stall_socket and sid:
            self._stalled.add(sid)
        order = self._order(prompt, outputs)
        memo: dict[str, str] = {}
        signatures = {node_id: self._signature(prompt, node_id, memo) for node_id in order}
        cached = [node_id for node_id in order if signatures[node_id] in self.cache]
        await event("execution_cached", {"nodes": cached, "prompt_id": prompt_id, "timestamp": now_ms()}, record=True)
        to_run = [node_id for node_id in order if node_id not in cached]
        total = self._run_time(prompt, extra_data)
        samplers = [n for n in to_run if prompt[n]["class_type"] in SAMPLERS]
        others = len(to_run) - len(samplers)
        sampler_share = 0.9 if samplers and others else (1.0 if samplers else 0.0)
        per_other = total * (1 - sampler_share) / others if others else 0.0
        per_sampler = total * sampler_share / len(samplers) if samplers else 0.0
        states: dict[str, dict] = {}
        history_outputs: dict[str, dict] = {}
        clock = {"planned": 0.0, "start": time.monotonic()}

        async def work(seconds: float) -> None:
            # Sleep to a schedule, so that many short sleeps add up to ``run_time`` exactly.
            clock["planned"] += seconds
            await asyncio.sleep(max(0.0, clock["start"] + clock["planned"] - time.monotonic()))

        executed: list[str] = []
        new_cache: dict[str, dict | None] = {}

        def executed_data(node_id: str, ui: dict) -> dict:
            return {"node": node_id, "display_node": node_id, "output": ui, "prompt_id": prompt_id}

        def state(node_id: str, value: float, maximum: float, status: str) -> dict:
            states[node_id] = {
                "value": value,
                "max": maximum,
                "state": status,
                "node_id": node_id,
                "prompt_id": prompt_id,
                "display_node_id": node_id,
                "parent_node_id": None,
                "real_node_id": node_id,
            }
            return {"prompt_id": prompt_id, "nodes": dict(states)}

        # Output images are encoded in a thread while the "sampler" sleeps: encoding a big PNG
        # here must not make the fake slower than the run time it was given.
        loop = asyncio.get_running_loop()
        renders = {
            node_id: loop.run_in_executor(None, self._render, prompt, node_id, extra_data.get("extra_pnginfo"))
            for node_id in to_run
            if info[prompt[node_id]["class_type"]]["output_node"]
        }
        for node_id in cached:
            ui = self.cache[signatures[node_id]]
            new_cache[signatures[node_id]] = ui
            if ui is not None:
                history_outputs[node_id] = ui
                await event("executed", executed_data(node_id, ui))
                await event("progress_state", state(node_id, 1, 1, "finished"), broadcast=True)
        try:
            for node_id in to_run:
                node = prompt[node_id]
                self._current_node = node_id
                await event("progress_state", state(node_id, 0.0, 1.0, "running"), broadcast=True)
                await event("executing", {"node": node_id, "display_node": node_id, "prompt_id": prompt_id})
                if self.drop_socket and sid and sid in self.sockets and not executed:
                    # The client must reconnect; what is sent meanwhile is lost.
                    asyncio.ensure_future(self.sockets.pop(sid).close())
                if self._interrupt:
                    raise Interrupted(node_id)
                self._maybe_fail(prompt_id, node_id, node, executed)
                ui = None
                if node["class_type"] in SAMPLERS:
                    steps = int(node["inputs"].get("steps", 10))
                    for step in range(1, steps + 1):
                        await work(per_sampler / steps)
                        if self._interrupt:
                            raise Interrupted(node_id)
                        progress = {"value": step, "max": steps, "prompt_id": prompt_id, "node": node_id}
                        await event("progress_state", state(node_id, step, steps, "running"), broadcast=True)
                        await self._preview(sid, prompt_id, node_id, before=True)
                        await event("progress", progress, broadcast=True)
                        await self._preview(sid, prompt_id, node_id, before=False)
                else:
                    await work(per_other + self._load(prompt_id, node))
                if info[node["class_type"]]["output_node"]:
                    ui = self._save(prompt, node_id, await renders[node_id])
                    history_outputs[node_id] = ui
                    await event("executed", executed_data(node_id, ui))
                executed.append(node_id)
                new_cache[signatures[node_id]] = ui
                await event("progress_state", state(node_id, 1.0, 1.0, "finished"), broadcast=True)
        except Interrupted as stop:
            data = {
                "prompt_id": prompt_id,
                "node_id": stop.node_id,
                "node_type": prompt[stop.node_id]["class_type"],
                "executed": executed,
                "timestamp": now_ms(),
            }
            messages.append(["execution_interrupted", data])
            await self.send("execution_interrupted", data, sid)  # sid None: broadcast, as recorded (08, part 5)
            await self._finish(prompt_id, number, prompt, extra_data, outputs, messages, {}, "error", sid, started)
            return
        except ExecutionFailed as failure:
            messages.append(["execution_error", failure.payload])
            await event("execution_error", failure.payload)
            await self._finish(prompt_id, number, prompt, extra_data, outputs, messages, {}, "error", sid, started)
            return
        success = {"prompt_id": prompt_id, "timestamp": now_ms()}
        await event("execution_success", success, record=True)
        self.cache = new_cache
        await self._finish(
            prompt_id, number, prompt, extra_data, outputs, messages, history_outputs, "success", sid, started
        )

    async def _finish(
        self, prompt_id, number, prompt, extra_data, outputs, messages, history_outputs, status, sid, started
    ) -> None:
        # The history entry is written after execution_success (so a client that fetches it on
        # execution_success can get {}), then the queue shrinks, then executing{node: null}.
        await asyncio.sleep(self.history_lag)
        self.history[prompt_id] = {
            "prompt": [number, prompt_id, prompt, extra_data, outputs],
            "outputs": history_outputs,
            "status": {"status_str": status, "completed": status == "success", "messages": messages},
            "meta": {
                node_id: {"node_id": node_id, "display_node": node_id, "parent_node": None, "real_node_id": node_id}
                for node_id in history_outputs
            },
        }
        self.run_times[prompt_id] = time.monotonic() - started
        self.timeline.setdefault(prompt_id, {})["finished"] = time.time()
        self.running = None
        await self.queue_updated()
        if self.gc_stall and time.monotonic() - self._last_gc >= self.gc_idle:
            # ComfyUI's gc.collect() holds the GIL: nothing is sent or answered meanwhile.
            time.sleep(self.gc_stall)
            self._last_gc = time.monotonic()
        if sid is not None:
            await self.send("executing", {"node": None, "prompt_id": prompt_id}, sid)
        self._stalled.discard(sid)

    def _load(self, prompt_id: str, node: dict) -> float:
        """A model loader that runs (not cached from the previous prompt) loads its file: record it, cost it."""
        inputs = node.get("inputs", {})
        files = [inputs[name] for name in ("ckpt_name", "unet_name") if isinstance(inputs.get(name), str)]
        if not files:
            return 0.0
        self.loads.append({"prompt_id": prompt_id, "model": "+".join(files), "at": time.time()})
        return self.model_switch_cost

    async def get_loads(self, request: web.Request) -> web.Response:
        return web.json_response({"loads": self.loads})

    def _run_time(self, prompt: dict, extra_data: dict) -> float:
        if "fake_run_time" in extra_data:
            return float(extra_data["fake_run_time"])
        single = float(self.run_time(prompt) if callable(self.run_time) else self.run_time)
        # A batch of N shares one model pass: each image past the first adds ``batch_extra``
        # of a single run (what a GPU does with a batch it has the memory for).
        batch = max(
            (
                int(node.get("inputs", {}).get("batch_size", 1))
                for node in prompt.values()
                if str(node.get("class_type", "")).startswith("Empty") and "batch_size" in node.get("inputs", {})
            ),
            default=1,
        )
        return single * (1 + self.batch_extra * (max(1, batch) - 1))

    def _maybe_fail(self, prompt_id: str, node_id: str, node: dict, executed: list[str]) -> None:
        if "Loader" not in node["class_type"]:
            return
        for value in node.get("inputs", {}).values():
            if isinstance(value, str) and value.startswith(BROKEN_PREFIXES):
                kind = next(p for p in BROKEN_PREFIXES if value.startswith(p))
                template = recorded()["execution_errors"][kind]
                message = template["exception_message"].replace("valid_but_unknown.safetensors", value)
                raise ExecutionFailed(
                    node_id,
                    {
                        "prompt_id": prompt_id,
                        "node_id": node_id,
                        "node_type": node["class_type"],
                        "executed": list(executed),
                        "exception_message": message,
                        "exception_type": template["exception_type"],
                        "traceback": template["traceback"],
                        "current_inputs": {k: [v] for k, v in node["inputs"].items() if not isinstance(v, list)},
                        "current_outputs": [],
                        "timestamp": int(time.time() * 1000),
                    },
                )

    async def _preview(self, sid: str | None, prompt_id: str, node_id: str, *, before: bool) -> None:
        if not self.previews or not sid:
            return
        metadata = self.previews == "metadata" and self.flags.get(sid, {}).get("supports_preview_metadata")
        if bool(metadata) != before:
            return
        jpeg = _tiny_jpeg()
        if metadata:
            meta = json.dumps(
                {
                    "node_id": node_id,
                    "prompt_id": prompt_id,
                    "display_node_id": node_id,
                    "parent_node_id": None,
                    "real_node_id": node_id,
                    "image_type": "image/jpeg",
                }
            ).encode()
            await self.send_bytes(struct.pack(">II", 4, len(meta)) + meta + jpeg, sid)
        else:
            await self.send_bytes(struct.pack(">II", 1, 1) + jpeg, sid)

    def _render(self, prompt: dict, node_id: str, extra_pnginfo: dict | None = None) -> list[bytes]:
        if self._loads_files(prompt, node_id):
            return self._render_edit(prompt, node_id, extra_pnginfo)
        width, height, batch, seed_text = self._image_params(prompt, node_id)
        return [_png(width, height, f"{seed_text}:{index}", prompt, extra_pnginfo) for index in range(batch)]

    def _save(self, prompt: dict, node_id: str, rendered: list[bytes]) -> dict:
        node = prompt[node_id]
        kind = "output" if node["class_type"] == "SaveImage" else "temp"
        prefix = str(node["inputs"].get("filename_prefix", "ComfyUI")) if kind == "output" else "ComfyUI_temp_fake"
        subfolder, _, base = prefix.rpartition("/")
        images = []
        for data in rendered:
            counter = self.counters.get((subfolder, base), 0) + 1
            self.counters[(subfolder, base)] = counter
            filename = f"{base}_{counter:05d}_.png"
            self.files[(kind, subfolder, filename)] = data
            images.append({"filename": filename, "subfolder": subfolder, "type": kind})
        return {"images": images}

    def _image_params(self, prompt: dict, node_id: str) -> tuple[int, int, int, str]:
        """Size, batch and a colour key from the nodes upstream of an output node."""
        width = height = 64
        batch = 1
        texts: list[str] = []
        seen: set[str] = set()
        stack = [node_id]
        while stack:
            current = stack.pop()
            if current in seen:
                continue
            seen.add(current)
            inputs = prompt[current].get("inputs", {})
            if "width" in inputs and "height" in inputs and prompt[current]["class_type"].startswith("Empty"):
                width, height = int(inputs["width"]), int(inputs["height"])
                batch = int(inputs.get("batch_size", 1))
                if "color" in inputs:
                    texts.append(f"color={inputs['color']}")
            for name, value in sorted(inputs.items()):
                if isinstance(value, list):
                    stack.append(value[0])
                elif name in ("seed", "noise_seed", "text"):
                    texts.append(f"{name}={value}")
        return width, height, batch, "|".join(sorted(texts))

    # --- uploads and edit graphs (refine, inpaint, upscale) ----------------------------------------------
    # POST /upload/image as ComfyUI 0.3.64's server.py (05b_upload_transcript.json): multipart
    # ``image``, ``overwrite``, ``subfolder``, ``type``; without overwrite a different file of the
    # same name becomes "name (1).png", identical bytes return the existing name; no ``image``
    # field is 400 with an empty body. Graphs that load an uploaded file are "run" on the
    # pixels: LoadImage / LoadImageMask read the file (MASK = 1 - alpha, or the named channel),
    # ImageScale(By) and ImageUpscaleWithModel resize, a sampler blends the source towards its
    # seed's colour by ``denoise`` (only inside a noise mask, if there is one), and
    # ImageCompositeMasked pastes: a test can tell the source was used, and where.

    async def upload_image(self, request: web.Request) -> web.Response:
        post = await request.post()
        image = post.get("image")
        if not isinstance(image, web.FileField) or not image.filename:
            return web.Response(status=400)
        kind = str(post.get("type") or "input")
        if kind not in ("input", "temp", "output"):
            return web.Response(status=500, text=INTERNAL_ERROR)
        subfolder = str(post.get("subfolder", ""))
        filename = image.filename
        if ".." in subfolder.split("/") or subfolder.startswith("/") or "/" in filename or ".." in filename:
            return web.Response(status=400)
        data = image.file.read()
        overwrite = str(post.get("overwrite", "")) in ("true", "1")
        stem, dot, ext = filename.rpartition(".")
        stem, ext = (stem, dot + ext) if dot else (filename, "")
        if not overwrite:
            index = 1
            while (kind, subfolder, filename) in self.files:
                if self.files[(kind, subfolder, filename)] == data:
                    break  # the same bytes under that name already: its name is returned
                filename = f"{stem} ({index}){ext}"
                index += 1
        self.files[(kind, subfolder, filename)] = data
        answer = {"name": filename, "subfolder": subfolder, "type": kind}
        self.uploads.append({"sent": image.filename, "overwrite": overwrite, "bytes": len(data), **answer})
        return web.json_response(answer)

    def _input_file(self, value: str) -> bytes | None:
        """The bytes LoadImage would read for ``value`` ("name" or "subfolder/name" in the input folder)."""
        subfolder, _, name = value.rpartition("/")
        data = self.files.get(("input", subfolder, name))
        if data is None and value == "example.png":  # ComfyUI ships input/example.png
            buffer = io.BytesIO()
            Image.new("RGB", (64, 64), (128, 128, 128)).save(buffer, format="PNG")
            data = buffer.getvalue()
        return data

    def _loads_files(self, prompt: dict, node_id: str) -> bool:
        seen, stack = set(), [node_id]
        while stack:
            current = stack.pop()
            if current in seen or current not in prompt:
                continue
            seen.add(current)
            if prompt[current]["class_type"] in FILE_LOADERS:
                return True
            stack.extend(value[0] for value in prompt[current].get("inputs", {}).values() if isinstance(value, list))
        return False

    def _render_edit(self, prompt: dict, node_id: str, extra_pnginfo: dict | None) -> list[bytes]:
        images = self._evaluate(prompt, prompt[node_id]["inputs"]["images"], {})
        info = PngImagePlugin.PngInfo()
        info.add_text("prompt", json.dumps(prompt))
        for name, value in (extra_pnginfo or {}).items():
            info.add_text(name, json.dumps(value))
        buffer = io.BytesIO()
        images.save(buffer, format="PNG", pnginfo=info, compress_level=1)
        return [buffer.getvalue()]

    def _evaluate(self, prompt: dict, link: list, memo: dict) -> Any:
        """Output ``link[1]`` of node ``link[0]``: a PIL image (IMAGE, RGB), mask (MASK, "L"),
        latent ({"image", "mask", "size"}) or model stand-in."""
        key = (link[0], link[1])
        if key in memo:
            return memo[key]
        node_id, slot = link[0], link[1]
        node = prompt[node_id]
        class_type = node["class_type"]
        inputs = node.get("inputs", {})

        def arg(name: str) -> Any:
            value = inputs.get(name)
            return self._evaluate(prompt, value, memo) if isinstance(value, list) else value

        if class_type in ("LoadImage", "LoadImageMask"):
            image = ImageOps.exif_transpose(Image.open(io.BytesIO(self._input_file(str(inputs["image"])))))
            if class_type == "LoadImage" and slot == 0:
                result = image.convert("RGB")
            elif class_type == "LoadImage":
                # MASK = 1 - alpha; an image without alpha gives a 64x64 empty mask, as ComfyUI does.
                bands = image.getbands()
                result = ImageOps.invert(image.getchannel("A")) if "A" in bands else Image.new("L", (64, 64), 0)
            else:
                rgba = image if image.getbands() == ("R", "G", "B", "A") else image.convert("RGBA")
                channel = str(inputs.get("channel", "alpha"))[0].upper()
                result = rgba.getchannel(channel)
                if channel == "A":
                    result = ImageOps.invert(result)
        elif class_type == "ImageScale":
            image = arg("image")
            width, height = int(inputs["width"]), int(inputs["height"])
            if width == 0 and height == 0:
                result = image
            else:
                width = width or round(image.width * height / image.height)
                height = height or round(image.height * width / image.width)
                if inputs.get("crop") == "center":
                    image = ImageOps.fit(image, (width, height), RESAMPLE[inputs["upscale_method"]])
                result = image.resize((width, height), RESAMPLE[inputs["upscale_method"]])
        elif class_type == "ImageScaleBy":
            image, factor = arg("image"), float(inputs["scale_by"])
            size = (round(image.width * factor), round(image.height * factor))
            result = image.resize(size, RESAMPLE[inputs["upscale_method"]])
        elif class_type == "UpscaleModelLoader":
            digits = [int(c) for c in str(inputs["model_name"]).split("x")[0][-1:] if c.isdigit()]
            result = {"scale": digits[0] if digits else 4}
        elif class_type == "ImageUpscaleWithModel":
            image, model = arg("image"), arg("upscale_model")
            result = image.resize((image.width * model["scale"], image.height * model["scale"]), Image.LANCZOS)
        elif class_type in ("VAEEncode", "VAEEncodeForInpaint", "InpaintModelConditioning"):
            pixels = arg("pixels")
            size = (pixels.width // 8 * 8, pixels.height // 8 * 8)
            pixels = pixels.crop((0, 0, *size))
            mask = arg("mask") if "mask" in inputs else None
            if class_type == "VAEEncodeForInpaint":
                pixels = Image.composite(Image.new("RGB", size, (128, 128, 128)), pixels, mask.resize(size))
            if class_type == "InpaintModelConditioning" and not inputs.get("noise_mask", True):
                mask = None
            latent_slot = 2 if class_type == "InpaintModelConditioning" else 0
            result = {"image": pixels, "mask": mask, "size": size} if slot == latent_slot else None
        elif class_type == "SetLatentNoiseMask":
            result = {**arg("samples"), "mask": arg("mask")}
        elif class_type.startswith("Empty") and "width" in inputs:
            size = (int(inputs["width"]) // 8 * 8, int(inputs["height"]) // 8 * 8)
            result = {"image": None, "mask": None, "size": size}
        elif class_type in SAMPLERS:
            latent = arg("latent_image")
            _, _, _, colour_key = self._image_params(prompt, node_id)
            colour = Image.new("RGB", latent["size"], tuple(hashlib.sha256(f"{colour_key}:0".encode()).digest()[:3]))
            if latent["image"] is None:
                image = colour
            else:
                denoise = float(inputs.get("denoise", 1.0))
                image = Image.blend(latent["image"], colour, max(0.0, min(1.0, denoise)))
                if latent["mask"] is not None:
                    image = Image.composite(image, latent["image"], latent["mask"].resize(latent["size"]))
            result = {**latent, "image": image}
        elif class_type == "VAEDecode":
            latent = arg("samples")
            result = latent["image"] or Image.new("RGB", latent["size"], (0, 0, 0))
        elif class_type == "ImageCompositeMasked":
            destination, source = arg("destination").copy(), arg("source")
            if inputs.get("resize_source"):
                source = source.resize(destination.size, Image.BILINEAR)
            mask = arg("mask") if "mask" in inputs else None
            destination.paste(source, (int(inputs["x"]), int(inputs["y"])), mask.resize(source.size) if mask else None)
            result = destination
        else:
            # Anything else passes its first linked input through (enough for a fake).
            first = next((value for value in inputs.values() if isinstance(value, list)), None)
            result = self._evaluate(prompt, first, memo) if first else Image.new("RGB", (64, 64), (0, 0, 0))
        memo[key] = result
        return result


def _png(width: int, height: int, key: str, prompt: dict, extra_pnginfo: dict | None = None) -> bytes:
    digest = hashlib.sha256(key.encode()).digest()
    image = Image.new("RGB", (max(1, width), max(1, height)), tuple(digest[:3]))
    # As ComfyUI's SaveImage: the API graph as tEXt "prompt", then one tEXt chunk per key of
    # extra_data["extra_pnginfo"] (the UI sends its "workflow" there), each value as JSON.
    info = PngImagePlugin.PngInfo()
    info.add_text("prompt", json.dumps(prompt))
    for name, value in (extra_pnginfo or {}).items():
        info.add_text(name, json.dumps(value))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info, compress_level=1)
    return buffer.getvalue()


@lru_cache(maxsize=1)
def _tiny_jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (120, 80, 40)).save(buffer, format="JPEG")
    return buffer.getvalue()


class Recorder:
    """A ProgressReporter stand-in for tests: records progress and remote ids, cancels on demand.

    (It duck-types ``blogimages.providers.base.ProgressReporter``; ``on_progress`` lets a
    test act at a precise moment of a run, from inside it.)
    """

    def __init__(
        self,
        cancel_when: Callable[[Recorder], bool] | None = None,
        on_progress: Callable[[Recorder, float, str], None] | None = None,
        on_remote_id: Callable[[Recorder, str, str], None] | None = None,
    ):
        self.updates: list[tuple[float, str]] = []
        self.remote: list[tuple[str, str]] = []
        self.seeds: list[int] = []
        self.cancel_when = cancel_when
        self.on_progress = on_progress
        self.on_remote_id = on_remote_id

    def progress(self, percent: float, message: str = "") -> None:
        self.updates.append((percent, message))
        if self.on_progress:
            self.on_progress(self, percent, message)

    def cancelled(self) -> bool:
        return bool(self.cancel_when and self.cancel_when(self))

    def seed(self, seed: int) -> None:
        self.seeds.append(seed)

    def remote_id(self, remote_id: str, server: str = "") -> None:
        self.remote.append((remote_id, server))
        if self.on_remote_id:
            self.on_remote_id(self, remote_id, server)


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


def other_graph(prefix: str = "other/work") -> dict:
    """A small valid prompt standing for someone else's work; a new colour each time, so never cached.

    Post it with ``server.post(other_graph(), client_id=..., extra_data={"fake_run_time": 2})``.
    """
    color = uuid.uuid4().int % 16777216
    return {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": color}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": prefix}},
    }


def main(argv: list[str] | None = None) -> None:
    """Run a fake ComfyUI on its own: ``python -m tests.servers.comfyui --port 8188 --run-time 2``.

    Handy for trying the demo without a GPU (``COMFYUI_URLS=http://127.0.0.1:8188``) and for
    benchmarks that want each server in its own process, as real ComfyUI servers are.
    """
    import argparse
    import signal

    parser = argparse.ArgumentParser(description="A fake ComfyUI 0.3.64 for tests and demos.")
    parser.add_argument("--port", type=int, default=8188)
    parser.add_argument("--run-time", type=float, default=2.0, help="seconds each prompt takes")
    parser.add_argument("--models", default="", help='JSON, e.g. {"loras": ["ink.safetensors"]}')
    parser.add_argument("--jobs-api", action="store_true", help=f"speak the jobs API, as ComfyUI {NEWER_VERSION}")
    parser.add_argument("--model-switch-cost", type=float, default=0.0, help="seconds a model load adds")
    args = parser.parse_args(argv)
    server = FakeComfyUI(
        run_time=args.run_time,
        port=args.port,
        models=json.loads(args.models or "{}"),
        jobs_api=args.jobs_api,
        model_switch_cost=args.model_switch_cost,
    )
    server.start()
    print(f"Fake ComfyUI listening on {server.url}", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    parent = os.getppid()
    while not stop.wait(1.0):
        if os.getppid() != parent:
            break  # whoever started us is gone (a benchmark that was killed): do not linger
    server.stop()


if __name__ == "__main__":
    main()
