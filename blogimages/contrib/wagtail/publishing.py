"""The publish hook's work: an approved result becomes a Wagtail image, once.

Called by :class:`~blogimages.contrib.wagtail.adapter.WagtailPageAdapter` after the
approval committed, in a request or in a worker. Every step is idempotent, so a hook
that runs twice (a retry, two approvals racing) leaves one image and one inserted block.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from django.core.files.base import ContentFile
from django.db import transaction
from wagtail.images import get_image_model
from wagtail.models import Collection, Page

from ... import naming
from ...hosts import publishing as core
from ...models import ImageGenerationResult, ResultSource, SectionReview
from .conf import AI_TAG, PageConfig, wagtail_settings
from .models import PublishedImage
from .streams import place_image_block, remove_image_block, stream_of

logger = logging.getLogger("blogimages.wagtail")

TITLE_MAX = 255
DESCRIPTION_MAX = 255


def find_collection() -> Collection | None:
    """The configured collection if it exists (looked up by name, the shallowest first)."""
    return Collection.objects.filter(name=wagtail_settings.COLLECTION).order_by("depth", "path").first()


def get_collection() -> Collection:
    """The configured collection, created under the root collection when missing."""
    collection = find_collection()
    if collection is not None:
        return collection
    with transaction.atomic():
        # Lock the root so two first approvals cannot both create the collection
        # (collection names are not unique in Wagtail).
        root = Collection.objects.select_for_update().get(pk=Collection.get_first_root_node().pk)
        collection = find_collection()
        if collection is None:
            collection = root.add_child(name=wagtail_settings.COLLECTION)
    return collection


def image_title(review: SectionReview, page: Any) -> str:
    return core.image_title(review, getattr(page, "title", "") if page is not None else "", TITLE_MAX)


def image_description(review: SectionReview, result: ImageGenerationResult) -> str:
    """Alt text: the editor's, else the prompt of a generated image (never markup)."""
    return core.alt_text(review, result, DESCRIPTION_MAX)


def publish(review: SectionReview, result: ImageGenerationResult, *, page: Any = None, user: Any = None):
    """The Wagtail image of ``result``, made on first call; ``None`` if the result is no
    longer approved (a later approval won; its own hook publishes that one)."""
    image, created = core.publish_once(
        result,
        PublishedImage,
        lambda locked: _make_image(review, locked, page=page, user=user),
        {"page_id": getattr(page, "pk", None), "section_key": review.section_key},
    )
    if created:
        logger.info("Result #%s published as Wagtail image #%s", result.pk, image.pk)
    return image


def _make_image(review: SectionReview, result: ImageGenerationResult, *, page: Any, user: Any):
    # Into the image model's own storage.
    data = core.read_image(result)
    if user is None or not getattr(user, "is_authenticated", False):
        user = result.requested_by
    image_model = get_image_model()
    image = image_model(
        title=image_title(review, page),
        description=image_description(review, result),
        collection=get_collection(),
        uploaded_by_user=user,
        file_size=len(data),
        # Wagtail's own hash (wagtail.utils.file.hash_filelike) is SHA-1 of the bytes; it
        # finds duplicates on upload with it.
        file_hash=hashlib.sha1(data).hexdigest(),  # noqa: S324 - not for security
    )
    # The readable name public pages use (blogimages.naming), never one the storage holds.
    field = image.file.field
    filename = naming.free_name(
        field.storage, naming.host_filename(result, data), lambda name: field.generate_filename(image, name)
    )
    image.file.save(filename, ContentFile(data), save=False)
    # Assigning the file resets the dimension fields; the result measured the image already.
    image.width, image.height = result.width, result.height
    image.save()
    if result.source == ResultSource.GENERATED:
        image.tags.add(AI_TAG)
    return image


def update_alt_text(review: SectionReview, result: ImageGenerationResult) -> bool:
    """Copy the section's alt text into ``result``'s Wagtail image, if it has one."""
    image = core.linked_image(result, PublishedImage)
    if image is None:
        return False
    image.description = image_description(review, result)
    image.save(update_fields=["description"])
    return True


def retire(result: ImageGenerationResult) -> bool:
    """Apply ``BLOGIMAGES_WAGTAIL_ON_UNAPPROVE`` to the Wagtail image of a result that is no
    longer approved; ``True`` if the image was deleted (Wagtail removes the file and its
    renditions after commit)."""
    image_id = core.retire(result, PublishedImage, wagtail_settings.ON_UNAPPROVE)
    if image_id is None:
        return False
    logger.info("Deleted Wagtail image #%s of result #%s (BLOGIMAGES_WAGTAIL_ON_UNAPPROVE)", image_id, result.pk)
    return True


def update_draft(page: Any, config: PageConfig, section_key: str, image: Any, *, user: Any = None):
    """Put ``image`` (or, if ``None``, no image) after the section in a new draft revision.

    Never publishes. Returns the new revision, or ``None`` when nothing changed, the
    section is not in the latest revision, or another user holds the page's lock.
    """
    if not config.image_block:
        return None
    with transaction.atomic():
        # Lock the page: two sections approved at once would both build on the same
        # latest revision, and the second revision would drop the first one's block.
        Page.objects.select_for_update().filter(pk=page.pk).first()
        page = Page.objects.get(pk=page.pk).specific
        if page.locked and page.locked_by_id != getattr(user, "pk", None):
            logger.warning("Page #%s is locked; the image block for section %s was not placed", page.pk, section_key)
            return None
        draft = page.get_latest_revision_as_object()
        stream = stream_of(draft, config)
        if stream is None:
            return None
        if image is not None:
            changed = place_image_block(stream, config, section_key, image)
        else:
            changed = remove_image_block(stream, section_key)
        if not changed:
            return None
        # clean=False as Wagtail's own "save draft": a draft may be incomplete.
        return draft.save_revision(user=user, log_action=True, clean=False)
