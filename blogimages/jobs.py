"""RQ job functions. They take primary keys, re-read the row, and save with update_fields."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace

from django.db import close_old_connections, connection
from django.db.models import F
from django.utils import timezone

from .conf import app_settings
from .contract import ProgressReporter
from .exceptions import (
    ConcurrentTransition,
    GenerationCancelled,
    PermanentProviderError,
    ProviderError,
    StorageUnavailable,
)
from .models import ErrorKind, ImageGenerationResult, ResultStatus
from .prompts import request_from_snapshot
from .providers import providers

logger = logging.getLogger("blogimages.jobs")

# Writes of progress and heartbeat are throttled: a sampler can report 50 steps a second.
PROGRESS_EVERY = 0.25
CANCEL_CHECK_EVERY = 0.5
PREVIEW_EVERY = 0.5  # seconds between two partial images kept for the card
#: Seconds between two heartbeats of a running job, whatever its provider is doing; well
#: under BLOGIMAGES_STUCK_AFTER, so only a dead worker looks stuck.
HEARTBEAT_EVERY = 10.0
#: A retry due sooner than this waits in the job: RQ's scheduler works in whole seconds.
SCHEDULE_RETRIES_FROM = 1.0


def short(text: object, limit: int) -> str:
    """``text`` on one line in at most ``limit`` characters, cut between words with an ellipsis.

    ``remote.clip`` cuts at the limit, mid-word or mid-URL; a progress line is better
    one word shorter. A single word longer than ``limit`` is the one thing cut inside.
    """
    text = " ".join(str(text).split())
    if len(text) <= limit:
        return text
    head = text[: limit - 1]
    if text[limit - 1] != " " and " " in head:
        head = head.rsplit(" ", 1)[0]
    return head.rstrip(" ,;:") + "\u2026"


class _RowReporter(ProgressReporter):
    """Reports to the job's result rows: one, or each candidate of a batch (running ones)."""

    def __init__(self, result: ImageGenerationResult, *others: ImageGenerationResult):
        super().__init__()
        self.result = result
        self.results = [result, *others]
        self.ids = [row.pk for row in self.results]
        # Built once: a job writes through these several times, and building the filter
        # was about half the CPU of each of those small UPDATEs (update() leaves them as they are).
        self._rows = ImageGenerationResult.objects.filter(pk__in=self.ids)
        self._running = self._rows.filter(status=ResultStatus.RUNNING)
        self._last_write = 0.0
        self._last_check = 0.0
        self._cancelled = False

    def progress(self, percent: float, message: str = "") -> None:
        self._flush_preview()
        now = time.monotonic()
        if now - self._last_write < PROGRESS_EVERY and percent < 100:
            return
        self._last_write = now
        self._running.update(
            progress=max(0, min(99, int(percent))), progress_message=short(message, 200), heartbeat_at=timezone.now()
        )

    def cancelled(self) -> bool:
        now = time.monotonic()
        if self._cancelled or now - self._last_check < CANCEL_CHECK_EVERY:
            return self._cancelled
        self._last_check = now
        # Checking is also the heartbeat: a provider that polls for cancel is alive. A batch
        # is cancelled once none of its candidates is running any more.
        updated = self._running.update(heartbeat_at=timezone.now())
        self._cancelled = not updated
        return self._cancelled

    def remote_id(self, remote_id: str, server: str = "") -> None:
        self._rows.update(remote_id=remote_id[:200], remote_server=server[:300])
        for row in self.results:
            row.remote_id, row.remote_server = remote_id, server

    def seed(self, seed: int) -> None:
        # A batch shares one seed; each candidate's batch index picks its noise.
        self._rows.update(seed=seed)
        for row in self.results:
            row.seed = seed

    def preview(self, content: bytes) -> None:
        # The newest partial image, small, in Redis for the card (blogimages.refining). A
        # sampler's previews may come every step: at most one is written every PREVIEW_EVERY,
        # a newer one waiting for the next progress report.
        self._pending_preview = content
        self._flush_preview()

    def _flush_preview(self) -> None:
        content = getattr(self, "_pending_preview", None)
        now = time.monotonic()
        if content is None or now - getattr(self, "_last_preview", -PREVIEW_EVERY) < PREVIEW_EVERY:
            return
        self._pending_preview, self._last_preview = None, now
        from .refining import store_preview

        store_preview(self.ids, content)


