"""Public rendering helpers: only approved images ever reach a blog page.

:func:`approved_images_for_post` loads every approved image of a post in one query, so a
page costs the same number of queries with 2 sections or 50. Nothing here raises: a
missing file or a storage outage leaves that section without an image and logs why.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field

from django.core.cache import cache

from .conf import app_settings
from .models import ResultStatus, ReviewStatus, SectionReview
from .renditions import rendition_urls
from .storage import get_storage

logger = logging.getLogger("blogimages.rendering")

# How long "this file exists" is remembered, so a page view does not ask S3 about every
# image (a HEAD request each). Files are never overwritten (keys are unique), so a
# positive answer only goes stale if someone deletes the file by hand.
EXISTS_TTL = 3600
# A missing file is remembered briefly: the page stays cheap while someone restores it.
MISSING_TTL = 60


@dataclass(frozen=True)
class ApprovedImage:
    url: str
    width: int | None
    height: int | None
    alt: str
    result_id: int
    #: ``[(width, url)]`` for srcset, the original included; empty while renditions are pending.
    sources: tuple[tuple[int, str], ...] = ()
    #: Made by a model (not uploaded): templates may label it (``{% blogimage ... label=True %}``).
    ai_generated: bool = False

    @property
    def srcset(self) -> str:
        return ", ".join(f"{url} {width}w" for width, url in self.sources)


class SectionKeyed(dict):
    """A dict keyed by section key (text); a row's integer primary key finds its entry too."""

    def __getitem__(self, key):
        return super().__getitem__(str(key))

    def __setitem__(self, key, value):
        super().__setitem__(str(key), value)

    def __contains__(self, key):
        return super().__contains__(str(key))

    def get(self, key, default=None):
        return super().get(str(key), default)


class ApprovedImages(SectionKeyed):
    """``{section key: ApprovedImage}``, plus ``problems``: ``{section key: why it has no image}``."""

    def __init__(self) -> None:
        super().__init__()
        self.problems: SectionKeyed = SectionKeyed()


@dataclass
class _Candidate:
    review: SectionReview
    problem: str = ""
    image: ApprovedImage | None = field(default=None)


def _exists_key(name: str) -> str:
    digest = hashlib.sha256(f"{app_settings.STORAGE}:{name}".encode()).hexdigest()
    return f"blogimages:exists:{digest}"


def _missing_files(names: list[str]) -> dict[str, str]:
    """``{name: reason}`` for files that are not in storage (or cannot be checked now).

    One cache round trip for the whole page; storage is asked only about names the cache
    does not know yet.
    """
    if not names:
        return {}
    keys = {_exists_key(name): name for name in names}
    known = cache.get_many(list(keys))
    problems, to_cache = {}, {}
    storage = get_storage()
    for key, name in keys.items():
        if key in known:
            if not known[key]:
                problems[name] = f"the file {name} is missing from storage"
            continue
        try:
            exists = storage.exists(name)
        except Exception as exc:  # noqa: BLE001 - a storage outage must not break the page
            logger.exception("Could not check image %s in storage", name)
            problems[name] = f"storage could not be reached ({exc.__class__.__name__})"
            continue
        if exists:
            to_cache[key] = True
        else:
            logger.warning("Approved image file %s is missing from storage", name)
            problems[name] = f"the file {name} is missing from storage"
            cache.set(key, False, MISSING_TTL)
    if to_cache:
        cache.set_many(to_cache, EXISTS_TTL)
    return problems


def _alt_text(review: SectionReview) -> str:
    # Only the alt text an editor confirmed: a generated image's prompt, an upload's file name
    # or the section's prompt describe no image to a screen reader (the review page asks
    # before approving without alt text; an empty alt marks the image decorative).
    return review.alt_text.strip()


def public_name(result) -> str:
    """The file a public page serves: the readable copy once the approved image was
    published (``blogimages.naming``), else the stored original (publishing failed or is
    pending; ``blogimages_publish_names`` catches up)."""
    return result.published_image or result.image.name


def _build(candidates: list[_Candidate]) -> None:
    usable = []
    for candidate in candidates:
        review = candidate.review
        result = review.approved_result
        if result is None:
            candidate.problem = "the section has no approved image"
        elif result.status != ResultStatus.SUCCEEDED:
            candidate.problem = f"result #{result.pk} is {result.status}, not an approved finished image"
        elif not result.image:
            logger.warning("Approved result #%s of section %s has no file", result.pk, review.section_key)
            candidate.problem = f"result #{result.pk} has no stored file"
        else:
            usable.append(candidate)
    missing = _missing_files([public_name(c.review.approved_result) for c in usable])
    storage = get_storage()
    for candidate in usable:
        result = candidate.review.approved_result
        name = public_name(result)
        if name in missing:
            candidate.problem = f"result #{result.pk}: {missing[name]}"
            continue
        try:
            url = storage.url(name)
        except Exception as exc:  # noqa: BLE001 - a storage hiccup must not break the page
            logger.exception("No URL for approved result #%s", result.pk)
            candidate.problem = f"result #{result.pk}: no URL from storage ({exc.__class__.__name__})"
            continue
        sources: tuple[tuple[int, str], ...] = ()
        renditions = rendition_urls(result)
        if renditions and result.width:
            sources = (*renditions, (result.width, url))
        candidate.image = ApprovedImage(
            url=url,
            width=result.width,
            height=result.height,
            alt=_alt_text(candidate.review),
            result_id=result.pk,
            sources=sources,
            ai_generated=result.ai_generated,
        )


def _approved_reviews():
    return SectionReview.objects.filter(status=ReviewStatus.APPROVED, approved_result__isnull=False).select_related(
        "approved_result"
    )


def approved_images_for_post(post) -> ApprovedImages:
    """``{section key: ApprovedImage}`` for a post, in one query whatever its length."""
    candidates = [_Candidate(review) for review in _approved_reviews().for_post(post)]
    _build(candidates)
    images = ApprovedImages()
    for candidate in candidates:
        if candidate.image is not None:
            images[candidate.review.section_key] = candidate.image
        else:
            images.problems[candidate.review.section_key] = candidate.problem
    return images


def approved_image_for_section(section) -> ApprovedImage | None:
    """The approved image of one section (one query); prefer the post helper for whole pages."""
    image, _ = approved_image_or_problem(section)
    return image


def approved_image_or_problem(section) -> tuple[ApprovedImage | None, str]:
    """``section``: a :class:`blogimages.hosts.Section` or the host object behind one (a row)."""
    from .hosts import get_host, post_reference

    section = get_host().section_for(section)
    if section is None:
        return None, "not a section of this site's host adapter"
    post_type, post_id = post_reference(section.post)
    review = _approved_reviews().filter(post_type=post_type, post_id=post_id, section_key=section.key).first()
    if review is None:
        return None, ""
    candidate = _Candidate(review)
    _build([candidate])
    return candidate.image, candidate.problem
