"""``manage.py blogimages_status``: providers' health, the job queue, and results by status."""

from __future__ import annotations

import datetime
import json
from dataclasses import asdict
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.utils import timezone

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
        parser.add_argument(
            "--spend-csv",
            action="store_true",
            help="Print only the month's spend as CSV (provider, model, user, post, images, cost) and exit.",
        )
        parser.add_argument(
            "--month", metavar="YYYY-MM", help="With --spend-csv: that month's spend instead of this month's."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["spend_csv"]:
            self.stdout.write(self._spend_csv(options["month"]), ending="")
            return
        if options["month"]:
            raise CommandError("--month goes with --spend-csv.", returncode=2)
        queue = status.queue_status(only_ours=True).ours
        if queue is None:
            raise CommandError(
                f"BLOGIMAGES_QUEUE is {app_settings.QUEUE!r}, which RQ_QUEUES does not define.", returncode=2
            )
        report = {
            "providers": [asdict(row) for row in status.provider_health()],
            "queue": self._queue(queue),
            "results": asdict(status.result_counts()),
            "spend": self._spend(status.spend()),
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

    def _spend_csv(self, month: str | None) -> str:
        from blogimages import costs

        if not month:
            return costs.spend_csv()
        try:
            first = datetime.datetime.strptime(month, "%Y-%m")
        except ValueError:
            raise CommandError(f"--month takes YYYY-MM, not {month!r}.", returncode=2) from None
        _day, start, end = costs.month_of(timezone.make_aware(first))
        return costs.spend_csv(costs.spend_rows(start, end))

    def _spend(self, spend: dict[str, Any]) -> dict[str, Any]:
        """The month's spend with amounts as strings (JSON has no decimals)."""
        return {
            **spend,
            "total": str(spend["total"]),
            "by": {dim: [{**row, "cost": str(row["cost"])} for row in rows] for dim, rows in spend["by"].items()},
            "budgets": [budget.as_dict() for budget in spend["budgets"]],
        }

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
            # Live workers only: RQ lists a killed worker (as idle) until its key expires.
            "workers": sum(1 for w in queue.workers if not w.dead),
            "dead_workers": sum(1 for w in queue.workers if w.dead),
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
                + (f", {q['dead_workers']} dead" if q["dead_workers"] else "")
            )
            if not q["workers"]:
                dead = f" ({q['dead_workers']} dead worker(s) still listed)" if q["dead_workers"] else ""
                write(style.WARNING(f"  No worker is listening{dead}: start one with manage.py rqworker " + q["name"]))
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
        self._print_spend(report["spend"])

    def _print_spend(self, spend: dict[str, Any]) -> None:
        from decimal import Decimal

        from blogimages.costs import money

        write, style = self.stdout.write, self.style
        write(style.MIGRATE_HEADING(f"Spend {spend['month']}"))
        write(f"  {money(Decimal(spend['total']))} for {spend['images']} image(s)")
        if spend["unpriced"]:
            write(style.WARNING(f"  {spend['unpriced']} image(s) without a price: set one in BLOGIMAGES_PRICES"))
        for budget in spend["budgets"]:
            who = "site" if budget["name"] == "site" else f"user {budget['name']}"
            line = (
                f"  budget {who}: {money(Decimal(budget['spent']))} of {money(Decimal(budget['limit']))}, "
                f"{money(Decimal(budget['left']))} left"
            )
            write(style.WARNING(line) if Decimal(budget["left"]) == 0 else line)
        for dim in ("provider", "model", "user", "post"):
            rows = spend["by"][dim]
            if rows:
                write(
                    f"  by {dim}: "
                    + ", ".join(f"{r['name']} {money(Decimal(r['cost']))} ({r['images']})" for r in rows)
                )