class _Heartbeat(threading.Thread):
    """Writes the running result's heartbeat every ``HEARTBEAT_EVERY`` seconds.

    Providers heartbeat when they report progress or check for cancel, but one blocked in
    a long call would look dead; this thread dies with the work-horse, so a silent row
    means a dead worker and the sweep can act after ``BLOGIMAGES_STUCK_AFTER`` seconds.
    """

    def __init__(self, result_id: int, *others: int):
        super().__init__(name=f"blogimages-heartbeat-{result_id}", daemon=True)
        self.result_id = result_id
        self.ids = [result_id, *others]
        self.stopped = threading.Event()

    def run(self) -> None:
        from django.db import connections

        try:
            while not self.stopped.wait(HEARTBEAT_EVERY):
                try:
                    ImageGenerationResult.objects.filter(pk__in=self.ids, status=ResultStatus.RUNNING).update(
                        heartbeat_at=timezone.now()
                    )
                except Exception:  # noqa: BLE001 - a missed beat is retried; the job goes on
                    logger.warning("Heartbeat for result #%s failed", self.result_id, exc_info=True)
        finally:
            connections.close_all()  # this thread's own connections

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=5)


def run_generation(result_id: int) -> str:
    """Generate the image for one result. Safe to run twice: only one run can start it."""
    if connection.in_atomic_block:
        # Inside a test's transaction (SimpleWorker in the test process): nothing to
        # recycle, and a second connection could neither see the row nor write beside it.
        return _run_generation(result_id, heartbeat=False)
    close_old_connections()
    return _run_generation(result_id, heartbeat=True)


def run_generation_batch(result_ids: list[int]) -> str:
    """Generate several candidates of one request as one batch (one prompt, one model pass,
    ``batch_size`` N): each result is started, filled from its batch index and finished on
    its own. Candidates no longer queued (cancelled meanwhile) are left out."""
    if connection.in_atomic_block:
        return _run_generation(list(result_ids), heartbeat=False)
    close_old_connections()
    return _run_generation(list(result_ids), heartbeat=True)


def _start(result_id: int, result: ImageGenerationResult | None) -> str | None:
    """Move a queued result to running; what was done instead if it could not be started."""
    if result is None:
        logger.warning("Result #%s no longer exists; nothing to do", result_id)
        return "missing"
    if result.status != ResultStatus.QUEUED:
        # A second enqueue of the same result, or a job for a cancelled one.
        logger.info("Result #%s is %s; skipping", result_id, result.status)
        return f"skipped ({result.status})"
    now = timezone.now()
    try:
        result.move(
            "start",
            started_at=now,
            heartbeat_at=now,
            progress=0,
            progress_message="",
            attempts=F("attempts") + 1,
        )
    except ConcurrentTransition:
        return "skipped (taken by another worker)"
    result.refresh_from_db(fields=["attempts"])
    return None


def _run_generation(result_ids: int | list[int], *, heartbeat: bool) -> str:
    _sweep_if_due()
    ids = [result_ids] if isinstance(result_ids, int) else result_ids
    # order_by(): a dict by pk needs no ORDER BY; the model's default ordering made every
    # job's first query compile and sort for nothing (about a third of its CPU).
    rows = ImageGenerationResult.objects.order_by().in_bulk(ids)
    started, skipped = [], []
    for result_id in ids:
        outcome = _start(result_id, rows.get(result_id))
        if outcome is None:
            started.append(rows[result_id])
        else:
            skipped.append(f"#{result_id} {outcome}")
    if not started:
        return skipped[0].split(" ", 1)[1] if isinstance(result_ids, int) else "; ".join(skipped)
    beat = _Heartbeat(*[row.pk for row in started]) if heartbeat else None
    if beat:
        beat.start()
    try:
        outcome = _generate_and_store(started, reporter=_RowReporter(*started))
    finally:
        if beat:
            beat.stop()
    # The one place a worker finishes results: announce requests with nothing left to do.
    from .notifications import results_finished

    results_finished(started)
    return outcome if isinstance(result_ids, int) else "; ".join([*skipped, outcome])


def batch_index(result: ImageGenerationResult) -> int:
    """The result's place in its batch (0 where it was not made in one)."""
    return int(result.params.get("batch_index") or 0)


