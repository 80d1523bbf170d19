"""A synchronous client for one ComfyUI server: HTTP with ``requests``, the socket with ``websockets``.

It follows what the recordings in ``comfyui-protocol/`` show (ComfyUI 0.3.64):

* the websocket ``/ws?clientId=`` is opened *before* ``POST /prompt``, and the prompt
  carries that ``client_id``: messages sent while no socket is registered are lost, and
  a prompt without ``client_id`` gets no ``executing`` message at all;
* completion is ``executing {node: null}`` with our ``prompt_id``. The history entry is
  written after ``execution_success`` and before that message, so fetching history on
  ``execution_success`` can return ``{}``; the ``executed`` message already names the
  output files, and history is only read (retrying ``{}``) when it was missed;
* when the socket goes quiet (a stall, a GC pause, a proxy buffering) or drops, the
  client polls ``/history/<id>``, then ``/queue``; a reconnected socket has lost what was
  sent meanwhile, and its first ``executing`` frame carries no ``prompt_id``;
* a worker's socket (and client id) is kept a few seconds for its next prompt, which saves
  a handshake per image; a spare socket keeps reading and is closed when unused;
* cancelling deletes the prompt from the queue and interrupts it *by id*: both are
  no-ops unless the prompt is ours and pending or running, so other work is never hit;
* at the wall-clock limit the prompt is stopped the same way and the server is asked until
  it no longer lists it as pending or running (an interrupt takes effect only at the next
  node or sampler step). Only a stop that was confirmed may be retried: a prompt that may
  still run fails with :class:`PromptStillRunning`, so no second prompt joins it;
* newer ComfyUI servers have a jobs API (``GET /api/jobs``, ``/api/jobs/<id>``) that tells
  "unknown id" (404) from "not finished" (``pending`` / ``in_progress``), which ``/history``
  (``{}`` for both) cannot. It is used where a server answers ``/api/jobs``, detected per
  server and re-checked every few minutes; 0.3.x servers keep ``/history`` + ``/queue``;
* binary frames (previews) are skipped; a 400 with ``node_errors``, an
  ``execution_error`` or someone else's interrupt is a permanent error in one sentence;
  connection errors, 5xx and timeouts are transient. Every wait has a deadline.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import requests

from ..contract import ProgressReporter
from ..exceptions import GenerationCancelled, PermanentProviderError, ProviderError, TransientProviderError
from ..remote import clip, connection_reason, is_transient_status, retry_after

logger = logging.getLogger("blogimages.comfyui")

SAMPLERS = {"KSampler", "KSamplerAdvanced", "SamplerCustom", "SamplerCustomAdvanced"}
# A sampler step is where the time goes; other nodes count for little in the percentage.
SAMPLER_WEIGHT = 20
RECV_SLICE = 0.25  # longest single wait on the socket, so cancels are seen quickly
HISTORY_RETRY = 2.0  # how long an empty ``{}`` history is retried after completion
LOST_CONTACT_AFTER = 3  # consecutive failed polls before giving up on a server mid-run
SERVER_INFO_TTL = 300.0  # how long a server's version and protocol (jobs API or not) are trusted
STOP_POLL = 0.2  # how often a stopped prompt's state is asked while waiting for the stop to take


@dataclass(frozen=True)
class ServerInfo:
    """What a server runs: its ``comfyui_version`` and whether it has the jobs API."""

    version: str  # ``system.comfyui_version`` from /system_stats; "" when the server does not say
    jobs_api: bool  # GET /api/jobs answers: completion and stops are checked with /api/jobs/<id>

    @property
    def protocol(self) -> str:
        return "jobs API" if self.jobs_api else "/history and /queue"


@dataclass
class PromptState:
    """Where one prompt is on its server."""

    state: str  # "pending", "running", "done", or "unknown" (neither queued nor in history)
    entry: dict[str, Any] | None = None  # when done: a history entry ({"status", "outputs"})
    ahead: int | None = None  # when pending: prompts that run before it, if known
    via: str = "history"  # what told us: "history" (/history + /queue) or "jobs" (/api/jobs/<id>)

    @property
    def active(self) -> bool:
        return self.state in ("pending", "running")


@dataclass
class StopOutcome:
    """What :meth:`ComfyUIClient.stop_confirmed` found out."""

    confirmed: bool  # the server no longer lists the prompt as pending or running
    state: PromptState | None = None  # the last state seen (None: the server could not be asked)
    error: str = ""  # why the server could not be asked or answered, when it could not


@dataclass
class Submission:
    prompt_id: str
    client_id: str
    server: str
    queue_ahead: int | None = None
    info: ServerInfo | None = None  # the server's version and protocol when the prompt was posted


@dataclass
class Output:
    """The finished prompt's image (the first one of the output node) and what else it made."""

    image: dict[str, str]
    all_images: list[dict[str, str]] = field(default_factory=list)
    via: str = "websocket"
    queue_remaining: int | None = None  # the server's queue length in its last ``status`` message, if any
    run_seconds: float | None = None  # from the prompt's start on the server to its end, as this job saw it


