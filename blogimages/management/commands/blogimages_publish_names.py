"""``manage.py blogimages_publish_names``: give approved images their readable names.

For images approved before blogimages published readable names, and for approvals whose
publishing failed (the storage was down): each is copied to
``<BLOGIMAGES_KEY_PREFIX>/published/<post>-<section>.<ext>`` (``blogimages.naming``), with
its renditions. Safe to rerun: a published image keeps its name.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError

from blogimages import naming
from blogimages.chunks import keyset
from blogimages.exceptions import BlogImagesError
from blogimages.management.base import EXIT_FAILED, BlogImagesCommand
from blogimages.models import ImageGenerationResult, SectionReview


class Command(BlogImagesCommand):
    help = (
        "Publish every approved image that has no readable file name yet (approved before names were "
        "published, or its publishing failed) under <post>-<section>.<ext>, renditions included. "
        "Exit status: 0 done, 1 some failed, 2 bad arguments."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="List what would be published; change nothing.")

    def handle(self, *args: Any, dry_run: bool = False, **options: Any) -> None:
        approved = SectionReview.objects.exclude(approved_result=None).values("approved_result_id")
        pending = ImageGenerationResult.objects.filter(pk__in=approved).exclude(image="")
        # Published, but renditions made before the name was given still have random keys.
        renamed = pending.exclude(published_image="").exclude(renditions={})
        pending = pending.filter(published_image="")
        done = failed = 0
        for result in keyset(pending.select_related("review")):
            if dry_run:
                self.stdout.write(f"  result #{result.pk}: would be published as {naming.slug_for(result)}")
                done += 1
                continue
            try:
                name = naming.publish(result)
            except BlogImagesError as exc:
                failed += 1
                self.stderr.write(f"  result #{result.pk}: {exc}")
                continue
            self.stdout.write(f"  result #{result.pk}: {name}")
            done += 1
        if not dry_run:
            for result in keyset(renamed):
                try:
                    naming.publish_renditions(result)
                except BlogImagesError as exc:
                    failed += 1
                    self.stderr.write(f"  renditions of result #{result.pk}: {exc}")
        verb = "would be published" if dry_run else "published"
        summary = f"{done} approved image(s) {verb} under readable names"
        if failed:
            self.stdout.write(self.style.WARNING(f"{summary}; {failed} failed (see above)."))
            raise CommandError(f"{failed} image(s) could not be published.", returncode=EXIT_FAILED)
        self.stdout.write(self.style.SUCCESS(f"{summary}."))
