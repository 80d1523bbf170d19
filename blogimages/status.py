"""What the status page, ``blogimages_status`` and ``GET /api/v1/comfyui/status`` report.

Gathered here once, as plain data (dataclasses), and rendered by each of them: providers'
health (checked in parallel, with one time limit for all), the RQ queues and their
workers, results by status, a local ComfyUI started by ``blogimages_comfyui``, and
whether OpenAI is configured. Nothing here starts, stops or changes anything.
"""

from __future__ import annotations

import datetime
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from importlib import import_module
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db.models import Count
from django.utils import timezone
from django.utils.module_loading import import_string
from django.utils.translation import gettext as _

from .conf import app_settings

if TYPE_CHECKING:
    from collections.abc import Iterable

logger = logging.getLogger("blogimages.status")

#: Seconds the health checks of all providers may take together.
HEALTH_TIMEOUT = 10.0
#: What an operator runs to start, stop or inspect the local ComfyUI (the web pages only show its state).
COMFYUI_COMMAND = "python manage.py blogimages_comfyui start|stop|status"


# --- providers --------------------------------------------------------------------------------------


@dataclass
class ProviderStatus:
    """One provider alias: what it is (from its class, even when its options are wrong) and its health."""

    alias: str
    backend: str = ""
    kind: str = ""  # the class's ``kind``; "" when the class cannot be imported
    label: str = ""
    is_cloud: bool = False
    runs_comfyui: bool = False
    default: bool = False
    ok: bool = False
    detail: str = ""
    info: dict[str, Any] = field(default_factory=dict)
    seconds: float | None = None  # how long the health check took; None when it never ran
    #: Sentences an operator should act on although the provider works: for OpenAI, models that
    #: settings name and that OpenAI shuts down soon or already did, or shutdown dates read from
    #: the table because GET /models failed. Also under ``info`` so the status page shows them.
    warnings: list[str] = field(default_factory=list)


def _backend(alias: str) -> str:
    config = app_settings.PROVIDERS.get(alias)
    return str(config.get("BACKEND") or "") if isinstance(config, dict) else ""


def provider_class(alias: str) -> type | None:
    """The class ``BLOGIMAGES_PROVIDERS[alias]`` names, without building it; None if it does not import."""
    try:
        return import_string(_backend(alias))
    except ImportError:
        return None


def _describe(alias: str) -> ProviderStatus:
    cls = provider_class(alias)
    return ProviderStatus(
        alias=alias,
        backend=_backend(alias),
        kind=str(getattr(cls, "kind", "")),
        label=str(getattr(cls, "label", "")),
        is_cloud=bool(getattr(cls, "is_cloud", False)),
        runs_comfyui=bool(getattr(cls, "runs_comfyui", False)),
        default=alias == app_settings.DEFAULT_PROVIDER,
    )


def aliases_where(**attributes: Any) -> list[str]:
    """Configured aliases whose class has these attributes, e.g. ``aliases_where(kind="openai")``."""
    found = []
    for alias in app_settings.PROVIDERS:
        cls = provider_class(alias)
        if cls is not None and all(getattr(cls, name, None) == value for name, value in attributes.items()):
            found.append(alias)
    return found


def _check(described: ProviderStatus) -> ProviderStatus:
    from .providers import providers

    row = replace(described)  # a copy: a check that outlives the time limit must not change the report
    started = time.monotonic()
    try:
        provider = providers[row.alias]
    except Exception as exc:  # noqa: BLE001 - a provider that cannot be built is what a status report is for
        row.detail = f"{exc.__class__.__name__}: {exc}"
        return row
    row.label = provider.label
    try:
        health = provider.health()
    except Exception as exc:  # noqa: BLE001 - one broken provider must not hide the others
        logger.warning("Health check of provider %s failed", row.alias, exc_info=True)
        row.detail = _("The health check failed: %(error)s") % {"error": f"{exc.__class__.__name__}: {exc}"}
    else:
        row.ok, row.detail, row.info = bool(health.ok), health.detail, dict(health.info or {})
    row.seconds = round(time.monotonic() - started, 3)
    return row


