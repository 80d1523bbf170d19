"""``manage.py blogimages_requeue``: send lost and transiently failed results to the queue again."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.utils import timezone

from blogimages import services
from blogimages.chunks import keyset
from blogimages.conf import app_settings
from blogimages.costs import BudgetExceeded
from blogimages.exceptions import ConcurrentTransition, InvalidTransition
from blogimages.management.base import BlogImagesCommand
from blogimages.models import ErrorKind, ImageGenerationResult, ResultStatus, ReviewStatus, SectionReview


class Command(BlogImagesCommand):
    help = (
        "Re-queue results that are stuck in queued or running with no live RQ job (the worker died, Redis was "
        "flushed or restarted) and results that failed with a transient error (timeouts, a server that was "
        "down); a transient failure already re-queued BLOGIMAGES_MAX_REQUEUES times is failed for good instead. "
        "Also sweeps running results whose worker stopped sending heartbeats. Prints every result it skips, "
        "and why. Safe to rerun: a job that is still alive in Redis is left alone. Exit status: 0 done, "
        "1 Redis cannot be reached or some results could not be queued, 2 bad arguments."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="List what would be re-queued; change nothing.")
        parser.add_argument(
            "--older-than",
            type=float,
            default=60.0,
            metavar="SECONDS",
            help="Leave running results whose worker reported less than this long ago alone: the worker may "
            f"still be on it (default 60). Queued results are recovered at once, except one queued in the last "
            f"{services.JUST_QUEUED:g} s (or --older-than, if less) whose job is not in Redis yet: its enqueue "
            "may be on its way.",
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
        older_than = max(0.0, options["older_than"])
        stale_cutoff = now - timezone.timedelta(seconds=app_settings.STUCK_AFTER)
        if dry_run:
            swept = [r.pk for r in ImageGenerationResult.objects.stale(stale_cutoff)]
        else:
            swept = services.sweep_stuck(now)
        for pk in swept:
            self.stdout.write(f"  #{pk}  running without a heartbeat for {app_settings.STUCK_AFTER} s: swept")

        candidates: list[tuple[ImageGenerationResult, str]] = []
        skipped: list[tuple[ImageGenerationResult, str]] = []
        for result, lost, reason in services.examine_active(connection, older_than=older_than, exclude=swept):
            if not lost and reason.startswith("running, its worker reported"):
                reason += " (--older-than)"
            (candidates if lost else skipped).append((result, reason))
        if not options["skip_failed"]:
            failed = ImageGenerationResult.objects.filter(status=ResultStatus.FAILED, error_kind=ErrorKind.TRANSIENT)
            approved_sections = SectionReview.objects.filter(status=ReviewStatus.APPROVED)
            # A section that got its image meanwhile does not need the retry.
            failed = failed.exclude(review__in=approved_sections)
            for result in keyset(failed):
                candidates.append((result, f"failed with a transient error: {result.error_message[:80]}"))

        requeued: list[ImageGenerationResult] = []
        given_up: list[ImageGenerationResult] = []
        for result, reason in candidates:
            retry = result.status == ResultStatus.FAILED
            if retry and services.requeue_limit_reached(result):
                reason += f" (re-queued {result.enqueue_count - 1} time(s), BLOGIMAGES_MAX_REQUEUES)"
                verb = "would fail for good" if dry_run else "failed for good"
                bucket = given_up
            else:
                verb = "would re-queue" if dry_run else "re-queued"
                bucket = requeued
            if not dry_run:
                try:
                    if retry:
                        services.retry_transient_failure(result)
                    else:
                        services.recover_lost(result)
                except (InvalidTransition, ConcurrentTransition) as exc:
                    skipped.append((result, f"changed meanwhile: {exc}"))
                    continue
                except BudgetExceeded as exc:
                    skipped.append((result, str(exc)))
                    continue
            bucket.append(result)
            self.stdout.write(f"  #{result.pk}  {reason}: {verb}")
        for result, reason in skipped:
            self.stdout.write(f"  #{result.pk}  {reason}: skipped")

        errors = [] if dry_run else services.queue_errors(requeued)
        summary = (
            f"{'Would re-queue' if dry_run else 'Re-queued'} {len(requeued)} result(s); "
            f"skipped {len(skipped)}; {'would fail' if dry_run else 'failed'} {len(given_up)} for good; "
            f"{'would sweep' if dry_run else 'swept'} {len(swept)} without a heartbeat."
        )
        self.stdout.write(self.style.SUCCESS(summary) if not errors else self.style.WARNING(summary))
        if dry_run:
            self.stdout.write(self.style.NOTICE("Dry run: nothing was changed."))
        if errors:
            raise CommandError(f"Some results could not be queued: {errors[0]}", returncode=1)
