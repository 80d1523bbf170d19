"""The ComfyUI provider: one or more ComfyUI servers running shipped or operator workflows.

Configure it like any provider::

    BLOGIMAGES_PROVIDERS = {
        "comfyui": {
            "BACKEND": "blogimages.providers.comfyui.ComfyUIProvider",
            "OPTIONS": {"urls": ["http://gpu1:8188", "http://gpu2:8188"], "workflow": "flux1_dev"},
        },
    }

Without ``urls`` it reads ``COMFYUI_URLS`` (comma-separated), then ``COMFYUI_API_URL``,
then uses ``http://127.0.0.1:8188``. ``request.model`` picks a workflow by name
(``"sdxl"``), a model file for the default workflow (``"sd3.5_large_fp8.safetensors"``)
or both (``"flux1_dev:flux1-dev-fp8.safetensors"``).
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any, ClassVar
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

from ..comfyui.client import ComfyUIClient
from ..comfyui.routing import Reservation
from ..comfyui.servers import STORES, ServerPool
from ..comfyui.workflows import Workflow, edit_problem, edit_uploads
from ..conf import app_settings
from ..contract import (
    EDIT_OPERATIONS,
    ForwardingReporter,
    GeneratedImage,
    GenerationRequest,
    ProgressReporter,
    ProviderHealth,
)
from ..exceptions import GenerationCancelled, ProviderError, ProviderUnavailable, TransientProviderError
from .workflow import WorkflowProvider

logger = logging.getLogger("blogimages.comfyui")

DEFAULT_URL = "http://127.0.0.1:8188"
#: Where edits' source images and masks go in a server's input folder.
UPLOAD_SUBFOLDER = "blogimages"


def configured_urls(value: Any) -> list[str]:
    """``urls`` option, else ``COMFYUI_URLS``, else ``COMFYUI_API_URL``, else the local default."""
    if value in (None, "", []):
        value = os.environ.get("COMFYUI_URLS") or os.environ.get("COMFYUI_API_URL") or DEFAULT_URL
    items = value.split(",") if isinstance(value, str) else list(value)
    return [str(item).strip().rstrip("/") for item in items if str(item).strip()]


class ComfyUIProvider(WorkflowProvider):
    label = "ComfyUI"
    kind = "comfyui"
    is_cloud = False
    # Edits run the workflow's edit workflows (img2img, inpaint, upscale); see comfyui/workflows.py.
    operations = frozenset(EDIT_OPERATIONS)
    default_options: ClassVar[dict[str, Any]] = {
        "urls": None,  # list or comma-separated string; None: COMFYUI_URLS, COMFYUI_API_URL, then the local default
        "workflow": "sd35_large_turbo",  # the workflow used when the request names none
        "workflows": {},  # operator workflows: {name: {"graph", "parameters", "output", "lora", ...}}
        "timeout": 600.0,  # wall-clock limit of one image's run, from the moment its server starts it
        # How long a prompt may wait for a slot and in its server's queue; None: what is left of
        # BLOGIMAGES_JOB_TIMEOUT after `timeout`, `stop_timeout` and 30 s for storing (at least 60 s).
        "queue_timeout": None,
        "stop_timeout": 10.0,  # after the limit: how long the server may take to confirm the prompt stopped
        "connect_timeout": 5.0,
        "read_timeout": 30.0,  # for each HTTP answer
        "health_timeout": 2.0,  # /system_stats, /api/jobs and /queue in health()
        "poll_interval": 1.0,  # socket quiet this long: ask /history (the socket may have stalled)
        "fail_threshold": 3,  # failures in a row before a server is skipped
        "skip_for": 60.0,  # seconds a failing server is skipped
        "object_info_ttl": 300.0,  # how long a server's /object_info check of a workflow is trusted
        "filename_prefix": "blogimages/result",  # SaveImage prefix on the server; the result id is appended
        "reservations": "redis",  # where slots, models and skipped servers are kept: the queue's Redis, or "local"
        "slots": 3,  # prompts of ours per server at once: one running, one waiting (pipelining), one for affinity
        "lease": 60.0,  # a reservation lapses this long after it was taken or renewed (a dead worker's)
        "model_tolerance": 2,  # prefer a server whose next model is the job's while its queue is at most this longer
        "report_ttl": 30.0,  # how long others' work a job saw in a server's queue counts against that server
        "idle_switch_after": 2.0,  # a server idle this long takes a job for another model queued two deep elsewhere
    }

    def __init__(self, alias: str, **options: Any):
        super().__init__(alias, **options)
        where = f"BLOGIMAGES_PROVIDERS[{alias!r}]"
        self.urls = configured_urls(self.options["urls"])
        for url in self.urls:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ImproperlyConfigured(f"{where}: {url!r} is not an http(s) URL of a ComfyUI server.")
        if not self.urls:
            raise ImproperlyConfigured(f"{where}: no ComfyUI server URL (set OPTIONS['urls'] or COMFYUI_URLS).")
        if self.options["reservations"] not in STORES:
            raise ImproperlyConfigured(
                f"{where}: 'reservations' must be one of {', '.join(map(repr, STORES))}, "
                f"not {self.options['reservations']!r}."
            )
        if int(self.options["slots"]) < 1:
            raise ImproperlyConfigured(f"{where}: 'slots' must be at least 1.")
        self.pool = ServerPool(
            self.urls,
            connect_timeout=float(self.options["connect_timeout"]),
            read_timeout=float(self.options["read_timeout"]),
            fail_threshold=int(self.options["fail_threshold"]),
            skip_for=float(self.options["skip_for"]),
            reservations=self.options["reservations"],
            slots=int(self.options["slots"]),
            lease=float(self.options["lease"]),
            model_tolerance=int(self.options["model_tolerance"]),
            report_ttl=float(self.options["report_ttl"]),
            idle_switch_after=float(self.options["idle_switch_after"]),
        )
        self._checked: dict[tuple[str, str, bool], float] = {}
        self._object_info: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}

    # --- generating ---------------------------------------------------------------------------------------

    def queue_timeout(self) -> float:
        """Seconds a prompt may wait for a slot and in its server's queue (see the option)."""
        if self.options["queue_timeout"] is not None:
            return float(self.options["queue_timeout"])
        left = app_settings.JOB_TIMEOUT - float(self.options["timeout"]) - float(self.options["stop_timeout"]) - 30
        return max(60.0, left)

    def generate(self, request: GenerationRequest, reporter: ProgressReporter) -> GeneratedImage:
        started = time.monotonic()
        limit = float(self.options["timeout"])
        queue_limit = self.queue_timeout()
        request = self.prepared(request)
        workflow, graph, stack, seed = self.build_graph(request)
        workflow = workflow.for_request(request)  # an edit runs the edit workflow the graph came from
        uploaded: dict[str, str] = {}
        reporter.seed(seed)
        model_file = request.choice.file
        size = int(request.extra.get("batch_size") or 1) if "batch_size" in workflow.parameters else 1
        model = loaded_model(graph)
        errors: list[str] = []
        tried: set[str] = set()
        cost = job_cost(request, size)
        while (reservation := self._reserve(model, tried, reporter, started, queue_limit, cost)) is not None:
            url = reservation.url
            tried.add(url)
            client = self.pool.client(url)
            watch = _Watch(reporter, self.pool, reservation)
            seen, ok, seconds = None, False, None
            try:
                self.check(workflow, client, with_loras=bool(stack))
                uploaded = self._upload_edit_inputs(client, workflow, request, graph)
                waited = time.monotonic() - started
                if waited >= queue_limit:
                    raise TransientProviderError(f"No ComfyUI server took the prompt within {queue_limit:g} s.")
                submission, output = client.run(
                    graph,
                    watch,
                    output_node=workflow.output,
                    timeout=limit,
                    queue_timeout=queue_limit - waited,
                    queue_limit=queue_limit,
                    poll_interval=float(self.options["poll_interval"]),
                    queue_ahead=reservation.load,
                    limit=limit,
                    stop_timeout=float(self.options["stop_timeout"]),
                )
                content = client.view(output.image)
                # A batch (candidates in one pass): every image, in batch order.
                batch = [content, *map(client.view, output.all_images[1:size])] if size > 1 else []
                seen, ok, seconds = output.queue_remaining, True, output.run_seconds
            except TransientProviderError as exc:
                self.pool.record_failure(url, str(exc))
                if watch.submitted:
                    raise  # the prompt was accepted there; another server would run it twice
                errors.append(str(exc))
                continue
            finally:
                # The prompt has left the server: its slot goes to the next job while this one is stored.
                self.pool.release(watch.reservation, queue_remaining=seen, ok=ok, seconds=seconds)
            return GeneratedImage(
                content=content,
                batch=batch,
                seed=seed,
                model=request.model or workflow.name,
                provider=self.alias,
                remote_id=submission.prompt_id,
                remote_server=url,
                metadata={
                    "workflow": workflow.name,
                    **({"uploads": sorted(uploaded.values())} if uploaded else {}),
                    "server": url,
                    "prompt_id": submission.prompt_id,
                    "output": output.image,
                    "images": len(output.all_images),
                    **({"outputs": output.all_images[:size]} if size > 1 else {}),
                    "completion": output.via,
                    **({"protocol": submission.info.protocol} if submission.info else {}),
                    **(
                        {"comfyui_version": submission.info.version}
                        if submission.info and submission.info.version
                        else {}
                    ),
                    "loras": [{"name": lora.name, "strength": lora.strength, "role": lora.role} for lora in stack],
                    **({"model_file": model_file} if model_file else {}),
                    **({"queue_ahead": reservation.load} if reservation.load else {}),
                    **({"model_affinity": True} if reservation.affinity else {}),
                },
            )
        if len(errors) == len(tried) and errors:
            raise ProviderUnavailable(
                "No ComfyUI server is available: " + "; ".join(error.rstrip(".") for error in errors) + "."
            )
        raise TransientProviderError(" ".join(errors) or "No ComfyUI server took the prompt.")

    def _reserve(
        self,
        model: str,
        tried: set[str],
        reporter: ProgressReporter,
        started: float,
        queue_limit: float,
        cost: float = 0,
    ) -> Reservation | None:
        """A slot on a server not yet tried, waiting while every slot is taken; None once all were tried."""
        pause, told = 0.05, False
        while True:
            try:
                reservation = self.pool.reserve(model, exclude=tried, cost=cost)
            except LookupError:
                return None
            if reservation is not None:
                return reservation
            if reporter.cancelled():
                raise GenerationCancelled("Cancelled while waiting for a free ComfyUI server.")
            if time.monotonic() - started >= queue_limit:
                raise TransientProviderError(
                    f"No slot of the {len(self.urls)} ComfyUI server{'s' if len(self.urls) != 1 else ''} "
                    f"came free for this job in {queue_limit:g} s (every slot was taken or, the fleet being "
                    "saturated, every slot of the servers that have its model)."
                )
            if not told:
                reporter.progress(0, "waiting for a free ComfyUI server")
                told = True
            time.sleep(pause)
            pause = min(0.5, pause * 2)

    def can_batch(self, request: GenerationRequest) -> bool:
        """Candidates run as one prompt where the request's workflow maps ``batch_size``
        (ComfyUI's ``EmptyLatentImage``): one model pass, one image per batch index."""
        try:
            choice = self.prepared(request).choice
        except ProviderError:
            return False
        return "batch_size" in self.workflows[choice.name].for_request(request).parameters

    def check(self, workflow: Workflow, client: ComfyUIClient, *, with_loras: bool) -> None:
        """Validate the workflow's mapping against the server's ``/object_info``, once per server and TTL.

        Only the node classes the workflow uses are asked for (``/object_info/<class>``).
        """
        key = (client.url, workflow.name, with_loras)
        now = time.monotonic()
        ttl = float(self.options["object_info_ttl"])
        if self._checked.get(key, 0) > now:
            return
        classes = {node["class_type"] for node in workflow.graph.values()} | ({"LoraLoader"} if with_loras else set())
        info = {}
        for node_class in sorted(classes):
            expires, known = self._object_info.get((client.url, node_class), (0.0, {}))
            if expires <= now:
                known = client.object_info(node_class).get(node_class) or {}
                self._object_info[(client.url, node_class)] = (now + ttl, known)
            if known:
                info[node_class] = known
        workflow.check(info, client.url, with_loras=with_loras)
        self._checked[key] = now + ttl

    # --- edits: refine, variations, upscale, reference ------------------------------------------------------

    def edit_refusal(self, request: GenerationRequest) -> str:
        """Besides the operation: the request's workflow must have an edit workflow of the
        right kind (a painted mask needs an inpaint one), the mask must fit the source, the
        upscale must stay within ComfyUI's size limit, and a refine needs an instruction."""
        return super().edit_refusal(request) or edit_problem(
            self.workflows, request, self.options["workflow"], f"The {self.label} provider {self.alias!r}"
        )

    def _upload_edit_inputs(
        self, client: ComfyUIClient, workflow: Workflow, request: GenerationRequest, graph: dict[str, Any]
    ) -> dict[str, str]:
        """Upload an edit's source (and mask) to this server and write the names it gave them
        into ``graph``; returns ``{parameter: name}`` ({} for a request that is no edit).

        The files go to the input folder's ``blogimages/`` subfolder under content-addressed
        names; ComfyUI 0.3.64 has no route to delete them afterwards (see ``upload_image``).
        """
        uploads = edit_uploads(workflow, request)
        names = {
            upload.param: client.upload_image(
                upload.content, upload.filename, subfolder=UPLOAD_SUBFOLDER, content_type=upload.content_type
            )
            for upload in uploads
        }
        workflow.fill(graph, names)
        return names

    # --- the rest of the interface -------------------------------------------------------------------------

    def cancel(self, remote_id: str, remote_server: str = "") -> bool:
        """Delete the prompt if it is pending, interrupt it if it runs; never anything else."""
        if not remote_id:
            return False
        client = self.pool.client(remote_server or self.urls[0])
        try:
            client.stop(remote_id)
        except ProviderError as exc:
            logger.warning("Could not cancel ComfyUI prompt %s on %s: %s", remote_id, client.url, exc)
            return False
        return True

    def health(self) -> ProviderHealth:
        servers = self.pool.each(self._server_health, list(self.urls))
        reachable = [server for server in servers if server["ok"]]
        detail = f"{len(reachable)} of {len(servers)} ComfyUI server{'s' if len(servers) != 1 else ''} reachable"
        failing = [server for server in servers if not server["ok"]]
        if failing:
            detail += f"; {failing[0]['error']}"
        # Which ComfyUI each server runs and how completion is checked there (the jobs API or not).
        versions = ", ".join(
            f"{server['url']} runs ComfyUI {server['version'] or '(version unknown)'} "
            f"({'jobs API' if server['jobs_api'] else '/history and /queue'})"
            for server in reachable
        )
        if versions:
            detail = f"{detail.rstrip('.')}; {versions}."
        return ProviderHealth(ok=bool(reachable), detail=detail, info={"servers": servers})

    def _server_health(self, url: str) -> dict[str, Any]:
        client = self.pool.client(url)
        timeout = float(self.options["health_timeout"])
        try:
            stats = client.system_stats(timeout=timeout)
            info = client.server_info(timeout=timeout, stats=stats)  # checked afresh: a server may be upgraded
            queue = client.queue(timeout=timeout)
        except ProviderError as exc:
            return {"url": url, "ok": False, "error": str(exc), "skipped_for": round(self.pool.skipped_for(url))}
        devices = stats.get("devices") or [{}]
        device = devices[0] or {}
        return {
            "url": url,
            "ok": True,
            "version": info.version,
            "jobs_api": info.jobs_api,  # completion and stops checked with /api/jobs/<id>, else /history + /queue
            "device": device.get("name", ""),
            "vram_free": device.get("vram_free"),
            "vram_total": device.get("vram_total"),
            "queue_running": len(queue.get("queue_running") or []),
            "queue_pending": len(queue.get("queue_pending") or []),
            "skipped_for": round(self.pool.skipped_for(url)),
        }