def provider_health(aliases: Iterable[str] | None = None, *, timeout: float = HEALTH_TIMEOUT) -> list[ProviderStatus]:
    """The health of ``aliases`` (default: every configured provider), in settings order.

    Checked in parallel, so a server that is down costs one timeout, not one each; a check
    still running after ``timeout`` seconds is reported as unavailable and left to finish.
    """
    rows = [_describe(alias) for alias in (app_settings.PROVIDERS if aliases is None else aliases)]
    if not rows:
        return []
    pool = ThreadPoolExecutor(max_workers=min(8, len(rows)), thread_name_prefix="blogimages-health")
    futures = [pool.submit(_check, row) for row in rows]
    wait(futures, timeout=timeout)
    pool.shutdown(wait=False, cancel_futures=True)
    late = _("No answer within %(s)s seconds.") % {"s": f"{timeout:g}"}
    return _with_lifecycle_warnings(
        [
            future.result() if future.done() else replace(row, ok=False, detail=late, seconds=timeout)
            for row, future in zip(rows, futures, strict=True)
        ]
    )


def _with_lifecycle_warnings(rows: list[ProviderStatus]) -> list[ProviderStatus]:
    """OpenAI rows with their retiring models (read here, in the request's thread and
    database transaction, after the health checks refreshed the cached shutdown dates)."""
    from django.db import DatabaseError

    from .providers import providers
    from .providers.lifecycle import model_uses, retirement_warnings

    openai_rows = [row for row in rows if row.kind == "openai"]
    if not openai_rows:
        return rows
    try:
        uses = model_uses()
    except DatabaseError as exc:
        uses = {}
        for row in openai_rows:
            row.warnings.append(_("Image settings could not be read to find retiring models: %(e)s") % {"e": exc})
    found = retirement_warnings([row.alias for row in openai_rows], uses=uses)
    for row in openai_rows:
        try:
            note = providers[row.alias].lifecycle_note()
        except Exception:  # noqa: BLE001 - its health row already says why it cannot be built
            note = ""
        row.warnings += [note] if note else []
        row.warnings += [warning.sentence() for warning in found if warning.alias == row.alias]
        if row.warnings:
            row.info = {**row.info, "warnings": row.warnings}
    return rows


# --- OpenAI ------------------------------------------------------------------------------------------


@dataclass
class OpenAIStatus:
    aliases: list[str]  # providers of kind "openai"
    key: bool  # whether one of them has an API key (the API is not called)
    cloud_enabled: bool  # ENABLE_CLOUD_APIS: may cloud providers join ``auto``


def openai_status() -> OpenAIStatus:
    from .providers import providers

    aliases = aliases_where(kind="openai")
    key = False
    for alias in aliases:
        try:
            provider = providers[alias]
        except Exception:  # noqa: BLE001, S112 - the providers' health says why
            continue
        finder = getattr(provider, "api_key", None)
        key = key or bool(finder() if callable(finder) else provider.options.get("api_key"))
    if aliases and not key:
        key = bool(getattr(settings, "OPENAI_API_KEY", "") or os.environ.get("OPENAI_API_KEY"))
    return OpenAIStatus(aliases=aliases, key=key, cloud_enabled=app_settings.ENABLE_CLOUD_APIS)


# --- the job queue -----------------------------------------------------------------------------------


@dataclass
class WorkerStatus:
    name: str
    state: str
    job: str  # the id of the job it is running, or ""
    heartbeat: Any
    successful: int
    failed: int
    #: Registered in Redis but gone: its process is not running on this host, or it has not
    #: sent a heartbeat for longer than a live worker ever waits (see :func:`worker_is_dead`).
    dead: bool = False

    @property
    def shown_state(self) -> str:
        return "dead" if self.dead else self.state


#: Seconds a live RQ worker may go without a heartbeat: an idle one blocks on the queue for
#: worker_ttl - 15 (405 s by default) between heartbeats, a busy one beats every
#: job_monitoring_interval (30 s); a little slack on top.
WORKER_SILENT_IDLE = 420 + 30
WORKER_SILENT_BUSY = 30 + 60


def worker_is_dead(worker: Any, now: Any = None) -> bool:
    """Whether an RQ worker listed in Redis is dead: RQ keeps a killed worker's entry (and
    shows it idle) until its key expires, up to 8 minutes later."""
    import socket

    now = now or timezone.now()
    pid, host = getattr(worker, "pid", None), getattr(worker, "hostname", None)
    if pid and host and host == socket.gethostname():
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except (PermissionError, ValueError, OSError):
            pass
    beat = getattr(worker, "last_heartbeat", None)
    if beat is None:
        return False
    if timezone.is_naive(beat):
        beat = timezone.make_aware(beat, datetime.UTC)
    busy = worker.get_state() == "busy"
    return (now - beat).total_seconds() > (WORKER_SILENT_BUSY if busy else WORKER_SILENT_IDLE)


