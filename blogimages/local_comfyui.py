"""Start, stop and inspect a local ComfyUI that the operator configured.

The operator sets ``BLOGIMAGES_COMFYUI_START_COMMAND`` (a shell command such as
``python main.py --listen 127.0.0.1 --port 8188``) and optionally
``BLOGIMAGES_COMFYUI_WORKDIR`` (the folder it runs in, e.g. the ComfyUI checkout).
``manage.py blogimages_comfyui start|stop|status`` and the admin status page call the
three functions below; nothing else is public:

* :func:`status` -> :class:`LocalComfyUI` (never raises)
* :func:`start` -> :class:`LocalComfyUI` (raises :class:`NotConfigured` or :class:`StartFailed`;
  starting when already running returns the running one)
* :func:`stop` -> :class:`LocalComfyUI` (stopping when not running is fine; raises
  :class:`StopFailed` if the process survives SIGKILL)

The process runs in its own session (so stop takes down the whole process group: the
shell and the Python it started), writes its output to ``comfyui.log`` and its pid to
``comfyui.pid`` in :func:`default_state_dir` (``<tempdir>/blogimages-comfyui-<uid>``,
independent of MEDIA_ROOT and of any Django setting, so every process of one site on one
machine finds the same ComfyUI). POSIX only.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
import uuid
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Iterator

from .conf import app_settings
from .exceptions import BlogImagesError

__all__ = [
    "LocalComfyUI",
    "LocalComfyUIError",
    "NotConfigured",
    "StartFailed",
    "StopFailed",
    "default_state_dir",
    "start",
    "status",
    "stop",
    "log_tail",
]

# Set in the child's environment so a recycled pid is never mistaken for our ComfyUI.
TOKEN_ENV = "BLOGIMAGES_COMFYUI_TOKEN"
LOG_ROTATE_BYTES = 10 * 1024 * 1024


class LocalComfyUIError(BlogImagesError):
    """Starting or stopping the local ComfyUI did not work; the message says why."""


class NotConfigured(LocalComfyUIError):
    """No start command (or a work folder that does not exist) in settings."""


class StartFailed(LocalComfyUIError):
    """The command exited at once; the message ends with the tail of its log."""


class StopFailed(LocalComfyUIError):
    """The process group survived SIGTERM and SIGKILL."""


@dataclass
class LocalComfyUI:
    """What the status page and the command show."""

    configured: bool
    running: bool
    pid: int | None
    command: str
    workdir: str
    started_at: str | None  # ISO 8601, UTC
    log_path: str
    detail: str  # one sentence for people

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def default_state_dir() -> Path:
    """``<tempdir>/blogimages-comfyui-<uid>``: per user, so two users never share a pidfile."""
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return Path(tempfile.gettempdir()) / f"blogimages-comfyui-{uid}"


def status(*, state_dir: Path | str | None = None) -> LocalComfyUI:
    folder = _folder(state_dir, create=False)
    state = _read_state(folder)
    command = app_settings.COMFYUI_START_COMMAND.strip()
    configured = bool(command)
    log_path = str(folder / "comfyui.log")
    if state and _is_ours(state):
        started = state.get("started_at")
        return LocalComfyUI(
            configured,
            True,
            state["pid"],
            state.get("command", ""),
            state.get("workdir", ""),
            started,
            log_path,
            f"Running as pid {state['pid']} since {started}.",
        )
    if state and state.get("started_at"):
        detail = f"Not running: the process started at {state['started_at']} has exited; see {log_path}."
    elif state:
        detail = "Not running (the pidfile names a process that is not this ComfyUI)."
    elif configured:
        detail = "Not running."
    else:
        detail = "Not configured: set BLOGIMAGES_COMFYUI_START_COMMAND to start ComfyUI from here."
    return LocalComfyUI(configured, False, None, command, app_settings.COMFYUI_WORKDIR, None, log_path, detail)


def start(*, state_dir: Path | str | None = None, wait: float = 2.0) -> LocalComfyUI:
    """Start the configured command unless ours is already running.

    ``wait`` seconds are spent watching for an immediate exit (a typo in the command, a
    missing venv) so the caller gets :class:`StartFailed` with the log instead of a
    silent "running" that is already dead.
    """
    command = app_settings.COMFYUI_START_COMMAND.strip()
    if not command:
        raise NotConfigured(
            "No start command: set BLOGIMAGES_COMFYUI_START_COMMAND (or the COMFYUI_START_COMMAND environment "
            "variable) to the shell command that starts ComfyUI, e.g. 'python main.py --port 8188'."
        )
    workdir = app_settings.COMFYUI_WORKDIR.strip()
    if workdir and not Path(workdir).is_dir():
        raise NotConfigured(f"BLOGIMAGES_COMFYUI_WORKDIR {workdir!r} is not a folder.")
    folder = _folder(state_dir, create=True)
    with _lock(folder):
        state = _read_state(folder)
        if state and _is_ours(state):
            return status(state_dir=folder)
        log_path = folder / "comfyui.log"
        _rotate(log_path)
        token = uuid.uuid4().hex
        started_at = datetime.now(UTC).replace(microsecond=0).isoformat()
        with open(log_path, "ab") as log:
            log.write(f"\n--- blogimages: starting at {started_at} in {workdir or os.getcwd()}: {command}\n".encode())
            log.flush()
            try:
                process = subprocess.Popen(
                    command,
                    shell=True,
                    cwd=workdir or None,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    close_fds=True,
                    env={**os.environ, TOKEN_ENV: token, "PYTHONUNBUFFERED": "1"},
                )
            except OSError as exc:
                raise StartFailed(f"Could not run the start command: {exc}.") from exc
        _children[process.pid] = process
        state = {
            "pid": process.pid,
            "token": token,
            "command": command,
            "workdir": workdir,
            "started_at": started_at,
        }
        _write_state(folder, state)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if process.poll() is not None:
                break
            time.sleep(0.05)
        if process.poll() is not None:
            _clear_state(folder)
            tail = log_tail(state_dir=folder, lines=15)
            tail = tail[tail.rfind("--- blogimages: starting") :] if "--- blogimages: starting" in tail else tail
            raise StartFailed(
                f"ComfyUI exited at once with status {process.returncode}; the end of {log_path}:\n{tail}"
            )
    return status(state_dir=folder)


def stop(*, state_dir: Path | str | None = None, timeout: float = 15.0) -> LocalComfyUI:
    """SIGTERM the process group, SIGKILL it after ``timeout`` seconds; fine if not running."""
    folder = _folder(state_dir, create=False)
    if not folder.is_dir():
        return status(state_dir=folder)
    with _lock(folder):
        state = _read_state(folder)
        if not state or not _is_ours(state):
            _clear_state(folder)
            return status(state_dir=folder)
        pid = state["pid"]
        _signal_group(pid, signal.SIGTERM)
        if not _wait_gone(pid, timeout):
            _signal_group(pid, signal.SIGKILL)
            if not _wait_gone(pid, 5.0):
                raise StopFailed(f"ComfyUI (pid {pid}) is still running after SIGKILL.")
        _clear_state(folder)
        _append_log(folder, f"--- blogimages: stopped pid {pid}")
    result = status(state_dir=folder)
    result.detail = f"Stopped (was pid {pid})."
    return result


def log_tail(*, state_dir: Path | str | None = None, lines: int = 40) -> str:
    """The last ``lines`` lines of the log (empty if there is none)."""
    path = _folder(state_dir, create=False) / "comfyui.log"
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 64 * 1024))
            data = handle.read()
    except FileNotFoundError:
        return ""
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])


# --- internals ----------------------------------------------------------------------------

# Processes this Python process started: polled so an exited child does not linger as a
# zombie (which os.kill(pid, 0) would still report as alive) in a long-lived web worker.
_children: dict[int, subprocess.Popen] = {}


def _folder(state_dir: Path | str | None, *, create: bool) -> Path:
    folder = Path(state_dir) if state_dir else default_state_dir()
    if create:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder


@contextmanager
def _lock(folder: Path) -> Iterator[None]:
    # Two admins clicking "start" at once must not start two ComfyUIs on one port.
    import fcntl

    with open(folder / "comfyui.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read_state(folder: Path) -> dict[str, Any] | None:
    try:
        pid = int((folder / "comfyui.pid").read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        meta = json.loads((folder / "comfyui.json").read_text())
    except (FileNotFoundError, ValueError):
        meta = {}
    return {**meta, "pid": pid}


def _write_state(folder: Path, state: dict[str, Any]) -> None:
    (folder / "comfyui.json").write_text(json.dumps(state))
    (folder / "comfyui.pid").write_text(f"{state['pid']}\n")


def _clear_state(folder: Path) -> None:
    for name in ("comfyui.pid", "comfyui.json"):
        (folder / name).unlink(missing_ok=True)


def _reap(pid: int) -> None:
    process = _children.get(pid)
    if process is not None:
        if process.poll() is not None:
            _children.pop(pid, None)
        return
    try:
        os.waitpid(pid, os.WNOHANG)
    except (ChildProcessError, OSError):
        pass  # not our child: its parent reaps it


def _alive(pid: int) -> bool:
    _reap(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # someone else's process now holds this pid
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    except (OSError, IndexError):
        pass
    return True


def _is_ours(state: dict[str, Any]) -> bool:
    pid = state.get("pid")
    if not isinstance(pid, int) or pid <= 1 or not _alive(pid):
        return False
    try:
        if os.getpgid(pid) != pid:
            return False  # we start it as a session leader; anything else is a recycled pid
    except OSError:
        return False
    token = state.get("token")
    if not token:
        return False  # every start records one; a bare pidfile is not ours
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return True  # no /proc (macOS): the process-group check has to do
    return f"{TOKEN_ENV}={token}".encode() in environ.split(b"\0")


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


def _group_alive(pid: int) -> bool:
    _reap(pid)
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie leader keeps the group "alive"; count it gone once it is the only one left.
    return _alive(pid) or _group_has_live_members(pid)


def _group_has_live_members(pgid: int) -> bool:
    proc = Path("/proc")
    if not proc.is_dir():
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _group_alive(pid):
            return True
        time.sleep(0.1)
    return not _group_alive(pid)


def _rotate(log_path: Path) -> None:
    try:
        if log_path.stat().st_size > LOG_ROTATE_BYTES:
            log_path.replace(log_path.with_suffix(".log.1"))
    except FileNotFoundError:
        pass


def _append_log(folder: Path, line: str) -> None:
    with open(folder / "comfyui.log", "a", encoding="utf-8") as handle:
        handle.write(line + "\n")
