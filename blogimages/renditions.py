"""Resized WebP copies of an approved image, for the public page's ``srcset``.

Made once per image by an RQ job queued when the image is approved
(:func:`enqueue_on_commit`, called from ``services.approve``). Until they exist the
template tag serves the original alone, so a slow or failed job never hides an image.
"""

from __future__ import annotations

import io
import logging

from django.db import transaction
from PIL import Image

from . import provenance
from .conf import app_settings
from .models import ImageGenerationResult, ResultStatus
from .naming import rendition_name
from .storage import delete_quietly, get_storage, rendition_names, save_as, save_bytes

logger = logging.getLogger("blogimages.renditions")

WEBP_QUALITY = 82


def target_widths(original_width: int | None) -> list[int]:
    """The configured widths worth making: only those smaller than the original."""
    if not original_width:
        return []
    return sorted({int(w) for w in app_settings.RENDITION_WIDTHS if 0 < int(w) < original_width})


def _resize(image: Image.Image, width: int, icc: bytes | None = None) -> bytes:
    """A WebP copy ``width`` pixels wide. Only the ICC profile goes with it (colour, not
    provenance); ``save_bytes`` strips whatever else an encoder might add, and marks an
    AI-made image's copies as such (``blogimages.provenance``)."""
    height = max(1, round(image.height * width / image.width))
    resized = image.resize((width, height), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    resized.save(buffer, format="WEBP", quality=WEBP_QUALITY, method=4, **({"icc_profile": icc} if icc else {}))
    return buffer.getvalue()


def make_renditions(result_id: int) -> dict[str, str]:
    """Make the missing renditions of one result and record them; returns ``{width: name}``.

    Idempotent: widths already recorded are not made again. Two concurrent calls may both
    resize, but only one records its files (a conditional UPDATE on the old value); the
    loser deletes what it wrote, so no file is left without a row that names it.
    """
    result = ImageGenerationResult.objects.filter(pk=result_id).first()
    if result is None:
        logger.info("Result #%s no longer exists; no renditions to make", result_id)
        return {}
    existing = dict(result.renditions or {})
    if result.status != ResultStatus.SUCCEEDED or not result.image:
        logger.info("Result #%s has no finished image; no renditions to make", result_id)
        return existing
    wanted = [w for w in target_widths(result.width) if str(w) not in existing]
    if not wanted:
        return existing

    with get_storage().open(result.image.name, "rb") as handle:
        data = handle.read()
    written: list[str] = []
    try:
        with Image.open(io.BytesIO(data)) as source:
            source.load()
            icc = source.info.get("icc_profile")
            image = source.convert("RGBA" if source.mode in ("RGBA", "LA", "P") else "RGB")
        made = {}
        mark = provenance.for_result(result)
        for width in wanted:
            data = _resize(image, width, icc)
            if mark is not None:
                data = mark.apply(data, derived=True)
            # A published image's renditions get readable names too (blogimages.naming);
            # a name someone else's file holds already falls back to a random key.
            name = rendition_name(result.published_slug, width) if result.published_slug else ""
            if not (name and save_as(name, data)):
                name = save_bytes(data, "image/webp", kind="renditions")
            written.append(name)
            made[str(width)] = name
        combined = {**existing, **made}
        with transaction.atomic():
            # Only the call that still sees the value it started from may record; a
            # concurrent call that got there first keeps its files and we drop ours.
            won = ImageGenerationResult.objects.filter(pk=result_id, renditions=existing).update(renditions=combined)
    except BaseException:
        for name in written:
            delete_quietly(name)
        raise
    if not won:
        current = ImageGenerationResult.objects.filter(pk=result_id).values_list("renditions", flat=True).first()
        # Two calls may have written the same readable name; the winner's stays.
        kept = set(rendition_names(current))
        for name in written:
            if name not in kept:
                delete_quietly(name)
        logger.info("Renditions of result #%s were made concurrently; kept the other call's files", result_id)
        return dict(current or {})
    logger.info("Made renditions %s of result #%s", ", ".join(made), result_id)
    return combined


def enqueue(result_id: int) -> bool:
    """Queue :func:`make_renditions` on RQ. A Redis outage is logged, never raised: the
    approval stands and the page serves the original image until renditions exist."""
    import django_rq
    from redis.exceptions import RedisError

    try:
        queue = django_rq.get_queue(app_settings.QUEUE, commit_mode="auto")
        queue.enqueue_call(
            "blogimages.renditions.make_renditions",
            args=(result_id,),
            job_id=f"blogimages-renditions-{result_id}",
            timeout=300,
            result_ttl=600,
            failure_ttl=7 * 86400,
            description=f"blogimages renditions of result #{result_id}",
        )
    except RedisError as exc:
        logger.error("Could not queue renditions of result #%s (Redis: %s); serving the original alone", result_id, exc)
        return False
    return True


def enqueue_on_commit(result_id: int) -> None:
    """Queue the renditions job once the approval's transaction commits."""
    transaction.on_commit(lambda: enqueue(result_id), robust=True)


def rendition_urls(result: ImageGenerationResult) -> list[tuple[int, str]]:
    """``[(width, url)]`` of the recorded renditions, narrowest first; unreachable ones are left out."""
    storage = get_storage()
    urls = []
    for width, name in sorted((result.renditions or {}).items(), key=lambda item: int(item[0])):
        try:
            urls.append((int(width), storage.url(name)))
        except Exception:  # noqa: BLE001 - one bad rendition must not cost the page its image
            logger.exception("No URL for rendition %s of result #%s", name, result.pk)
    return urls
