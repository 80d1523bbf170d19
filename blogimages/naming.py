"""Readable file names for approved images: ``cornish-coast-st-michaels-mount.webp``.

Candidates are stored under random keys (``blogimages/images/2026/05/<uuid>.png``) that
nobody can guess: an image nobody approved is never found by name. When an image is
approved, :func:`publish` copies it (and its renditions) to a name made from the post's
and the section's titles, under ``<BLOGIMAGES_KEY_PREFIX>/published/``; public pages
serve that copy (``blogimages.rendering``), the review page keeps the random key.

Names are unique and a published file is never overwritten:

- the slug is claimed in the database first (``ImageGenerationResult.published_slug`` is
  unique), in the same transaction that writes the file, so two sections with the same
  titles published at once cannot both take it: the second one's claim waits for the
  first and then fails, and it tries ``-2``, ``-3``...;
- the storage is asked whether the name is free before writing (a file blogimages does
  not know of), and is never asked to write a taken name, whatever its
  ``file_overwrite`` says (S3 overwrites by default);
- renditions are named ``<slug>-<width>w.webp``; a slug never ends in ``-<digits>w``
  itself, so a rendition's name cannot be another image's.

A replaced or withdrawn approval keeps its published file, under its own name, for as
long as the result exists: pages cached elsewhere and search engines do not get a 404,
and the new approval gets a new name (``-2``) rather than a different picture under an
old one. Re-approving it serves the same name again. The files go with the result
(``blogimages_cleanup --removed-sections``, a result whose original is gone).
"""

from __future__ import annotations

import io
import logging
import re
import unicodedata
from collections.abc import Iterator

from django.db import IntegrityError, transaction
from django.utils.text import slugify
from PIL import Image

from . import provenance
from .conf import app_settings
from .exceptions import BlogImagesError, InvalidTransition
from .models import ImageGenerationResult, ResultStatus, SectionReview
from .storage import delete_quietly, get_storage, save_as
from .text import plain_text

logger = logging.getLogger("blogimages.naming")

#: Longest slug made from the titles (the -2, -3... suffix comes on top).
SLUG_MAX = 80
#: The section's share when both titles are long: the post's title may take the rest.
SECTION_MAX = 40
#: How many numbered names are tried before giving up (a runaway, not a real case).
MAX_TRIES = 1000

FORMATS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp", "GIF": "gif"}

# Letters NFKD does not split into an ASCII letter and an accent.
_FOLD = str.maketrans(
    {
        "ß": "ss",
        "ẞ": "SS",
        "æ": "ae",
        "Æ": "AE",
        "ø": "o",
        "Ø": "O",
        "œ": "oe",
        "Œ": "OE",
        "ł": "l",
        "Ł": "L",
        "đ": "d",
        "Đ": "D",
        "ð": "d",
        "Ð": "D",
        "þ": "th",
        "Þ": "TH",
        "ı": "i",
    }
)
# A slug that already looks like a rendition's name ("...-640w"): never used bare.
_RENDITION_LIKE = re.compile(r"-\d+w$")


class NameUnavailable(BlogImagesError):
    """No readable name could be claimed for an image (after :data:`MAX_TRIES` names)."""


def folder() -> str:
    return f"{app_settings.KEY_PREFIX.strip('/')}/published"


def is_published_name(name: str) -> bool:
    return name.startswith(folder() + "/")


def fold(text: str) -> str:
    """``text`` in ASCII: accents dropped (``é`` → ``e``), ``ß`` → ``ss``, what has no
    ASCII form (other scripts, symbols) left out."""
    decomposed = unicodedata.normalize("NFKD", str(text or "").translate(_FOLD))
    return decomposed.encode("ascii", "ignore").decode("ascii")


def slug(text: str, limit: int = SLUG_MAX) -> str:
    """A lowercase ASCII slug of ``text``, at most ``limit`` characters, cut between words."""
    # An apostrophe joins ("St Michael's" → "st-michaels"); other punctuation separates.
    value = slugify(re.sub(r"['’`]", "", fold(plain_text(text))).replace("_", "-"), allow_unicode=False)
    value = re.sub(r"-{2,}", "-", value).strip("-")
    if len(value) <= limit:
        return value
    cut = value[: limit + 1]
    return (cut.rsplit("-", 1)[0] if "-" in cut else value[:limit]).strip("-")


def readable_slug(post_title: str, section_title: str, section_key: str = "") -> str:
    """``<post>-<section>`` from the titles (the section key where the section has no usable
    title), at most :data:`SLUG_MAX` characters; ``image`` when nothing readable is left."""
    section = slug(section_title, SECTION_MAX) or slug(section_key, SECTION_MAX)
    post = slug(post_title, SLUG_MAX - len(section) - 1 if section else SLUG_MAX)
    return "-".join(part for part in (post, section) if part) or "image"


def candidates(base: str) -> Iterator[str]:
    """``base``, ``base-2``, ``base-3``... (not ``base`` itself when it looks like a rendition)."""
    if not _RENDITION_LIKE.search(base):
        yield base
    for number in range(2, MAX_TRIES + 1):
        yield f"{base}-{number}"


def extension(data: bytes) -> str:
    """The file extension of the image's real format (not of its stored name)."""
    with Image.open(io.BytesIO(data)) as image:
        found = FORMATS.get(image.format or "")
    if found is None:
        raise InvalidTransition("The image is not a PNG, JPEG, WebP or GIF file; it cannot be published.")
    return found


def rendition_name(published_slug: str, width: int | str) -> str:
    return f"{folder()}/{published_slug}-{int(width)}w.webp"


