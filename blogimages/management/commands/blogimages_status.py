"""``manage.py blogimages_status``: providers' health, the job queue, and results by status."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from django.core.management.base import CommandError, CommandParser

from blogimages import status
from blogimages.conf import app_settings
from blogimages.management.base import BlogImagesCommand


class Command(BlogImagesCommand):
    help = (
        "Show each provider's health (ComfyUI servers reachable, OpenAI configured, ...), the job queue "
        "(waiting, running and failed jobs, workers) and how many results are in each status. --format json "
        "prints one JSON object for scripts. Exit status: 0 every provider healthy and the queue reachable, "
        "1 a provider is unhealthy or Redis cannot be reached, 2 bad arguments or configuration."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--format", choices=("text", "json"), default="text", help="Output format (default text).")

    def handle(self, *args: Any, **options: Any) -> None:
        queue = status.queue_status(only_ours=True).ours
        if queue is None:
            raise CommandError(
                f"BLOGIMAGES_QUEUE is {app_settings.QUEUE!r}, which RQ_QUEUES does not define.", returncode=2
            )
        report = {
            "providers": [asdict(row) for row in status.provider_health()],
            "queue": self._queue(queue),
            "results": asdict(status.result_counts()),
        }
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

    def _queue(self, queue: status.QueueStatus) -> dict[str, Any]:
        if not queue.ok:
            return {"name": queue.name, "ok": False, "error": f"Cannot reach Redis: {queue.error}"}
        return {
            "name": queue.name,
            "ok": True,
            "queued": queue.jobs,
            "running": queue.started,
            "failed": queue.failed,
            "deferred": queue.deferred,
            "scheduled": queue.scheduled,
            "workers": len(queue.workers),
            "scheduler": queue.scheduler,
            "last_recovery": queue.last_recovery.isoformat() if queue.last_recovery else None,
            "warnings": queue.recovery_warnings,
        }

    def _print(self, report: dict[str, Any]) -> None:
        write, style = self.stdout.write, self.style
        write(style.MIGRATE_HEADING("Providers"))
        for p in report["providers"]:
            mark = style.SUCCESS("ok  ") if p["ok"] else style.ERROR("DOWN")
            default = " (default)" if p["default"] else ""
            took = f"{p['seconds']:.2f} s" if p["seconds"] is not None else "not checked"
            write(f"  {mark}  {p['alias']}{default}  {p['label']}: {p['detail']}  [{took}]")
            for warning in p.get("warnings") or ():
                write(style.WARNING(f"        ! {warning}"))
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
            for warning in q["warnings"]:
                write(style.WARNING(f"  {warning}"))
        else:
            write(style.ERROR(f"  {q['error']}"))
        r = report["results"]
        write(style.MIGRATE_HEADING("Results"))
        write("  " + ", ".join(f"{n} {status}" for status, n in r["by_status"].items()))
        if r["stuck"]:
            write(style.WARNING(f"  {r['stuck']} running without a heartbeat: manage.py blogimages_requeue"))
        if r["failed_transient"]:
            write(f"  {r['failed_transient']} failed with a transient error (blogimages_requeue retries them)")
