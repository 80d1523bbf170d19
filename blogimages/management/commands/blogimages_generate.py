"""``manage.py blogimages_generate``: queue image generation for posts or sections from the shell."""

from __future__ import annotations

import time
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import CommandError, CommandParser
from django.db import OperationalError

from blogimages import services
from blogimages.hosts import Section, get_host
from blogimages.management.base import BlogImagesCommand
from blogimages.models import (
    ACTIVE_STATUSES,
    ImageGenerationResult,
    ImagePromptExample,
    ResultStatus,
)
from blogimages.providers import providers

POLL_SECONDS = 0.5
BAR_WIDTH = 30


class Command(BlogImagesCommand):
    help = (
        "Queue image generation for whole posts (--post, by id or slug), single sections (--section), or every "
        "section that has no approved image yet (--all-missing). Jobs run on the RQ workers; --wait shows a "
        "progress bar until they finish. Exit status: 0 queued (with --wait: all succeeded), 1 some image "
        "failed, could not be queued, or --timeout passed, 2 bad arguments or configuration."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--post",
            action="append",
            default=[],
            metavar="ID_OR_SLUG",
            help="A post's id or slug: one image per section. Repeat for several posts.",
        )
        parser.add_argument(
            "--section",
            action="append",
            default=[],
            metavar="KEY",
            help="A section's key (its id where sections are rows). Repeat for several sections.",
        )
        parser.add_argument(
            "--all-missing",
            action="store_true",
            help="Only sections without an approved image and without one already queued or running; alone, "
            "it covers every post. Safe to rerun.",
        )
        parser.add_argument("--provider", metavar="ALIAS", help="A provider alias from BLOGIMAGES_PROVIDERS.")
        parser.add_argument(
            "--prompt-example",
            metavar="ID_OR_NAME",
            help="Use this prompt example (style, format, setting) instead of the post's or section's own.",
        )
        parser.add_argument("--wait", action="store_true", help="Show progress until every image is done.")
        parser.add_argument(
            "--timeout",
            type=float,
            default=900.0,
            metavar="SECONDS",
            help="With --wait: give up waiting after this long (default 900); the jobs go on.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not (options["post"] or options["section"] or options["all_missing"]):
            raise CommandError("Say what to generate: --post, --section or --all-missing.", returncode=2)
        provider = self._provider(options["provider"])
        example = self._prompt_example(options["prompt_example"])
        only_missing = options["all_missing"]
        sections = self._sections(options["post"], options["section"], only_missing)
        outcome = services.generate_for_sections(
            sections, provider=provider, prompt_example=example, only_missing=only_missing
        )
        results = outcome.results
        self._report(results, outcome.skipped)
        errors = services.queue_errors(results)
        if errors:
            raise CommandError(
                f"{errors[0]} Run manage.py blogimages_requeue once the queue is reachable.", returncode=1
            )
        if options["wait"] and results:
            self._wait([r.pk for r in results], options["timeout"])

    # --- arguments ------------------------------------------------------------------------

    def _provider(self, alias: str | None) -> str | None:
        if not alias:
            return None
        if alias not in providers:
            raise CommandError(
                f"No provider {alias!r}; BLOGIMAGES_PROVIDERS defines {', '.join(providers.aliases) or 'none'}.",
                returncode=2,
            )
        try:
            providers[alias]
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc), returncode=2) from exc
        return alias

    def _prompt_example(self, value: str | None) -> ImagePromptExample | None:
        if not value:
            return None
        lookup = {"pk": int(value)} if value.isdigit() else {"name": value}
        example = ImagePromptExample.objects.filter(**lookup).select_related("style", "image_format", "setting").first()
        if example is None:
            raise CommandError(f"No prompt example with id or name {value!r}.", returncode=2)
        return example

    def _sections(self, posts: list[str], section_keys: list[str], only_missing: bool) -> list[Section]:
        host = get_host()
        found: dict[tuple[str, str], Section] = {}

        def add(section: Section) -> None:
            found.setdefault((str(section.post.pk), section.key), section)

        for value in posts:
            post = host.find_post(value)
            if post is None:
                raise CommandError(f"No post with id or slug {value!r}.", returncode=2)
            for section in host.sections(post):
                add(section)
        missing = []
        for key in section_keys:
            section = host.find_section(str(key))
            if section is None:
                missing.append(str(key))
            else:
                add(section)
        if missing:
            raise CommandError(f"No section with id {', '.join(missing)}.", returncode=2)
        if only_missing and not posts and not section_keys:
            for post in host.posts():
                for section in host.sections(post):
                    add(section)
        return list(found.values())

    # --- output -----------------------------------------------------------------------------

    def _report(self, results: list[ImageGenerationResult], skipped: list[tuple[Any, str]]) -> None:
        for result in results:
            title = result.review.section_title if result.review_id else "-"
            self.stdout.write(f"  queued #{result.pk}  {result.provider:<12}  {title}")
        for section, reason in skipped:
            self.stdout.write(f"  skipped section {section.key} ({section.title}): {reason}")
        summary = f"Queued {len(results)} image(s), skipped {len(skipped)} section(s)."
        self.stdout.write(self.style.SUCCESS(summary) if results or not skipped else self.style.WARNING(summary))

    def _wait(self, ids: list[int], timeout: float) -> None:
        deadline = time.monotonic() + max(0.0, timeout)
        interactive = self.stdout.isatty()
        last_line = ""
        rows: list[tuple[int, str, int, str]] = []
        try:
            while True:
                try:
                    rows = list(
                        ImageGenerationResult.objects.filter(pk__in=ids).values_list(
                            "pk", "status", "progress", "error_message"
                        )
                    )
                except OperationalError:
                    pass  # SQLite "database is locked" while a worker writes: read again next tick
                line = _progress_line(rows, len(ids))
                if line != last_line:
                    self.stdout.write(("\r" + line) if interactive else line, ending="" if interactive else "\n")
                    self.stdout.flush()
                    last_line = line
                if rows and all(status not in ACTIVE_STATUSES for _, status, _, _ in rows):
                    break
                if time.monotonic() >= deadline:
                    if interactive:
                        self.stdout.write("")
                    active = sum(1 for _, status, _, _ in rows if status in ACTIVE_STATUSES)
                    raise CommandError(
                        f"Timed out after {timeout:g} s with {active} image(s) still queued or running; they go on "
                        "in the background (manage.py blogimages_status shows them).",
                        returncode=1,
                    )
                time.sleep(POLL_SECONDS)
        except KeyboardInterrupt:
            raise CommandError("Stopped waiting; the images go on in the background.", returncode=1) from None
        if interactive:
            self.stdout.write("")
        failed = [(pk, status, message) for pk, status, _, message in rows if status != ResultStatus.SUCCEEDED]
        for pk, status, message in failed:
            self.stdout.write(self.style.ERROR(f"  #{pk} {status}: {message or 'no message'}"))
        if failed:
            raise CommandError(f"{len(failed)} of {len(ids)} image(s) did not succeed.", returncode=1)
        self.stdout.write(self.style.SUCCESS(f"All {len(ids)} image(s) succeeded."))


def _progress_line(rows: list[tuple[int, str, int, str]], total: int) -> str:
    done = sum(1 for _, status, _, _ in rows if status not in ACTIVE_STATUSES)
    running = sum(1 for _, status, _, _ in rows if status == ResultStatus.RUNNING)
    failed = sum(1 for _, status, _, _ in rows if status in (ResultStatus.FAILED, ResultStatus.CANCELLED))
    percent = sum(100 if status not in ACTIVE_STATUSES else progress for _, status, progress, _ in rows) / max(total, 1)
    filled = int(BAR_WIDTH * percent / 100)
    bar = "#" * filled + "-" * (BAR_WIDTH - filled)
    return f"[{bar}] {percent:3.0f}%  {done}/{total} done, {running} running, {failed} failed"