def post_title(review: SectionReview) -> str:
    """The post's title as the host adapter gives it; blank if the post is gone."""
    from .hosts import get_host

    host = get_host()
    post = host.get_post(review.post_type, review.post_id)
    return host.post_title(post) if post is not None else ""


def slug_for(result: ImageGenerationResult) -> str:
    """The readable slug ``result`` would be published under, before numbering."""
    review = result.review
    return readable_slug(post_title(review), review.section_title, review.section_key)


def host_filename(result: ImageGenerationResult, data: bytes) -> str:
    """The file name a CMS's copy of ``result`` gets (a Wagtail image, a filer file): the
    basename of its published name, unique among blogimages' published images; where it was
    not published (the storage failed at approval), the readable slug it would get."""
    if result.published_image:
        return result.published_image.rsplit("/", 1)[-1]
    return f"{slug_for(result)}.{extension(data)}"


def free_name(storage, name: str, generate=lambda name: name) -> str:
    """``name`` or ``name-2``, ``-3``... (before the extension): the first whose stored path
    (``generate(name)``, e.g. a FileField's ``upload_to``) ``storage`` does not hold, so a
    CMS storage that overwrites is never asked to replace a file."""
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    for number in range(1, MAX_TRIES + 1):
        candidate = stem if number == 1 else f"{stem}-{number}"
        candidate = f"{candidate}.{ext}" if ext else candidate
        if not storage.exists(generate(candidate)):
            return candidate
    raise NameUnavailable(f"No free file name like {name} after {MAX_TRIES} tries.")


def _read(name: str) -> bytes:
    with get_storage().open(name, "rb") as handle:
        return handle.read()


def publish(result: ImageGenerationResult) -> str:
    """Publish an approved result under its readable name; returns the storage name.

    Idempotent: a result published before keeps its name (its renditions are renamed if
    they were made under random keys first). Raises :class:`InvalidTransition` for a
    result that is not its section's approved, finished image, and
    :class:`~blogimages.exceptions.StorageUnavailable` when the storage fails (nothing is
    claimed then: the next try starts again).
    """
    result = ImageGenerationResult.objects.select_related("review").get(pk=result.pk)
    if result.published_image:
        publish_renditions(result)
        return result.published_image
    if result.review_id is None or result.status != ResultStatus.SUCCEEDED or not result.image:
        raise InvalidTransition(f"Result #{result.pk} has no finished image of a section to publish.")
    if not SectionReview.objects.filter(approved_result=result).exists():
        raise InvalidTransition(f"Result #{result.pk} is not approved; only approved images are published.")
    data = _read(result.image.name)
    ext = extension(data)
    # Published files say how the image was made, as stored ones do (blogimages.provenance).
    mark = provenance.for_result(result)
    base = slug_for(result)
    taken = set(
        ImageGenerationResult.objects.filter(published_slug__startswith=base).values_list("published_slug", flat=True)
    )
    for candidate in candidates(base):
        if candidate in taken:
            continue
        name = f"{folder()}/{candidate}.{ext}"
        written = False
        try:
            with transaction.atomic():
                # The claim: unique in the database. A concurrent claim of the same slug
                # waits here for this transaction, so the file below is written by one
                # process only, and exists before anyone can read the name.
                claimed = ImageGenerationResult.objects.filter(pk=result.pk, published_slug__isnull=True).update(
                    published_slug=candidate, published_image=name
                )
                if not claimed:  # a concurrent publish of this same result won
                    break
                written = save_as(name, data, provenance=mark)
                if not written:
                    raise _Taken
        except (IntegrityError, _Taken):
            taken.add(candidate)
            continue
        except BaseException:
            if written:  # the claim did not commit: the file must not outlive it
                delete_quietly(name)
            raise
        logger.info("Published result #%s as %s", result.pk, name)
        result.published_slug, result.published_image = candidate, name
        publish_renditions(result)
        return name
    else:
        raise NameUnavailable(f"No free readable name for result #{result.pk} after {MAX_TRIES} tries ({base}).")
    result.refresh_from_db(fields=["published_slug", "published_image", "renditions"])
    publish_renditions(result)
    return result.published_image


class _Taken(Exception):
    """The storage has a file under the name the database let us claim."""


def publish_renditions(result: ImageGenerationResult) -> dict[str, str]:
    """Copy renditions made under random keys (before the result was published) to
    readable names, record them and delete the old copies; returns ``{width: name}``.

    A readable name someone else's file holds already is left alone (the random-key
    rendition stays in use), and so is a concurrent change of the renditions.
    """
    existing = dict(result.renditions or {})
    if not result.published_slug:
        return existing
    pending = {w: n for w, n in existing.items() if isinstance(n, str) and n and not is_published_name(n)}
    if not pending:
        return existing
    made: dict[str, str] = {}
    mark = provenance.for_result(result)
    try:
        for width, old in pending.items():
            name = rendition_name(result.published_slug, width)
            if save_as(name, _read(old), provenance=mark, derived=True):
                made[width] = name
            else:
                logger.warning("%s is taken; rendition %s of result #%s keeps its key", name, width, result.pk)
        combined = {**existing, **made}
        won = bool(made) and ImageGenerationResult.objects.filter(pk=result.pk, renditions=existing).update(
            renditions=combined
        )
    except BaseException:
        for name in made.values():
            delete_quietly(name)
        raise
    if not won:
        for name in made.values():
            delete_quietly(name)
        return existing
    replaced = [pending[width] for width in made]
    transaction.on_commit(lambda: [delete_quietly(name) for name in replaced])
    result.renditions = combined
    return combined
