"""Publish approved images that have no Wagtail image yet (the hook failed, or the
integration was installed after the approvals). Safe to rerun: the hook is idempotent."""

from __future__ import annotations

from django.contrib.contenttypes.models import ContentType

from blogimages.chunks import keyset
from blogimages.hosts import get_host
from blogimages.management.base import BlogImagesCommand
from blogimages.models import SectionReview

from ...adapter import WagtailPageAdapter
from ...models import PublishedImage


class Command(BlogImagesCommand):
    help = "Make the Wagtail image of every approved result that lacks one."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="List what would be published; change nothing.")

    def handle(self, *args, dry_run: bool = False, **options):
        host = get_host()
        if not isinstance(host, WagtailPageAdapter):
            self.stdout.write(self.style.WARNING("BLOGIMAGES_HOST_ADAPTER is not the Wagtail adapter; nothing to do."))
            return
        page_types = ContentType.objects.get_for_models(*host.page_models()).values()
        published = PublishedImage.objects.values("result_id")
        reviews = (
            SectionReview.objects.with_approved_image()
            .filter(post_type__in=page_types)
            .exclude(approved_result_id__in=published)
            .order_by("pk")
        )
        done = failed = 0
        for review in keyset(reviews):
            if dry_run:
                self.stdout.write(f"Would publish result #{review.approved_result_id} ({review})")
                done += 1
                continue
            try:
                host.image_approved(review, review.approved_result)
            except Exception as exc:  # noqa: BLE001 - one bad row must not stop the run
                failed += 1
                self.stderr.write(f"Result #{review.approved_result_id}: {exc}")
                continue
            done += 1
        verb = "would be published" if dry_run else "published"
        self.stdout.write(self.style.SUCCESS(f"{done} image(s) {verb}."))
        if failed:
            self.stdout.write(self.style.WARNING(f"{failed} failed; see above."))