def _generate_and_store(results: list[ImageGenerationResult], reporter: _RowReporter) -> str:
    """Run the provider once for ``results`` (one, or the candidates of a batch) and store
    each one's image. A batch is asked for with ``batch_size`` = the highest batch index + 1,
    so candidate i of seed S is image i of that batch: run alone (re-queued, swept, "same
    seed") it is a batch of i + 1 whose last image is kept, the image its batch made (the
    noise of batch index i depends only on the seed and i; the arithmetic of a GPU may
    differ in the last bits between batch sizes)."""
    result = results[0]
    alias = result.provider
    try:
        provider = providers[alias]
    except Exception as exc:  # noqa: BLE001 - a provider removed from settings after queueing
        _fail_all(results, f"Provider {alias!r} is not available: {exc}", ErrorKind.PERMANENT)
        return "failed"
    request = request_from_snapshot(result.final_prompt, result.params, seed=result.seed, result_id=result.pk)
    try:
        # A refine, variation, upscale or reference: the parent's image and the mask as stored now.
        from .refining import edit_request

        request = edit_request(result, request)
    except ProviderError as exc:
        _fail_all(results, str(exc), ErrorKind.TRANSIENT if exc.transient else ErrorKind.PERMANENT)
        return "failed"
    indexes = {row.pk: batch_index(row) for row in results}
    if len(results) == 1 and result.seed is None:
        indexes = {result.pk: 0}  # no seed was ever sent: no image i to make again, one is enough
    size = max(indexes.values()) + 1
    batched = size > 1 or len(results) > 1
    if size > 1:
        request = replace(request, extra={**request.extra, "batch_size": size})

    while True:
        try:
            prepared, adjustments = provider.prepare(request)
            image = provider.generate(prepared, reporter)
            break
        except GenerationCancelled:
            logger.info("Result #%s was cancelled while generating", result.pk)
            return "cancelled"
        except ProviderError as exc:
            if exc.transient and result.attempts < app_settings.MAX_ATTEMPTS and not reporter.cancelled():
                delay = (
                    exc.retry_after
                    if exc.retry_after is not None
                    else (app_settings.RETRY_BACKOFF * 2 ** (result.attempts - 1))
                )
                logger.warning("Result #%s attempt %s: %s; retrying in %.1fs", result.pk, result.attempts, exc, delay)
                if delay >= SCHEDULE_RETRIES_FROM and _schedule_retry(results, exc, delay):
                    return "retry scheduled"
                ImageGenerationResult.objects.filter(pk__in=[row.pk for row in results]).update(
                    attempts=F("attempts") + 1,
                    progress_message=short(f"retrying: {exc}", 200),
                    heartbeat_at=timezone.now(),
                )
                for row in results:
                    row.attempts += 1
                time.sleep(min(delay, 60))
                continue
            kind = ErrorKind.TRANSIENT if exc.transient else ErrorKind.PERMANENT
            _fail_all(results, str(exc), kind)
            return "failed"
        except Exception as exc:  # noqa: BLE001 - anything unexpected becomes a readable failure
            logger.exception("Result #%s: unexpected error from %s", result.pk, alias)
            _fail_all(
                results,
                f"Unexpected error in provider {alias!r}: {exc.__class__.__name__}: {exc}",
                ErrorKind.PERMANENT,
            )
            return "failed"

    meta = dict(image.metadata)
    # What prepare() changed, then what the provider learned it had to change while it ran
    # (e.g. a model retired since the request was made), each once.
    adjustments = list(dict.fromkeys([*adjustments, *meta.get("adjustments", [])]))
    if adjustments:
        meta["adjustments"] = adjustments
    if not batched:
        return _store(result, image.content, image, meta)
    images, names = image.batch or [image.content], meta.pop("outputs", None) or []
    if len(images) < size:
        _fail_all(
            results,
            f"Provider {alias!r} made {len(images)} image(s) for a batch of {size}; "
            "its workflow must map batch_size to make candidates in one pass.",
            ErrorKind.PERMANENT,
        )
        return "failed"
    outcomes = {}
    for row in results:
        index = indexes[row.pk]
        own = {**meta, "batch_index": index, "batch_size": size}
        if index < len(names):
            own["output"] = names[index]
        outcomes[row.pk] = _store(row, images[index], image, own)
    if len(results) == 1:
        return outcomes[result.pk]
    return "; ".join(f"#{pk} {outcome}" for pk, outcome in outcomes.items())


