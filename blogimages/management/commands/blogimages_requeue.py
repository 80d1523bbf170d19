"""``manage.py blogimages_requeue``: send lost and transiently failed results to the queue again."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from blogimages import services
from blogimages.conf import app_settings
from blogimages.exceptions import ConcurrentTransition, InvalidTransition
from blogimages.models import ErrorKind, ImageGenerationResult, ResultStatus, ReviewStatus, SectionReview

# RQ statuses of a job that will still run (or is running) the result.
LIVE_JOB_STATUSES = {"queued", "deferred", "scheduled", "started"}


class Command(BaseCommand):
    help = (
        "Re-queue results that are stuck in queued or running with no live RQ job (the worker died, Redis was "
        "flushed or restarted) and results that failed with a transient error (timeouts, a server that was "
        "down). Also sweeps running results whose worker stopped sending heartbeats. Safe to rerun: a job "
        "that is still alive in Redis is left alone. Exit status: 0 done, 1 Redis cannot be reached or some "
        "results could not be queued, 2 bad arguments."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="List what would be re-queued; change nothing.")
        parser.add_argument(
            "--older-than",
            type=float,
            default=60.0,
            metavar="SECONDS",
            help="Leave results queued (or last heard from) less than this long ago alone: they may be on "
            "their way to the queue right now (default 60).",
        )
        parser.add_argument(
            "--skip-failed", action="store_true", help="Only stuck results; leave transient failures alone."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        import django_rq
        from redis.exceptions import RedisError

        dry_run = options["dry_run"]
        try:
            connection = django_rq.get_connection(app_settings.QUEUE)
            connection.ping()
        except KeyError:
            raise CommandError(
                f"BLOGIMAGES_QUEUE is {app_settings.QUEUE!r}, which RQ_QUEUES does not define.", returncode=2
            ) from None
        except (RedisError, OSError) as exc:
            raise CommandError(
                f"Cannot reach Redis ({exc.__class__.__name__}: {exc}); nothing was re-queued.", returncode=1
            ) from exc

        now = timezone.now()
        cutoff = now - timezone.timedelta(seconds=max(0.0, options["older_than"]))
        stale_cutoff = now - timezone.timedelta(seconds=app_settings.STUCK_AFTER)
        if dry_run:
            swept = [r.pk for r in ImageGenerationResult.objects.stale(stale_cutoff)]
        else:
            swept = services.sweep_stuck(now)
        for pk in swept:
            self.stdout.write(f"  #{pk}  running without a heartbeat for {app_settings.STUCK_AFTER} s: swept")

        candidates: list[tuple[ImageGenerationResult, str]] = []
        active = ImageGenerationResult.objects.filter(status__in=(ResultStatus.QUEUED, ResultStatus.RUNNING))
        for result in active.exclude(pk__in=swept).order_by("pk").iterator(chunk_size=200):
            reason = _lost_reason(result, connection, cutoff)
            if reason:
                candidates.append((result, reason))
        if not options["skip_failed"]:
            failed = ImageGenerationResult.objects.filter(status=ResultStatus.FAILED, error_kind=ErrorKind.TRANSIENT)
            approved_sections = SectionReview.objects.filter(status=ReviewStatus.APPROVED)
            # A section that got its image meanwhile does not need the retry.
            failed = failed.exclude(review__in=approved_sections).order_by("pk")
            for result in failed.iterator(chunk_size=200):
                candidates.append((result, f"failed with a transient error: {result.error_message[:80]}"))

        requeued: list[ImageGenerationResult] = []
        for result, reason in candidates:
            verb = "would re-queue" if dry_run else "re-queued"
            if not dry_run:
                try:
                    services.recover_lost(result)
                except (InvalidTransition, ConcurrentTransition) as exc:
                    self.stdout.write(f"  #{result.pk}  changed meanwhile, left alone: {exc}")
                    continue
                requeued.append(result)
            self.stdout.write(f"  #{result.pk}  {reason}: {verb}")

        errors = [] if dry_run else services.queue_errors(requeued)
        count = len(candidates) if dry_run else len(requeued)
        summary = (
            f"{'Would re-queue' if dry_run else 'Re-queued'} {count} result(s); "
            f"{'would sweep' if dry_run else 'swept'} {len(swept)} without a heartbeat."
        )
        self.stdout.write(self.style.SUCCESS(summary) if not errors else self.style.WARNING(summary))
        if dry_run:
            self.stdout.write(self.style.NOTICE("Dry run: nothing was changed."))
        if errors:
            raise CommandError(f"Some results could not be queued: {errors[0]}", returncode=1)


def _lost_reason(result: ImageGenerationResult, connection: Any, cutoff: Any) -> str | None:
    """Why a queued or running result has no job that will finish it, or None if it has one."""
    from rq.exceptions import NoSuchJobError
    from rq.job import Job
    from rq.worker import Worker

    if result.status == ResultStatus.QUEUED and result.queued_at and result.queued_at > cutoff:
        return None  # just queued: its on-commit enqueue may not have run yet
    if result.status == ResultStatus.RUNNING and result.heartbeat_at and result.heartbeat_at > cutoff:
        return None  # its worker reported recently, whatever Redis says
    if not result.job_id:
        return "never reached the queue"
    try:
        job = Job.fetch(result.job_id, connection=connection)
    except NoSuchJobError:
        return "its job is gone from Redis"
    raw = job.get_status(refresh=False)
    status = str(getattr(raw, "value", raw) or "unknown")
    if status not in LIVE_JOB_STATUSES:
        return f"its job is {status} but the result is still {result.status}"
    if status == "started" and job.worker_name:
        worker_key = Worker.redis_worker_namespace_prefix + job.worker_name
        if not connection.exists(worker_key):
            return "its worker is gone"
    return None
