"""``manage.py blogimages_status``: providers' health, the job queue, and results by status."""

from __future__ import annotations

import json
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Count
from django.utils import timezone

from blogimages.conf import app_settings
from blogimages.models import ErrorKind, ImageGenerationResult, ResultStatus
from blogimages.providers import providers


class Command(BaseCommand):
    help = (
        "Show each provider's health (ComfyUI servers reachable, OpenAI configured, ...), the job queue "
        "(waiting, running and failed jobs, workers) and how many results are in each status. --format json "
        "prints one JSON object for scripts. Exit status: 0 every provider healthy and the queue reachable, "
        "1 a provider is unhealthy or Redis cannot be reached, 2 bad arguments or configuration."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--format", choices=("text", "json"), default="text", help="Output format (default text).")

    def handle(self, *args: Any, **options: Any) -> None:
        report = {"providers": self._providers(), "queue": self._queue(), "results": self._results()}
        report["ok"] = all(p["ok"] for p in report["providers"]) and report["queue"]["ok"]
        if options["format"] == "json":
            self.stdout.write(json.dumps(report, default=str))
        else:
            self._print(report)
        if not report["ok"]:
            problems = [f"provider {p['alias']!r}" for p in report["providers"] if not p["ok"]]
            if not report["queue"]["ok"]:
                problems.append("the job queue")
            raise CommandError(f"Not healthy: {', '.join(problems)}.", returncode=1)

    def _providers(self) -> list[dict[str, Any]]:
        rows = []
        for alias in providers.aliases:
            row: dict[str, Any] = {"alias": alias, "label": "", "ok": False, "detail": "", "info": {}, "seconds": None}
            started = time.monotonic()
            try:
                provider = providers[alias]
                row["label"] = provider.label
                health = provider.health()
                row.update(ok=bool(health.ok), detail=health.detail, info=health.info)
            except Exception as exc:  # noqa: BLE001 - one broken provider must not hide the others
                row["detail"] = f"{exc.__class__.__name__}: {exc}"
            row["seconds"] = round(time.monotonic() - started, 3)
            row["default"] = alias == app_settings.DEFAULT_PROVIDER
            rows.append(row)
        return rows

    def _queue(self) -> dict[str, Any]:
        import django_rq
        from redis.exceptions import RedisError
        from rq import Worker
        from rq.registry import DeferredJobRegistry, FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry

        name = app_settings.QUEUE
        info: dict[str, Any] = {"name": name, "ok": False}
        try:
            queue = django_rq.get_queue(name)
        except KeyError:
            raise CommandError(
                f"BLOGIMAGES_QUEUE is {name!r}, which RQ_QUEUES does not define.", returncode=2
            ) from None
        try:
            info.update(
                queued=len(queue),
                running=len(StartedJobRegistry(queue=queue)),
                failed=len(FailedJobRegistry(queue=queue)),
                deferred=len(DeferredJobRegistry(queue=queue)),
                scheduled=len(ScheduledJobRegistry(queue=queue)),
                workers=Worker.count(queue=queue),
                ok=True,
            )
        except (RedisError, OSError) as exc:
            info["error"] = f"Cannot reach Redis: {exc.__class__.__name__}: {exc}"
        return info

    def _results(self) -> dict[str, Any]:
        counts = dict.fromkeys(ResultStatus.values, 0)
        for row in ImageGenerationResult.objects.values("status").annotate(n=Count("pk")).order_by():
            counts[row["status"]] = row["n"]
        cutoff = timezone.now() - timezone.timedelta(seconds=app_settings.STUCK_AFTER)
        return {
            "by_status": counts,
            "stuck": ImageGenerationResult.objects.stale(cutoff).count(),
            "failed_transient": ImageGenerationResult.objects.filter(
                status=ResultStatus.FAILED, error_kind=ErrorKind.TRANSIENT
            ).count(),
        }

    def _print(self, report: dict[str, Any]) -> None:
        write, style = self.stdout.write, self.style
        write(style.MIGRATE_HEADING("Providers"))
        for p in report["providers"]:
            mark = style.SUCCESS("ok  ") if p["ok"] else style.ERROR("DOWN")
            default = " (default)" if p["default"] else ""
            write(f"  {mark}  {p['alias']}{default}  {p['label']}: {p['detail']}  [{p['seconds']:.2f} s]")
        if not report["providers"]:
            write(style.WARNING("  none configured (BLOGIMAGES_PROVIDERS is empty)"))
        q = report["queue"]
        write(style.MIGRATE_HEADING(f"Queue {q['name']!r}"))
        if q["ok"]:
            write(
                f"  {q['queued']} waiting, {q['running']} running, {q['failed']} failed jobs, "
                f"{q['deferred']} deferred, {q['scheduled']} scheduled; {q['workers']} worker(s)"
            )
            if not q["workers"]:
                write(style.WARNING("  No worker is listening: start one with manage.py rqworker " + q["name"]))
        else:
            write(style.ERROR(f"  {q['error']}"))
        r = report["results"]
        write(style.MIGRATE_HEADING("Results"))
        write("  " + ", ".join(f"{n} {status}" for status, n in r["by_status"].items()))
        if r["stuck"]:
            write(style.WARNING(f"  {r['stuck']} running without a heartbeat: manage.py blogimages_requeue"))
        if r["failed_transient"]:
            write(f"  {r['failed_transient']} failed with a transient error (blogimages_requeue retries them)")