class PromptStillRunning(PermanentProviderError):
    """A prompt was asked to stop but may still be running on its server.

    Permanent on purpose: a retry would post a second prompt next to the first one (three
    timeouts would burn the GPU three times). ``server`` and ``prompt_id`` name the prompt.
    """

    def __init__(self, message: str, *, server: str, prompt_id: str):
        super().__init__(message)
        self.server = server
        self.prompt_id = prompt_id


class ComfyUIClient:
    def __init__(self, url: str, *, connect_timeout: float = 5.0, read_timeout: float = 30.0):
        self.url = url.rstrip("/")
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.session = requests.Session()
        self.session.headers["User-Agent"] = "blogimages-comfyui"
        # requests re-reads the proxy environment on every call; a job makes several calls
        # to one server, so settle proxies (and the CA bundle) once.
        self.session.proxies = requests.utils.get_environ_proxies(self.url)
        self.session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        self.session.trust_env = False
        self._spare: list[_Socket] = []
        self._spare_lock = threading.Lock()
        self._info: tuple[float, ServerInfo] | None = None  # (expires, what the server runs)

    def __repr__(self) -> str:
        return f"<ComfyUIClient {self.url}>"

    # --- HTTP ------------------------------------------------------------------------------------

    def request(self, method: str, path: str, *, timeout: float | None = None, **kwargs: Any) -> requests.Response:
        """One HTTP call; transport failures and 5xx become TransientProviderError."""
        limits = (min(self.connect_timeout, timeout), timeout) if timeout else (self.connect_timeout, self.read_timeout)
        try:
            response = self.session.request(method, self.url + path, timeout=limits, **kwargs)
        except requests.Timeout as exc:
            raise TransientProviderError(
                f"ComfyUI at {self.url} did not answer {method} {path} within {limits[1]:g} s."
            ) from exc
        except requests.RequestException as exc:
            raise TransientProviderError(f"Cannot reach ComfyUI at {self.url}: {connection_reason(exc)}.") from exc
        if is_transient_status(response.status_code):
            text = clip(response.text, 200) if response.text else ""
            raise TransientProviderError(
                f"ComfyUI at {self.url} answered {response.status_code} {response.reason} to {method} {path}"
                + (f": {text}" if text else "")
                + ".",
                retry_after=retry_after(response.headers),
            )
        if response.status_code == 403:
            # ComfyUI sends 403 (empty) when an Origin header does not match its host.
            raise PermanentProviderError(
                f"ComfyUI at {self.url} refused {method} {path} (403 Forbidden): a proxy in front of it may be "
                "adding an Origin header that does not match the server's address."
            )
        return response

    def get_json(self, path: str, *, timeout: float | None = None, **kwargs: Any) -> Any:
        response = self.request("GET", path, timeout=timeout, **kwargs)
        if response.status_code != 200:
            raise PermanentProviderError(
                f"ComfyUI at {self.url} answered {response.status_code} {response.reason} to GET {path}; "
                "is this address a ComfyUI server?"
            )
        try:
            return response.json()
        except ValueError as exc:
            raise TransientProviderError(f"ComfyUI at {self.url} sent a non-JSON answer to GET {path}.") from exc

    def system_stats(self, *, timeout: float | None = None) -> dict[str, Any]:
        return self.get_json("/system_stats", timeout=timeout)

    def queue(self, *, timeout: float | None = None) -> dict[str, list]:
        return self.get_json("/queue", timeout=timeout)

    def object_info(self, node_class: str | None = None, *, timeout: float | None = None) -> dict[str, Any]:
        """All node classes, or ``{node_class: info}`` for one (``{}`` if the server lacks it).

        With many custom nodes the full answer runs to megabytes, so callers that know
        which classes they need ask for those one by one.
        """
        if node_class is None:
            return self.get_json("/object_info", timeout=timeout)
        return self.get_json(f"/object_info/{quote(node_class, safe='')}", timeout=timeout)

    def history(self, prompt_id: str, *, timeout: float | None = None) -> dict[str, Any] | None:
        """The prompt's history entry, or None while it is queued or running (``{}``)."""
        data = self.get_json(f"/history/{prompt_id}", timeout=timeout)
        return data.get(prompt_id) if isinstance(data, dict) else None

    # --- which protocol the server speaks ----------------------------------------------------------

    def server_info(self, *, timeout: float | None = None, stats: dict[str, Any] | None = None) -> ServerInfo:
        """The server's version and whether it has the jobs API; cached for ``SERVER_INFO_TTL``.

        ``stats`` (an answer to ``/system_stats`` the caller just fetched) forces a fresh
        check. The jobs API is detected by asking for it: ``GET /api/jobs?limit=1`` answers
        ``{"jobs": [...], "pagination": {...}}`` on servers that have it and 404 on 0.3.x
        (a version number alone would not say what a patched or forked server runs).
        """
        cached = self._info
        if stats is None and cached is not None and cached[0] > time.monotonic():
            return cached[1]
        if stats is None:
            stats = self.system_stats(timeout=timeout)
        version = str(((stats or {}).get("system") or {}).get("comfyui_version") or "")
        response = self.request("GET", "/api/jobs", timeout=timeout, params={"limit": 1})
        try:
            body = response.json() if response.status_code == 200 else None
        except ValueError:
            body = None
        info = ServerInfo(version=version, jobs_api=isinstance(body, dict) and isinstance(body.get("jobs"), list))
        if cached is None or cached[1] != info:
            logger.info("ComfyUI at %s runs version %s; using %s", self.url, version or "(unknown)", info.protocol)
        self._info = (time.monotonic() + SERVER_INFO_TTL, info)
        return info

    def prompt_state(self, prompt_id: str, *, timeout: float | None = None) -> PromptState:
        """Where the prompt is: pending, running, done (with its entry) or unknown to the server."""
        if self.server_info(timeout=timeout).jobs_api:
            state = self._job_state(prompt_id, timeout=timeout)
            if state is not None:
                return state
        return self._history_state(prompt_id, timeout=timeout)

    def _job_state(self, prompt_id: str, *, timeout: float | None) -> PromptState | None:
        """``GET /api/jobs/<id>``; None when the answer cannot be read as a job (then /history is asked).

        The shapes are ComfyUI's ``server.py`` (``get_job_by_id``) and ``comfy_execution/jobs.py``
        (Comfy-Org/ComfyUI, PR #11054): 404 ``{"error": "Job not found"}`` for an id that is
        neither queued nor in history; otherwise ``{"id", "status", "priority", ...}`` with
        ``status`` ``pending`` / ``in_progress`` (from the queue) or ``completed`` / ``failed``
        (from history, with ``outputs`` and ``execution_status``, the history entry's
        ``status`` with its messages).
        """
        path = f"/api/jobs/{quote(prompt_id, safe='')}"
        response = self.request("GET", path, timeout=timeout)
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code == 404:
            if isinstance(body, dict) and "error" in body:
                return PromptState("unknown", via="jobs")
            # A plain 404: the route is gone (the server was downgraded). Detect again next time.
            logger.warning("ComfyUI at %s no longer answers GET /api/jobs; going back to /history", self.url)
            self._info = None
            return None
        if response.status_code != 200 or not isinstance(body, dict):
            raise PermanentProviderError(
                f"ComfyUI at {self.url} answered {response.status_code} {response.reason} to GET {path}."
            )
        status = body.get("status")
        if status == "in_progress":
            return PromptState("running", via="jobs")
        if status == "pending":
            return PromptState("pending", ahead=self._jobs_ahead(body.get("priority"), timeout=timeout), via="jobs")
        if status in ("completed", "failed", "cancelled"):  # "cancelled": Comfy Cloud's API lists it too
            execution = body.get("execution_status") or {
                "status_str": "success" if status == "completed" else "error",
                "completed": status == "completed",
                "messages": [],
            }
            return PromptState("done", entry={"status": execution, "outputs": body.get("outputs") or {}}, via="jobs")
        logger.warning("ComfyUI at %s reports prompt %s as %r; asking /history instead", self.url, prompt_id, status)
        return None

    def _jobs_ahead(self, priority: Any, *, timeout: float | None) -> int | None:
        """How many queued or running jobs run before one of ``priority`` (lower runs first)."""
        try:
            data = self.get_json("/api/jobs", timeout=timeout, params={"status": "in_progress,pending"})
            jobs = data.get("jobs") or []
            running = [job for job in jobs if job.get("status") == "in_progress"]
            before = [job for job in jobs if job.get("status") == "pending" and job.get("priority", 0) < priority]
            return len(running) + len(before)
        except (ProviderError, AttributeError, TypeError):
            return None  # only the progress line needs it

    def _history_state(self, prompt_id: str, *, timeout: float | None) -> PromptState:
        """History, then the queue, then history again (it may have finished between the two calls)."""
        entry = self.history(prompt_id, timeout=timeout)
        if entry is not None:
            return PromptState("done", entry=entry)
        queue = self.queue(timeout=timeout)
        running = [item[1] for item in queue.get("queue_running", [])]
        pending = [item[1] for item in sorted(queue.get("queue_pending", []), key=lambda item: item[0])]  # heap order
        if prompt_id in running:
            return PromptState("running")
        if prompt_id in pending:
            return PromptState("pending", ahead=pending.index(prompt_id) + len(running))
        entry = self.history(prompt_id, timeout=timeout)
        return PromptState("done", entry=entry) if entry is not None else PromptState("unknown")

    def post_prompt(self, graph: dict[str, Any], client_id: str, prompt_id: str | None = None) -> str:
        """Queue ``graph``; returns the prompt id the server uses (ours, when it takes a client's id)."""
        body = {"prompt": graph, "client_id": client_id, **({"prompt_id": prompt_id} if prompt_id else {})}
        response = self.request("POST", "/prompt", json=body)
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code == 400 and isinstance(body, dict):
            raise PermanentProviderError(describe_rejection(body, graph, self.url))
        if response.status_code != 200 or not isinstance(body, dict) or "prompt_id" not in body:
            raise PermanentProviderError(
                f"ComfyUI at {self.url} answered {response.status_code} {response.reason} to POST /prompt "
                f"without a prompt id."
            )
        return str(body["prompt_id"])

    def view(self, image: Mapping[str, str]) -> bytes:
        params = {
            "filename": image["filename"],
            "subfolder": image.get("subfolder", ""),
            "type": image.get("type", "output"),
        }
        response = self.request("GET", "/view", params=params)
        if response.status_code != 200 or not response.content:
            raise PermanentProviderError(
                f"ComfyUI at {self.url} has no file {image['filename']!r} to send ({response.status_code} "
                f"{response.reason}); was its output folder cleared?"
            )
        return response.content

    # --- uploads (edits: the source image and its mask) --------------------------------------------

    def upload_image(
        self, content: bytes, filename: str, *, subfolder: str = "", content_type: str = "image/png"
    ) -> str:
        """``POST /upload/image`` into the input folder; returns the name to give ``LoadImage``
        (``"<subfolder>/<name>"``), built from the server's answer, never from what was sent.

        Sent without ``overwrite``, as recorded (``05b_upload_transcript.json``): a file of the
        same name and bytes is kept and its name returned, a *different* file of the same name
        is stored as ``name (1).png``, so no one's input (another prompt may still be queued
        to load it) is ever replaced. ComfyUI 0.3.64 has no route that deletes an input file,
        so uploads cannot be cleaned up afterwards; callers use content-addressed names, so
        the same image is stored once however often it is edited.
        """
        fields = {"type": "input", "subfolder": subfolder}
        response = self.request(
            "POST", "/upload/image", files={"image": (filename, content, content_type)}, data=fields
        )
        try:
            body = response.json() if response.status_code == 200 else None
        except ValueError:
            body = None
        if not isinstance(body, dict) or not body.get("name"):
            raise PermanentProviderError(
                f"ComfyUI at {self.url} answered {response.status_code} {response.reason} to POST /upload/image "
                f"of {filename!r} ({len(content)} bytes) without the stored file's name."
            )
        stored_folder = str(body.get("subfolder") or "")
        return f"{stored_folder}/{body['name']}" if stored_folder else str(body["name"])

    def stop(self, prompt_id: str) -> None:
        """Remove our prompt if it is pending, then interrupt it if it is running.

        Both calls name the prompt: ``delete`` only touches pending prompts and an
        interrupt with a ``prompt_id`` does nothing unless that prompt is the running one,
        so this can never stop someone else's work (a bare ``/interrupt`` would).
        """
        self.request("POST", "/queue", json={"delete": [prompt_id]})
        self.request("POST", "/interrupt", json={"prompt_id": prompt_id})

    def stop_confirmed(self, prompt_id: str, within: float) -> StopOutcome:
        """:meth:`stop`, then ask for the prompt until it is neither pending nor running, for ``within`` s.

        An interrupt takes effect at the next node boundary or sampler step (recording 05),
        so a running prompt stays listed for a moment; a node that never checks for
        interrupts keeps it there. ``/api/jobs/<id>`` answers where the server has it,
        ``/history`` + ``/queue`` elsewhere.
        """
        try:
            self.stop(prompt_id)
        except ProviderError as exc:
            return StopOutcome(confirmed=False, error=str(exc))
        deadline = time.monotonic() + max(0.0, within)
        state, error = None, ""
        while True:
            remaining = deadline - time.monotonic()
            try:
                state = self.prompt_state(prompt_id, timeout=max(1.0, min(self.read_timeout, remaining)))
                error = ""
            except ProviderError as exc:
                error = str(exc)
            else:
                if not state.active:
                    return StopOutcome(confirmed=True, state=state)
            if time.monotonic() >= deadline:
                return StopOutcome(confirmed=False, state=state, error=error)
            time.sleep(min(STOP_POLL, max(0.0, deadline - time.monotonic())))

    # --- running a prompt ------------------------------------------------------------------------

    def ws_url(self, client_id: str) -> str:
        parts = urlsplit(self.url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        return f"{scheme}://{parts.netloc}{parts.path}/ws?clientId={client_id}"

    def run(
        self,
        graph: dict[str, Any],
        reporter: ProgressReporter,
        *,
        output_node: str | None,
        timeout: float,
        poll_interval: float,
        queue_ahead: int | None = None,
        limit: float | None = None,
        stop_timeout: float = 10.0,
        queue_timeout: float | None = None,
        queue_limit: float | None = None,
    ) -> tuple[Submission, Output]:
        """Submit ``graph`` and wait for its image.

        ``timeout`` is the wall-clock limit of the run itself, counted from the moment the
        server starts the prompt (``execution_start``, or a poll that finds it running);
        until then the prompt may wait in the server's queue for ``queue_timeout`` seconds
        (default: ``timeout``) from now. A prompt that waits behind another one on its server
        (pipelined submission) is therefore not charged for the other one's run. ``limit``
        and ``queue_limit`` are the limits the error messages name. When either runs out, the prompt is stopped
        and the server asked for up to ``stop_timeout`` seconds whether it is gone.
        """
        deadline = time.monotonic() + (timeout if queue_timeout is None else queue_timeout)
        info = self.server_info()  # which protocol this server speaks, before anything is queued there
        socket = self._take_socket()
        try:
            client_id = socket.client_id
            # Our own prompt id: if the answer to the POST is lost, the prompt may still have
            # been queued, and it can then be removed by that id before another server runs it.
            wanted = str(uuid.uuid4())
            try:
                prompt_id = self.post_prompt(graph, client_id, wanted)
            except TransientProviderError:
                try:
                    self.stop(wanted)
                except ProviderError:
                    pass
                raise
            submission = Submission(prompt_id, client_id, self.url, queue_ahead, info)
            reporter.remote_id(prompt_id, self.url)
            if queue_ahead:
                reporter.progress(0, f"queued on ComfyUI ({queue_ahead} ahead)")
            waiter = _Waiter(
                self,
                submission,
                graph,
                reporter,
                socket,
                output_node,
                deadline,
                limit or timeout,
                poll_interval,
                stop_timeout=stop_timeout,
                run_timeout=timeout,
                queue_ahead=queue_ahead,
                queue_timeout=queue_limit or queue_timeout,
            )
            return submission, waiter.wait()
        finally:
            self._give_socket(socket)

    # A worker runs one prompt after another: its socket (and client id) is kept for the next
    # prompt for a few seconds, which saves a handshake per image; a spare socket keeps
    # reading, so a broadcast never waits on it, and is closed when nobody takes it.
    SPARE_FOR = 5.0

    def _take_socket(self) -> _Socket:
        with self._spare_lock:
            while self._spare:
                socket = self._spare.pop()
                if socket.expiry:
                    socket.expiry.cancel()
                if socket.is_open():
                    socket.drain()
                    return socket
                socket.close()
        socket = _Socket(self)
        socket.open(first=True)
        return socket

    def _give_socket(self, socket: _Socket) -> None:
        if not socket.is_open():
            socket.close()
            return
        socket.drops = 0
        socket.expiry = threading.Timer(self.SPARE_FOR, self._expire, args=(socket,))
        socket.expiry.daemon = True
        with self._spare_lock:
            self._spare.append(socket)
        socket.expiry.start()

    def _expire(self, socket: _Socket) -> None:
        with self._spare_lock:
            if socket not in self._spare:
                return
            self._spare.remove(socket)
        socket.close()


class _Socket:
    """One client id's websocket, reopened with the same id after a drop; ``conn`` is None when closed."""

    def __init__(self, client: ComfyUIClient):
        self.client_id = uuid.uuid4().hex
        self.url, self.open_timeout = client.ws_url(self.client_id), client.connect_timeout
        self.stack = ExitStack()
        self.conn = None
        self.drops = 0
        self.expiry: threading.Timer | None = None

    def is_open(self) -> bool:
        from websockets.protocol import State

        return self.conn is not None and self.conn.protocol.state is State.OPEN

    def drain(self) -> None:
        """Drop what arrived while the socket waited for its next prompt (broadcast ``status`` frames)."""
        while self.conn is not None and self.recv(0) is not None:
            pass

    def close(self) -> None:
        self.conn = None
        self.stack.close()

    def open(self, *, first: bool = False) -> bool:
        from websockets.exceptions import InvalidHandshake
        from websockets.sync.client import connect

        self.stack.close()
        self.stack = ExitStack()
        try:
            self.conn = self.stack.enter_context(
                # close_timeout: a server in a GC pause must not hold the job up at the end.
                # max_queue=None: a spare socket keeps reading (ComfyUI must never wait on us).
                connect(
                    self.url,
                    open_timeout=self.open_timeout,
                    close_timeout=2,
                    max_size=2**25,
                    max_queue=None,
                    compression=None,
                )
            )
            return True
        except (OSError, TimeoutError) as exc:
            self.conn = None
            if first:
                raise TransientProviderError(
                    f"Cannot open ComfyUI's websocket {self.url}: {connection_reason(exc)}."
                ) from exc
        except InvalidHandshake as exc:
            # A proxy that does not pass websockets: carry on by polling /history.
            self.conn = None
            if first:
                logger.warning("ComfyUI websocket %s refused (%s); falling back to polling", self.url, exc)
        return False

    def recv(self, timeout: float) -> str | bytes | None:
        """A frame, or None if nothing came within ``timeout``; marks the socket dead if it closed."""
        from websockets.exceptions import ConnectionClosed

        if self.conn is None:
            time.sleep(timeout)
            return None
        try:
            return self.conn.recv(timeout=timeout)
        except TimeoutError:
            return None
        except ConnectionClosed:
            self.conn = None
            self.drops += 1
            return None


class _Waiter:
    """Waits for one prompt: socket messages first, ``/history`` and ``/queue`` when it is quiet."""

    def __init__(
        self,
        client,
        submission,
        graph,
        reporter,
        socket,
        output_node,
        deadline,
        timeout,
        poll_interval,
        *,
        stop_timeout,
        run_timeout=None,
        queue_ahead=None,
        queue_timeout=None,
    ):
        self.client: ComfyUIClient = client
        self.submission: Submission = submission
        self.graph = graph
        self.reporter: ProgressReporter = reporter
        self.socket: _Socket = socket
        self.output_node = output_node
        self.deadline = deadline
        self.timeout = timeout
        self.poll_interval = max(0.05, poll_interval)
        self.progress = ProgressTracker(graph)
        self.images: list[dict[str, str]] | None = None
        self.failed_polls = 0
        self.percent = 0.0
        self.stop_timeout = stop_timeout
        # Until the server starts the prompt, ``deadline`` bounds the wait in its queue; from
        # then on the run has ``run_timeout`` seconds.
        self.run_timeout = timeout if run_timeout is None else run_timeout
        self.queue_timeout = self.run_timeout if queue_timeout is None else queue_timeout
        self.started_at: float | None = None
        self.ahead = queue_ahead  # prompts before ours on the server, as last known
        self.queue_remaining: int | None = None  # from the server's last ``status`` message

    def _started(self) -> None:
        if self.started_at is None:
            self.started_at = time.monotonic()
            self.deadline = self.started_at + self.run_timeout

    @property
    def prompt_id(self) -> str:
        return self.submission.prompt_id

    def wait(self) -> Output:
        last_heard = last_poll = last_reconnect = time.monotonic()
        while True:
            now = time.monotonic()
            if now >= self.deadline:
                return self._timed_out()
            if self.reporter.cancelled():
                self._stop_quietly()
                raise GenerationCancelled(
                    f"Cancelled; ComfyUI at {self.client.url} was asked to remove prompt {self.prompt_id} from its "
                    "queue or interrupt it."
                )
            if self.socket.conn is None and self.socket.drops and now - last_reconnect >= self.poll_interval:
                # Same client id: ComfyUI routes the rest of the run to the new socket. What
                # was sent meanwhile is lost, so history is checked right after.
                last_reconnect = now
                if self.socket.open():
                    last_poll = now
                    state = self._poll()
                    if state is not None:
                        return self._from_history(state.entry, via=state.via)
            frame = self.socket.recv(min(RECV_SLICE, self.poll_interval, max(0.0, self.deadline - now)))
            if isinstance(frame, str):
                last_heard = time.monotonic()
                if self._handle(frame):
                    return self._finish()
                continue
            if frame is not None:
                continue  # a binary preview frame: not needed
            now = time.monotonic()
            if now - last_heard >= self.poll_interval and now - last_poll >= self.poll_interval:
                last_poll = now
                state = self._poll()
                if state is not None:
                    return self._from_history(state.entry, via=state.via)

    def _timed_out(self) -> Output:
        """Stop the prompt at the wall-clock limit and raise an error that says what the server did."""
        url, within = self.client.url, self.stop_timeout
        outcome = self.client.stop_confirmed(self.prompt_id, within)
        if self.started_at is None:
            late = f"ComfyUI at {url} did not start prompt {self.prompt_id} within {self.queue_timeout:g} s"
        else:
            late = f"ComfyUI at {url} did not finish prompt {self.prompt_id} within {self.timeout:g} s"
        if outcome.confirmed:
            entry = (outcome.state.entry if outcome.state else None) or {}
            status = entry.get("status") or {}
            kinds = [message[0] for message in status.get("messages") or [] if message]
            if status.get("status_str") == "success" or "execution_error" in kinds:
                # It ended on its own while it was being stopped: use its image, or say why it failed.
                return self._from_history(entry, via=outcome.state.via)
            raise TransientProviderError(f"{late}; it was stopped and confirmed gone from {url}.")
        state = outcome.state.state if outcome.state else ""
        if state:
            where = "still running" if state == "running" else "still in its queue"
            what = f"blogimages asked {url} to stop it but it was {where} after {within:g} s"
        else:
            reason = outcome.error.rstrip(".")
            what = f"blogimages could not confirm that {url} stopped it ({reason}), so it may still be running"
        raise PromptStillRunning(
            f"{late}; {what}. It is not retried, so that no second prompt runs next to it: check the server's "
            "queue, then generate the image again.",
            server=url,
            prompt_id=self.prompt_id,
        )

    # --- socket messages ---------------------------------------------------------------------

    def _handle(self, frame: str) -> bool:
        """Apply one text frame; True when our prompt is finished."""
        try:
            message = json.loads(frame)
            kind, data = message.get("type"), message.get("data") or {}
        except (ValueError, AttributeError):
            return False
        if not isinstance(data, dict):
            return False
        if kind == "status":
            self._status(data)
            return False
        prompt_id = data.get("prompt_id")
        if prompt_id is not None and prompt_id != self.prompt_id:
            return False  # another prompt of this client id (none) or a broadcast for someone else
        if prompt_id and kind != "execution_cached":
            self._started()
        if kind == "executing":
            if prompt_id is None:
                return False  # the first frame after a reconnect: no prompt id, nothing certain
            if data.get("node") is None:
                return True
            self._report(self.progress.node(str(data["node"])))
        elif kind == "execution_start" and prompt_id:
            self._report((1, "started"))
        elif kind == "execution_cached" and prompt_id:
            self.progress.cached(data.get("nodes") or [])
        elif kind == "progress_state" and prompt_id:
            self._report(self.progress.state(data.get("nodes") or {}))
        elif kind == "progress" and prompt_id:
            self._report(self.progress.step(str(data.get("node")), data.get("value"), data.get("max")))
        elif kind == "executed" and prompt_id:
            images = (data.get("output") or {}).get("images") or []
            if images and (self.output_node is None or str(data.get("node")) == self.output_node):
                self.images = images
        elif kind == "execution_error" and prompt_id:
            raise PermanentProviderError(describe_execution_error(data, self.graph, self.client.url))
        elif kind == "execution_interrupted" and prompt_id:
            raise PermanentProviderError(describe_interrupt(data, self.graph, self.client.url))
        return False

    def _status(self, data: dict[str, Any]) -> None:
        """A ``status`` broadcast: the server's queue length (running plus pending prompts)."""
        try:
            remaining = int(data["status"]["exec_info"]["queue_remaining"])
        except (KeyError, TypeError, ValueError):
            return
        self.queue_remaining = remaining
        if self.started_at is None and remaining > 0:
            # Ours is among them and prompts posted after it run after it: the number ahead only shrinks.
            ahead = remaining - 1 if self.ahead is None else min(self.ahead, remaining - 1)
            if ahead != self.ahead and ahead > 0:
                self.reporter.progress(0, f"queued on ComfyUI ({ahead} ahead)")
            self.ahead = ahead

    def _run_seconds(self) -> float | None:
        return None if self.started_at is None else time.monotonic() - self.started_at

    def _report(self, update: tuple[float, str] | None) -> None:
        if update is not None:
            # Never backwards: a node that starts reads as 0 % of itself.
            self.percent = max(self.percent, min(99.0, update[0]))
            self.reporter.progress(self.percent, update[1])

    # --- finishing -----------------------------------------------------------------------------

    def _finish(self) -> Output:
        if self.images:
            return Output(
                self.images[0],
                self.images,
                via="websocket",
                queue_remaining=self.queue_remaining,
                run_seconds=self._run_seconds(),
            )
        # We missed ``executed`` (a reconnect, a stall): the entry exists by now, but retry
        # an empty answer briefly as the recordings advise.
        until = min(self.deadline, time.monotonic() + HISTORY_RETRY)
        while True:
            state = self.client.prompt_state(self.prompt_id)
            if state.state == "done" or time.monotonic() >= until:
                break
            time.sleep(0.05)
        if state.state != "done":
            raise TransientProviderError(
                f"ComfyUI at {self.client.url} reported prompt {self.prompt_id} finished but has no history for it."
            )
        return self._from_history(state.entry, via=state.via)

    def _from_history(self, entry: dict[str, Any], *, via: str = "history") -> Output:
        status = entry.get("status") or {}
        if status.get("status_str") == "error" or status.get("completed") is False:
            for kind, data in status.get("messages") or []:
                if kind == "execution_error":
                    raise PermanentProviderError(describe_execution_error(data, self.graph, self.client.url))
                if kind == "execution_interrupted":
                    raise PermanentProviderError(describe_interrupt(data, self.graph, self.client.url))
            raise PermanentProviderError(f"ComfyUI at {self.client.url} reports prompt {self.prompt_id} as failed.")
        outputs = entry.get("outputs") or {}
        nodes = [self.output_node] if self.output_node else list(outputs)
        for node_id in nodes:
            images = (outputs.get(node_id) or {}).get("images") or []
            if images:
                return Output(
                    images[0], images, via=via, queue_remaining=self.queue_remaining, run_seconds=self._run_seconds()
                )
        raise PermanentProviderError(
            f"ComfyUI at {self.client.url} finished prompt {self.prompt_id} without an image from "
            f"{_node_label(self.output_node, self.graph) if self.output_node else 'any output node'}."
        )

    def _poll(self) -> PromptState | None:
        """Ask the server where the prompt is: its state when done, None while queued or running."""
        try:
            state = self.client.prompt_state(self.prompt_id)
        except TransientProviderError as exc:
            self.failed_polls += 1
            if self.failed_polls >= LOST_CONTACT_AFTER:
                raise TransientProviderError(
                    f"Lost contact with ComfyUI at {self.client.url} while it ran prompt {self.prompt_id}: {exc}"
                ) from exc
            return None
        self.failed_polls = 0
        if state.state == "done":
            return state
        if state.state == "running":
            self._started()
        if state.state == "pending" and state.ahead is not None:
            self.ahead = state.ahead
            self.reporter.progress(0, f"queued on ComfyUI ({state.ahead} ahead)")
        if state.active:
            return None
        message = f"ComfyUI at {self.client.url} no longer has prompt {self.prompt_id} in its queue or history"
        if self.socket.drops:
            # The socket dropped too: most likely the server restarted and forgot its queue.
            raise TransientProviderError(message + " (the server seems to have restarted).")
        raise PermanentProviderError(message + ": someone removed it from the queue before it ran.")

    def _stop_quietly(self) -> None:
        try:
            self.client.stop(self.prompt_id)
        except ProviderError as exc:
            logger.warning("Could not stop ComfyUI prompt %s on %s: %s", self.prompt_id, self.client.url, exc)


class ProgressTracker:
    """Turns ``progress_state`` and ``progress`` messages into one percentage and a short label."""

    def __init__(self, graph: dict[str, Any]):
        self.graph = graph
        self.weights = {
            node_id: SAMPLER_WEIGHT if node.get("class_type") in SAMPLERS else 1 for node_id, node in graph.items()
        }
        self.total = sum(self.weights.values()) or 1
        self.done: dict[str, float] = {}
        self.label = ""

    def percent(self) -> float:
        return 100 * sum(self.weights.get(n, 0) * f for n, f in self.done.items()) / self.total

    def cached(self, nodes: list[str]) -> None:
        for node_id in nodes:
            self.done[str(node_id)] = 1.0

    def node(self, node_id: str) -> tuple[float, str]:
        self.label = _class_of(node_id, self.graph)
        return self.percent(), f"running {self.label}"

    def state(self, nodes: dict[str, Any]) -> tuple[float, str] | None:
        for node_id, state in nodes.items():
            if not isinstance(state, dict):
                continue
            maximum = state.get("max") or 1
            fraction = 1.0 if state.get("state") == "finished" else min(1.0, (state.get("value") or 0) / maximum)
            self.done[str(node_id)] = max(self.done.get(str(node_id), 0.0), fraction)
        return self.percent(), f"running {self.label}" if self.label else "running"

    def step(self, node_id: str, value: Any, maximum: Any) -> tuple[float, str] | None:
        try:
            fraction = min(1.0, float(value) / float(maximum))
        except (TypeError, ValueError, ZeroDivisionError):
            return None
        self.done[node_id] = max(self.done.get(node_id, 0.0), fraction)
        return self.percent(), f"{_class_of(node_id, self.graph)} step {value}/{maximum}"


# --- readable errors ------------------------------------------------------------------------------


def _class_of(node_id: str | None, graph: dict[str, Any]) -> str:
    return (graph.get(str(node_id)) or {}).get("class_type", "node")


def _node_label(node_id: Any, graph: dict[str, Any], class_type: str | None = None) -> str:
    node = graph.get(str(node_id)) or {}
    class_type = class_type or node.get("class_type") or "?"
    title = (node.get("_meta") or {}).get("title")
    if title and title != class_type:
        return f"node {node_id} \u201c{title}\u201d ({class_type})"
    return f"node {node_id} ({class_type})"


def describe_rejection(body: dict[str, Any], graph: dict[str, Any], server: str) -> str:
    """One sentence from a 400 answer to ``POST /prompt``, naming node, input and problem."""
    problems = []
    for node_id, entry in (body.get("node_errors") or {}).items():
        label = _node_label(node_id, graph, entry.get("class_type"))
        for error in entry.get("errors") or []:
            extra = error.get("extra_info") or {}
            what = clip(error.get("message") or error.get("type") or "invalid")
            details = clip(error.get("details") or "", 200)
            input_name = extra.get("input_name")
            where = f"{label}, input {input_name}" if input_name else label
            problems.append(f"{where}: {what}" + (f" ({details})" if details and details != input_name else ""))
    if problems:
        more = f"; also {'; '.join(problems[1:3])}" if len(problems) > 1 else ""
        if len(problems) > 3:
            more += f" and {len(problems) - 3} more"
        return f"ComfyUI at {server} rejected the workflow: {problems[0]}{more}."
    error = body.get("error") or {}
    message = clip(error.get("message") or "the prompt is invalid").rstrip(".")
    details = clip(error.get("details") or "", 200)
    hint = " Is the custom node installed on that server?" if "does not exist" in message else ""
    return f"ComfyUI at {server} rejected the workflow: {message}" + (f" ({details})" if details else "") + "." + hint


def describe_execution_error(data: dict[str, Any], graph: dict[str, Any], server: str) -> str:
    """One sentence from an ``execution_error`` message: node type and the exception's message."""
    exception = (data.get("exception_type") or "Error").rsplit(".", 1)[-1]
    message = clip(data.get("exception_message") or "no message").rstrip(".")
    label = _node_label(data.get("node_id"), graph, data.get("node_type"))
    return f"ComfyUI at {server} failed in {label}: {exception}: {message}."


def describe_interrupt(data: dict[str, Any], graph: dict[str, Any], server: str) -> str:
    label = _node_label(data.get("node_id"), graph, data.get("node_type"))
    return (
        f"ComfyUI at {server} stopped this image at {label} because someone interrupted it on the server; "
        "generate it again to retry."
    )
