"""Public rendering helpers: only approved images ever reach a blog page."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from .models import ResultStatus, ReviewStatus, SectionReview

logger = logging.getLogger("blogimages.rendering")


@dataclass(frozen=True)
class ApprovedImage:
    url: str
    width: int | None
    height: int | None
    alt: str
    result_id: int


def _approved(review: SectionReview) -> ApprovedImage | None:
    result = review.approved_result
    if result is None or review.status != ReviewStatus.APPROVED or result.status != ResultStatus.SUCCEEDED:
        return None
    if not result.image:
        logger.warning("Approved result #%s of section %s has no file", result.pk, review.section_id)
        return None
    try:
        url = result.image.url
    except Exception:  # noqa: BLE001 - a storage hiccup must not break the page
        logger.exception("No URL for approved result #%s", result.pk)
        return None
    alt = review.alt_text or result.prompt
    return ApprovedImage(url=url, width=result.width, height=result.height, alt=alt, result_id=result.pk)


def approved_images_for_post(post) -> dict[int, ApprovedImage]:
    """``{section_id: ApprovedImage}`` for a post, in one query whatever its length."""
    reviews = SectionReview.objects.filter(post=post, status=ReviewStatus.APPROVED).select_related(
        "approved_result"
    )
    images = {}
    for review in reviews:
        image = _approved(review)
        if image is not None:
            images[review.section_id] = image
    return images


def approved_image_for_section(section) -> ApprovedImage | None:
    review = (
        SectionReview.objects.filter(section=section, status=ReviewStatus.APPROVED)
        .select_related("approved_result")
        .first()
    )
    return _approved(review) if review else None
