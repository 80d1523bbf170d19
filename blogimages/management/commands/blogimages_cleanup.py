"""``manage.py blogimages_cleanup``: stored files no result references, and results whose file is gone.

Only the storage API is used (listdir, exists, get_modified_time, delete), never local
paths, so it works the same on the filesystem and on S3.
"""

from __future__ import annotations

from typing import Any, Iterator

from django.core.files.storage import Storage
from django.core.management.base import CommandError, CommandParser
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from blogimages import services
from blogimages.chunks import keyset
from blogimages.conf import app_settings
from blogimages.exceptions import BlogImagesError
from blogimages.management.base import BlogImagesCommand
from blogimages.models import ImageGenerationResult, SectionReview
from blogimages.storage import get_storage, rendition_names


class Command(BlogImagesCommand):
    help = (
        "Find stored files under BLOGIMAGES_KEY_PREFIX that no result references (image, thumbnail or "
        "rendition), and results whose stored image is gone. A dry run by default: it only lists them. "
        "--delete removes the orphan files and the results whose image is gone (an approved image is never "
        "deleted: it is reported for an editor), and clears references to missing thumbnails and renditions. "
        "Exit status: 0 done, 1 some deletions failed, 2 bad arguments."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument("--dry-run", action="store_true", help="Only list what would be removed (the default).")
        mode.add_argument("--delete", action="store_true", help="Remove the orphan files and broken results.")
        parser.add_argument(
            "--removed-sections",
            action="store_true",
            help="Instead of files: sections removed from their posts (or whose post was deleted). Their "
            "reviews, history and images stay until this runs with --delete.",
        )
        parser.add_argument(
            "--min-age",
            type=float,
            default=3600.0,
            metavar="SECONDS",
            help="Leave orphan files younger than this alone: a worker may be about to save the result that "
            "references them (default 3600).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        delete = options["delete"]
        if options["removed_sections"]:
            return self._removed_sections(delete)
        if options["min_age"] < 0:
            raise CommandError("--min-age cannot be negative.", returncode=2)
        storage = get_storage()
        prefix = app_settings.KEY_PREFIX.strip("/")
        if not prefix:
            raise CommandError(
                "BLOGIMAGES_KEY_PREFIX is empty; refusing to treat the whole storage as blogimages' own.",
                returncode=2,
            )
        # List first, then read the database: a file saved after the listing is not in
        # it, and a file listed before its row committed is protected by --min-age.
        listed = set(_walk(storage, prefix))
        referenced: set[str] = set()
        rows = ImageGenerationResult.objects.values_list(
            "pk", "image", "thumbnail", "mask", "published_image", "renditions"
        )
        for _pk, image, thumbnail, mask, published, renditions in keyset(rows, size=500):
            referenced.update(n for n in (image, thumbnail, mask, published, *rendition_names(renditions)) if n)

        cutoff = timezone.now() - timezone.timedelta(seconds=options["min_age"])
        orphans, young = [], 0
        for name in sorted(listed - referenced):
            if options["min_age"] and not _older_than(storage, name, cutoff):
                young += 1
                continue
            orphans.append(name)

        broken, dangling, needs_editor = self._missing(storage, listed)
        failures = 0
        for name in orphans:
            self.stdout.write(f"  orphan file {name}" + (": deleted" if delete else ""))
            if delete:
                failures += not _delete(storage, name, self.stderr)
        for result in broken:
            done = ": deleted" if delete else ""
            self.stdout.write(f"  result #{result.pk}: image {result.image.name} is gone{done}")
            if delete:
                failures += not self._delete_result(storage, result)
        for result, names in dangling:
            self.stdout.write(
                f"  result #{result.pk}: {', '.join(names)} gone" + (": reference cleared" if delete else "")
            )
            if delete:
                _clear_references(result, set(names))
        for result in needs_editor:
            self.stdout.write(
                self.style.WARNING(
                    f"  result #{result.pk} is an approved image and its file {result.image.name} is gone: an editor "
                    "must approve or upload another image for its section"
                )
            )

        summary = (
            f"{len(orphans)} orphan file(s), {len(broken)} result(s) whose image is gone, {len(dangling)} with a "
            f"missing thumbnail or rendition, {len(needs_editor)} approved image(s) missing"
        )
        if young:
            summary += f"; {young} unreferenced file(s) younger than {options['min_age']:g} s left alone"
        if delete:
            self.stdout.write(
                self.style.SUCCESS(f"Cleaned up: {summary}.")
                if not failures
                else self.style.WARNING(f"{summary}; {failures} could not be deleted.")
            )
        else:
            self.stdout.write(f"{summary}.")
            if orphans or broken or dangling:
                self.stdout.write(self.style.NOTICE("Dry run: nothing was deleted; run with --delete to remove them."))
        if failures:
            raise CommandError(f"{failures} deletion(s) failed; see the messages above.", returncode=1)

    def _removed_sections(self, delete: bool) -> None:
        found = images = 0
        for review in services.reviews_of_removed_sections():
            found += 1
            label = (
                f"  section {review.section_title or review.section_key!r} of {review.post_type.name} {review.post_id}"
            )
            if not delete:
                self.stdout.write(f"{label}: {review.results.count()} image(s), {review.events.count()} event(s)")
                continue
            try:
                images += services.delete_removed_section(review)
            except BlogImagesError as exc:
                self.stdout.write(self.style.WARNING(f"{label}: kept ({exc})"))
                found -= 1
                continue
            self.stdout.write(f"{label}: deleted")
        if delete:
            self.stdout.write(
                self.style.SUCCESS(f"Deleted {found} removed section(s) with their history and {images} image(s).")
            )
        else:
            self.stdout.write(f"{found} section(s) removed from their posts still have history here.")
            if found:
                self.stdout.write(self.style.NOTICE("Dry run: nothing was deleted; run with --delete to remove them."))

    def _missing(self, storage: Storage, listed: set[str]):
        """Results whose image is gone, results with a dangling thumbnail/rendition, approved ones gone."""
        approved_ids = set(
            SectionReview.objects.exclude(approved_result=None).values_list("approved_result_id", flat=True)
        )
        broken, dangling, needs_editor = [], [], []
        rows = ImageGenerationResult.objects.filter(~Q(image="") | ~Q(thumbnail=""))
        for result in keyset(rows):

            def gone(name: str) -> bool:
                # The listing is the cheap answer; exists() is the sure one for names outside
                # it (an older KEY_PREFIX, or a file saved after the listing).
                return bool(name) and name not in listed and not storage.exists(name)

            if result.image and gone(result.image.name):
                if result.pk in approved_ids:
                    needs_editor.append(result)
                else:
                    broken.append(result)
                continue
            names = [n for n in (result.thumbnail.name, *rendition_names(result.renditions)) if n and gone(n)]
            if names:
                dangling.append((result, names))
        return broken, dangling, needs_editor

    def _delete_result(self, storage: Storage, result: ImageGenerationResult) -> bool:
        others = [n for n in (result.thumbnail.name, result.published_image, *rendition_names(result.renditions)) if n]
        with transaction.atomic():
            # Re-check under the transaction: an editor may have approved it meanwhile.
            current = ImageGenerationResult.objects.select_for_update().filter(pk=result.pk).first()
            if current is None or SectionReview.objects.filter(approved_result=current).exists():
                return True
            current.delete()
        # Its thumbnail and renditions would otherwise become orphans of their own.
        return all(_delete(storage, name, self.stderr) for name in others if storage.exists(name))


def _walk(storage: Storage, folder: str) -> Iterator[str]:
    try:
        dirs, files = storage.listdir(folder)
    except FileNotFoundError:
        return
    for name in files:
        yield f"{folder}/{name}"
    for sub in dirs:
        yield from _walk(storage, f"{folder}/{sub}")


def _older_than(storage: Storage, name: str, cutoff) -> bool:
    try:
        modified = storage.get_modified_time(name)
    except (NotImplementedError, OSError):
        return False  # age unknown: keep it rather than race a worker
    if timezone.is_naive(modified):
        modified = timezone.make_aware(modified, timezone.get_default_timezone())
    return modified < cutoff


def _delete(storage: Storage, name: str, err) -> bool:
    try:
        storage.delete(name)
    except Exception as exc:  # noqa: BLE001 - report and go on with the others
        err.write(f"Could not delete {name}: {exc.__class__.__name__}: {exc}")
        return False
    return True


def _clear_references(result: ImageGenerationResult, missing: set[str]) -> None:
    fields: dict[str, Any] = {"updated_at": timezone.now()}
    if result.thumbnail.name in missing:
        fields["thumbnail"] = ""
    if isinstance(result.renditions, dict):
        kept = {k: v for k, v in result.renditions.items() if not (set(rendition_names(v)) & missing)}
        if kept != result.renditions:
            fields["renditions"] = kept
    ImageGenerationResult.objects.filter(pk=result.pk).update(**fields)
