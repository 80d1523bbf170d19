"""RQ job functions. They take primary keys, re-read the row, and save with update_fields."""

from __future__ import annotations

import logging
import time

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
    def __init__(self, result: ImageGenerationResult):
        super().__init__()
        self.result = result
        self._last_write = 0.0
        self._last_check = 0.0
        self._cancelled = False

    def progress(self, percent: float, message: str = "") -> None:
        now = time.monotonic()
        if now - self._last_write < PROGRESS_EVERY and percent < 100:
            return
        self._last_write = now
        ImageGenerationResult.objects.filter(pk=self.result.pk, status=ResultStatus.RUNNING).update(
            progress=max(0, min(99, int(percent))), progress_message=short(message, 200), heartbeat_at=timezone.now()
        )

    def cancelled(self) -> bool:
        now = time.monotonic()
        if self._cancelled or now - self._last_check < CANCEL_CHECK_EVERY:
            return self._cancelled
        self._last_check = now
        # Checking is also the heartbeat: a provider that polls for cancel is alive.
        updated = ImageGenerationResult.objects.filter(pk=self.result.pk, status=ResultStatus.RUNNING).update(
            heartbeat_at=timezone.now()
        )
        self._cancelled = not updated
        return self._cancelled

    def remote_id(self, remote_id: str, server: str = "") -> None:
        ImageGenerationResult.objects.filter(pk=self.result.pk).update(
            remote_id=remote_id[:200], remote_server=server[:300]
        )
        self.result.remote_id, self.result.remote_server = remote_id, server


def run_generation(result_id: int) -> str:
    """Generate the image for one result. Safe to run twice: only one run can start it."""
    if not connection.in_atomic_block:  # inside a test transaction there is nothing to recycle
        close_old_connections()
    _sweep_if_due()
    result = ImageGenerationResult.objects.filter(pk=result_id).first()
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

    alias = result.provider
    reporter = _RowReporter(result)
    try:
        provider = providers[alias]
    except Exception as exc:  # noqa: BLE001 - a provider removed from settings after queueing
        _fail(result, f"Provider {alias!r} is not available: {exc}", ErrorKind.PERMANENT)
        return "failed"
    request = request_from_snapshot(result.final_prompt, result.params, seed=result.seed, result_id=result.pk)

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
                ImageGenerationResult.objects.filter(pk=result.pk).update(
                    attempts=F("attempts") + 1,
                    progress_message=short(f"retrying: {exc}", 200),
                    heartbeat_at=timezone.now(),
                )
                result.attempts += 1
                time.sleep(min(delay, 60))
                continue
            kind = ErrorKind.TRANSIENT if exc.transient else ErrorKind.PERMANENT
            _fail(result, str(exc), kind)
            return "failed"
        except Exception as exc:  # noqa: BLE001 - anything unexpected becomes a readable failure
            logger.exception("Result #%s: unexpected error from %s", result.pk, alias)
            _fail(
                result, f"Unexpected error in provider {alias!r}: {exc.__class__.__name__}: {exc}", ErrorKind.PERMANENT
            )
            return "failed"

    from .services import store_output

    meta = dict(image.metadata)
    if adjustments:
        meta["adjustments"] = adjustments
    try:
        store_output(
            result,
            image.content,
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


def _fail(result: ImageGenerationResult, message: str, kind: str) -> None:
    try:
        # The progress line ("retrying: ...") is cleared: the error message says what happened.
        result.move(
            "fail", error_message=message[:2000], error_kind=kind, progress_message="", finished_at=timezone.now()
        )
    except ConcurrentTransition:
        logger.info("Result #%s changed before it could be marked failed", result.pk)


def _sweep_if_due() -> None:
    from rq import get_current_job

    from .services import sweep_stuck_if_due

    job = get_current_job()
    if job is None:
        return
    try:
        swept = sweep_stuck_if_due(job.connection)
    except Exception:  # noqa: BLE001 - a failed sweep must not cost this job its image
        logger.exception("Sweeping stuck results failed")
        return
    if swept:
        logger.warning("Re-queued stuck result(s) %s: their worker stopped reporting", swept)


def sweep_stuck_results() -> list[int]:
    from .services import sweep_stuck

    return sweep_stuck()