@dataclass
class QueueStatus:
    name: str
    is_ours: bool  # BLOGIMAGES_QUEUE
    jobs: int = 0  # waiting
    started: int = 0
    failed: int = 0
    finished: int = 0
    deferred: int = 0
    scheduled: int = 0
    workers: list[WorkerStatus] = field(default_factory=list)
    error: str = ""  # Redis could not be reached: "ConnectionError: ..."
    # BLOGIMAGES_QUEUE only: does a worker run RQ's scheduler (scheduled retries), and when
    # did the recovery round last run (None: not in the last day)?
    scheduler: bool = False
    last_recovery: Any = None

    @property
    def ok(self) -> bool:
        return not self.error

    @property
    def no_live_worker(self) -> bool:
        """BLOGIMAGES_QUEUE with no live worker: its jobs wait for nobody."""
        return self.is_ours and not self.error and not any(not w.dead for w in self.workers)

    @property
    def recovery_warnings(self) -> list[str]:
        """What keeps scheduled retries or the recovery round from running, in sentences."""
        from .services import RECOVER_EVERY

        if not self.is_ours or self.error:
            return []
        warnings = []
        if self.scheduled and not self.scheduler:
            warnings.append(
                f"{self.scheduled} job(s) are scheduled (retries) but no worker runs RQ's scheduler: "
                "start the workers with --with-scheduler."
            )
        age = (timezone.now() - self.last_recovery).total_seconds() if self.last_recovery else None
        if age is None or age > 3 * RECOVER_EVERY:
            since = "in the last day" if age is None else f"for {age:.0f} s"
            warnings.append(
                f"No recovery round has run {since}: run python manage.py rqcron blogimages.cron beside the "
                "workers, or results whose worker dies stay running until a worker picks up another job."
            )
        return warnings


@dataclass
class QueuesStatus:
    queues: list[QueueStatus]
    error: str = ""  # the last queue's Redis error, if any

    @property
    def ours(self) -> QueueStatus | None:
        """BLOGIMAGES_QUEUE's entry; None when RQ_QUEUES does not define it."""
        return next((queue for queue in self.queues if queue.is_ours), None)


def _queue(name: str) -> QueueStatus:
    import django_rq
    from redis.exceptions import RedisError
    from rq import Worker
    from rq.registry import (
        DeferredJobRegistry,
        FailedJobRegistry,
        FinishedJobRegistry,
        ScheduledJobRegistry,
        StartedJobRegistry,
    )

    entry = QueueStatus(name=name, is_ours=name == app_settings.QUEUE)
    try:
        queue = django_rq.get_queue(name)
        entry.jobs = queue.count
        entry.started = len(StartedJobRegistry(queue=queue))
        entry.failed = len(FailedJobRegistry(queue=queue))
        entry.finished = len(FinishedJobRegistry(queue=queue))
        entry.deferred = len(DeferredJobRegistry(queue=queue))
        entry.scheduled = len(ScheduledJobRegistry(queue=queue))
        if entry.is_ours:
            from rq.scheduler import RQScheduler

            from .services import LAST_RECOVERY_KEY

            entry.scheduler = bool(queue.connection.exists(RQScheduler.get_locking_key(name)))
            last = queue.connection.get(LAST_RECOVERY_KEY)
            entry.last_recovery = datetime.datetime.fromtimestamp(float(last), tz=datetime.UTC) if last else None
        entry.workers = [
            WorkerStatus(
                name=w.name,
                state=w.get_state(),
                job=w.get_current_job_id() or "",
                heartbeat=w.last_heartbeat,
                successful=w.successful_job_count,
                failed=w.failed_job_count,
                dead=worker_is_dead(w),
            )
            for w in Worker.all(queue=queue)
        ]
    except (RedisError, OSError) as exc:
        entry.error = f"{exc.__class__.__name__}: {exc}"
    return entry


def queue_status(*, only_ours: bool = False) -> QueuesStatus:
    """Every queue in ``RQ_QUEUES`` (or only BLOGIMAGES_QUEUE's) with its jobs and workers."""
    names = list(getattr(settings, "RQ_QUEUES", {}))
    if only_ours:
        names = [name for name in names if name == app_settings.QUEUE]
    queues = [_queue(name) for name in names]
    errors = [queue.error for queue in queues if queue.error]
    return QueuesStatus(queues=queues, error=errors[-1] if errors else "")