class _Watch(ForwardingReporter):
    """Passes everything to the job's reporter, notes that the server accepted the prompt and
    renews the job's reservation while it runs (``cancelled()`` is asked several times a second)."""

    def __init__(self, inner: ProgressReporter, pool: ServerPool, reservation: Reservation):
        super().__init__(inner)
        self.submitted: list[str] = []
        self.pool = pool
        self.reservation = reservation
        self.renew_every = pool.router_options["lease"] / 3

    def remote_id(self, remote_id: str, server: str = "") -> None:
        self.submitted.append(remote_id)
        super().remote_id(remote_id, server)

    def cancelled(self) -> bool:
        if self.reservation.expires - time.time() < 2 * self.renew_every:
            self.reservation = self.pool.renew(self.reservation)
        return super().cancelled()


# --- routing: a job's cost estimate (issue 13) ---------------------------------------------------------


def job_cost(request: GenerationRequest, batch: int = 1) -> int:
    """What a prompt costs its server, roughly: steps x megapixels x batch size (x100, a whole number).

    Routing turns it into time with each server's pace, learned from the run times of the
    prompts it finished (the model's and the GPU's speed are in the pace), to choose the
    server expected to be free first.
    """
    steps = request.steps or 20
    return round(steps * request.width * request.height * max(1, batch) / 10_000)


MODEL_INPUTS = ("ckpt_name", "unet_name")


def loaded_model(graph: dict[str, Any]) -> str:
    """The model files a graph loads (checkpoint or diffusion model), which a server keeps loaded after it."""
    files = sorted(
        str(value)
        for node in graph.values()
        for name, value in (node.get("inputs") or {}).items()
        if name in MODEL_INPUTS and isinstance(value, str)
    )
    return "+".join(files)