def _store(result: ImageGenerationResult, content: bytes, image, meta: dict) -> str:
    """Store one finished image for ``result``: "succeeded", "cancelled" or "failed"."""
    from .services import store_output

    alias = result.provider
    try:
        store_output(
            result,
            content,
            fields={
                "provider_used": image.provider or alias,
                "seed": image.seed if image.seed is not None else result.seed,
                "model": image.model or result.model,
                "provider_meta": meta,
                **({"remote_id": image.remote_id[:200]} if image.remote_id else {}),
                **({"remote_server": image.remote_server[:300]} if image.remote_server else {}),
            },
        )
    except ConcurrentTransition:
        logger.info("Result #%s changed while storing (cancelled); image discarded", result.pk)
        return "cancelled"
    except PermanentProviderError as exc:
        _fail(result, str(exc), ErrorKind.PERMANENT)
        return "failed"
    except StorageUnavailable as exc:
        # Nothing was stored and the row was not touched (stored_image cleans up); the
        # result fails as transient, so an editor can re-queue it once storage is back.
        logger.warning("Result #%s: %s", result.pk, exc)
        _fail(result, str(exc), ErrorKind.TRANSIENT)
        return "failed"
    except Exception as exc:  # noqa: BLE001 - never leave the row running with no message
        logger.exception("Result #%s: unexpected error while storing the image", result.pk)
        _fail(result, f"Unexpected error while storing the image: {exc.__class__.__name__}: {exc}", ErrorKind.PERMANENT)
        return "failed"
    return "succeeded"


def _schedule_retry(results: list[ImageGenerationResult], exc: ProviderError, delay: float) -> bool:
    """Put the results (one, or a batch's still running candidates) back in the queue with
    their next attempt scheduled ``delay`` seconds from now on RQ's scheduler, so this
    worker takes other work meanwhile. False where there is no scheduler to hand it to (no
    RQ job, or RQ's synchronous mode): the job then waits itself."""
    from rq import get_current_job

    from .services import enqueue_retry

    job = get_current_job()
    if job is None or not job.origin:
        return False
    from rq import Queue

    if not Queue(job.origin, connection=job.connection).is_async:
        return False
    attempt = results[0].attempts + 1
    message = short(f"retry {attempt} of {app_settings.MAX_ATTEMPTS} in {delay:.0f} s: {exc}", 200)
    retried = []
    for result in results:
        try:
            result.move("retry", progress=0, progress_message=message, queued_at=timezone.now())
        except ConcurrentTransition:  # cancelled meanwhile: nothing to retry
            continue
        retried.append(result)
    if retried:
        enqueue_retry(retried[0], delay, batch=retried if len(results) > 1 else ())
    return True


def _fail_all(results: list[ImageGenerationResult], message: str, kind: str) -> None:
    """Fail each result (a batch's candidates fail together, with the same sentence)."""
    for result in results:
        _fail(result, message, kind)


def _fail(result: ImageGenerationResult, message: str, kind: str) -> None:
    try:
        # The progress line ("retrying: ...") is cleared: the error message says what happened.
        result.move(
            "fail", error_message=message[:2000], error_kind=kind, progress_message="", finished_at=timezone.now()
        )
    except ConcurrentTransition:
        logger.info("Result #%s changed before it could be marked failed", result.pk)


def _sweep_if_due() -> None:
    """A worker picking up a job runs the recovery round if none ran for RECOVER_EVERY
    seconds, so a busy queue recovers even where no scheduler process runs."""
    from rq import get_current_job

    job = get_current_job()
    if job is not None:
        _recover(job.connection)


def recover_results() -> str:
    """The recovery round as a job of its own: ``blogimages.cron`` enqueues it every
    RECOVER_EVERY seconds (``manage.py rqcron blogimages.cron``), so an idle system
    recovers too. See ``services.recover``."""
    from rq import get_current_job

    job = get_current_job()
    if job is None:
        import django_rq

        return _recover(django_rq.get_connection(app_settings.QUEUE))
    return _recover(job.connection)


def _recover(redis) -> str:
    from .services import recover_if_due

    try:
        recovery = recover_if_due(redis)
    except Exception:  # noqa: BLE001 - a failed round must not cost a job its image
        logger.exception("Recovering stuck and lost results failed")
        return "failed"
    if recovery is None:
        return "not due"
    if recovery.swept:
        logger.warning("Re-queued stuck result(s) %s: their worker stopped reporting", recovery.swept)
    if recovery.recovered:
        logger.warning("Re-queued result(s) %s: their job was lost", recovery.recovered)
    return f"swept {len(recovery.swept)}, recovered {len(recovery.recovered)}"