# --- is anyone taking jobs? (review page, status page) -------------------------------------------------


def queue_note(name: str | None = None) -> str:
    """A sentence for a queued job's card when no live worker takes jobs from its queue
    (``""`` when one does, or when Redis cannot say: the job's own error tells that)."""
    import django_rq
    from redis.exceptions import RedisError
    from rq import Worker

    name = name or app_settings.QUEUE
    try:
        workers = Worker.all(queue=django_rq.get_queue(name))
        if any(not worker_is_dead(w) for w in workers):
            return ""
    except (RedisError, OSError):
        return ""
    if workers:
        return _(
            "No worker is taking jobs from queue “%(queue)s”: its %(n)d worker(s) are dead. "
            "Start one with: python manage.py rqworker %(queue)s"
        ) % {"queue": name, "n": len(workers)}
    return _("No worker is taking jobs from queue “%(queue)s”. Start one with: python manage.py rqworker %(queue)s") % {
        "queue": name
    }


# --- results -----------------------------------------------------------------------------------------


@dataclass
class ResultCounts:
    by_status: dict[str, int]  # every status, zeros included
    stuck: int  # running without a heartbeat for STUCK_AFTER seconds
    failed_transient: int  # failed with an error worth retrying


def result_counts() -> ResultCounts:
    from .models import ErrorKind, ImageGenerationResult, ResultStatus

    counts = dict.fromkeys(ResultStatus.values, 0)
    for status, n in ImageGenerationResult.objects.values_list("status").annotate(n=Count("pk")).order_by():
        counts[status] = n
    cutoff = timezone.now() - timezone.timedelta(seconds=app_settings.STUCK_AFTER)
    return ResultCounts(
        by_status=counts,
        stuck=ImageGenerationResult.objects.stale(cutoff).count(),
        failed_transient=ImageGenerationResult.objects.filter(
            status=ResultStatus.FAILED, error_kind=ErrorKind.TRANSIENT
        ).count(),
    )


# --- a local ComfyUI ---------------------------------------------------------------------------------


@dataclass
class LocalComfyUIState:
    """The local ComfyUI that ``blogimages_comfyui start`` runs, if BLOGIMAGES_COMFYUI_START_COMMAND is set."""

    configured: bool
    available: bool = False  # blogimages.local_comfyui imports here
    command: str = ""  # BLOGIMAGES_COMFYUI_START_COMMAND
    running: bool | None = None  # None: unknown
    summary: str = ""  # one sentence, e.g. "Running as pid 48211 since ..."
    details: dict[str, Any] = field(default_factory=dict)  # pid, started_at, workdir, log_path (those known)
    error: str = ""  # why the state could not be read
    control: str = COMFYUI_COMMAND


def local_comfyui_state() -> LocalComfyUIState:
    command = app_settings.COMFYUI_START_COMMAND
    if not command:
        return LocalComfyUIState(configured=False)
    try:
        local_comfyui = import_module("blogimages.local_comfyui")
    except ImportError as exc:
        return LocalComfyUIState(
            configured=True,
            command=command,
            error=_("Starting a local ComfyUI is not available in this installation (%(exc)s).") % {"exc": exc},
        )
    try:
        state = local_comfyui.status()
    except Exception as exc:  # noqa: BLE001 - report why instead of failing the report
        return LocalComfyUIState(
            configured=True, available=True, command=command, error=f"{exc.__class__.__name__}: {exc}"
        )
    details = {name: getattr(state, name) for name in ("pid", "started_at", "workdir", "log_path")}
    return LocalComfyUIState(
        configured=True,
        available=True,
        command=command,
        running=state.running,
        summary=state.detail,
        details={name: value for name, value in details.items() if value},
    )


# --- cost --------------------------------------------------------------------------------------------


def spend(month: datetime.date | None = None) -> dict[str, Any]:
    """The month's spend (this one by default) by provider, model, user and post, its total,
    the images without a price, and the budgets with what is left (:mod:`blogimages.costs`)."""
    from . import costs

    if month is None:
        return costs.spend_summary()
    _first, start, end = costs.month_of(timezone.make_aware(datetime.datetime(month.year, month.month, 1)))
    return costs.spend_summary(costs.spend_rows(start, end), budgets=False)
