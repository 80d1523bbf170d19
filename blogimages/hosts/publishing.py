"""Publishing an approved result into a CMS's own image library, once: what the CMS
integrations share (``blogimages.contrib.wagtail``, ``blogimages.contrib.djangocms``).

An integration keeps a *link model*: one row per published result, with a unique
``result`` column and an ``image`` foreign key to the CMS's image whose deletion cascades
to the link. The functions here lock the result, make the image and its link at most once,
and apply the integration's ``ON_UNAPPROVE`` setting; making the image itself (a Wagtail
image, a django-filer image) stays with the integration. Nothing of a CMS is imported here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import transaction

from .. import provenance
from ..models import ImageGenerationResult, SectionReview
from ..storage import get_storage
from ..text import plain_text


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, an ellipsis marking the cut."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def image_title(review: SectionReview, post_title: str, limit: int) -> str:
    """ "<section> – <post>", plain text, for the CMS image's title or name."""
    section = plain_text(review.section_title) or f"Section {review.section_key}"
    post_title = plain_text(post_title)
    return clip(f"{section} – {post_title}" if post_title else section, limit)


def alt_text(review: SectionReview, result: ImageGenerationResult, limit: int) -> str:
    """The alt text the editor confirmed (never markup); a generated image's prompt is no
    description, so without one the CMS image gets none (the review page asks first)."""
    text = plain_text(review.alt_text)
    return clip(" ".join(text.split()), limit)


def read_image(result: ImageGenerationResult) -> bytes:
    """The result's image file, through blogimages' storage API (S3 has no ``.path``),
    without metadata: files stored before blogimages stripped it get no further with it
    (stripping a stripped file changes nothing). An AI-made image's copy is marked again
    (``provenance.finish``): the mark says what the row and today's settings say, whatever
    the stored file carried."""
    with get_storage().open(result.image.name, "rb") as source:
        return provenance.finish(source.read(), provenance.for_result(result))


def linked_image(result: ImageGenerationResult, link_model: Any) -> Any:
    """The CMS image published for ``result`` (through ``link_model``), or None."""
    link = link_model.objects.select_related("image").filter(result_id=result.pk).first()
    return link.image if link is not None else None


def publish_once(
    result: ImageGenerationResult,
    link_model: Any,
    make_image: Callable[[ImageGenerationResult], Any],
    link_fields: dict[str, Any],
) -> tuple[Any, bool]:
    """``(image, created)``: the CMS image linked to ``result``, made by
    ``make_image(locked result)`` and linked (with ``link_fields``) on first call;
    ``(None, False)`` if the result is no longer approved (a later approval won; its own
    hook publishes that one)."""
    with transaction.atomic():
        # Lock the result row: two hooks for the same approval (a double click that both
        # requests committed, a retried job) take turns, and the second finds the link.
        locked = ImageGenerationResult.objects.select_for_update().filter(pk=result.pk).first()
        if locked is None or not locked.is_approved:
            return None, False
        link = link_model.objects.select_related("image").filter(result_id=result.pk).first()
        if link is not None:
            return link.image, False
        image = make_image(locked)
        # get_or_create although the lock makes a duplicate unlikely: on databases without
        # row locks the unique result column is what keeps one image per result.
        link, created = link_model.objects.get_or_create(result_id=result.pk, defaults={"image": image, **link_fields})
        if not created:
            image.delete()
            return link.image, False
    return image, True


def retire(result: ImageGenerationResult, link_model: Any, on_unapprove: str) -> Any:
    """Apply an ``ON_UNAPPROVE`` setting (``"keep"`` or ``"delete"``) to the CMS image of a
    result that is no longer approved; the primary key of the deleted image, else ``None``."""
    if on_unapprove != "delete":
        return None
    with transaction.atomic():
        locked = ImageGenerationResult.objects.select_for_update().filter(pk=result.pk).first()
        if locked is not None and locked.is_approved:
            return None  # approved again before this hook ran
        link = link_model.objects.select_related("image").filter(result_id=result.pk).first()
        if link is None:
            return None
        image_id = link.image_id
        # Deleting the image deletes the link (CASCADE); the CMS removes the file.
        link.image.delete()
    return image_id
