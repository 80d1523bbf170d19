"""The soak's books: what the database and the storage say after the faults, checked.

Pure reads, no Django set-up at import, so ``tests/test_soak.py`` proves each check on a
hand-built state. Each check returns the offending items (result ids or storage names),
so a defect can be named, not just counted:

* lost: a result asked for and gone, or one that ended without an outcome: succeeded with
  no image (or an image the storage no longer has), failed or cancelled with no reason;
* stuck: a result still queued or running when the harness stopped waiting;
* orphans: a stored file (image, thumbnail, rendition) that no result references;
* duplicates: a name referenced twice (two results, or one result's image and thumbnail),
  a section with two succeeded results for the one image asked, or one job's picture
  stored twice (found by the job's marker the fake provider paints into its pixels:
  blogimages strips files' metadata, so a text chunk would not survive).
"""

from __future__ import annotations

import io
import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

#: The marker the harness writes into each section's text, hence into the prompt the
#: provider receives; the fake provider paints it into the image's first two pixels.
MARKER = re.compile(r"soak-job-(\d+)")
PIXEL_MAGIC = (0x50, 0x4B, 0x1D)


def marker(text: str) -> int | None:
    match = MARKER.search(text or "")
    return int(match.group(1)) if match else None


def mark_image(image, job: int) -> None:
    """Paint ``job`` into a PIL RGB image: pixel (0, 0) a magic colour, (1, 0) the number."""
    image.putpixel((0, 0), PIXEL_MAGIC)
    image.putpixel((1, 0), ((job >> 16) & 255, (job >> 8) & 255, job & 255))


@dataclass
class Books:
    lost: list[int] = field(default_factory=list)
    stuck: list[int] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    outcomes: dict[str, int] = field(default_factory=dict)


def stored_names(storage, prefix: str) -> Iterator[str]:
    """Every file under ``prefix``, through the storage API (the cleanup command's walk)."""
    from blogimages.management.commands.blogimages_cleanup import _walk

    yield from _walk(storage, prefix.strip("/"))


def _references(result) -> list[str]:
    from blogimages.storage import rendition_names

    return [name for name in (result.image.name, result.thumbnail.name, *rendition_names(result.renditions)) if name]


def find_lost(results, requested: Iterable[int], storage) -> list[int]:
    from blogimages.models import ResultStatus

    found = {result.pk for result in results}
    lost = sorted(set(requested) - found)
    for result in results:
        if result.status == ResultStatus.SUCCEEDED:
            if not result.image.name or not storage.exists(result.image.name):
                lost.append(result.pk)
        elif result.status in (ResultStatus.FAILED, ResultStatus.CANCELLED):
            if not result.error_message.strip():
                lost.append(result.pk)
    return lost


def find_stuck(results) -> list[int]:
    from blogimages.models import ACTIVE_STATUSES

    return sorted(result.pk for result in results if result.status in ACTIVE_STATUSES)


def find_orphans(results, listed: Iterable[str]) -> list[str]:
    referenced = {name for result in results for name in _references(result)}
    return sorted(set(listed) - referenced)


def png_marker(data: bytes) -> int | None:
    """The job painted into an image by :func:`mark_image`, or None."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            rgb = image.convert("RGB")
            if rgb.width < 2 or rgb.getpixel((0, 0)) != PIXEL_MAGIC:
                return None
            high, mid, low = rgb.getpixel((1, 0))
    except Exception:  # noqa: BLE001 - a thumbnail or a foreign file has no marker
        return None
    return (high << 16) | (mid << 8) | low


def find_duplicates(results, listed: Iterable[str], storage) -> list[str]:
    from blogimages.models import ResultStatus

    problems = []
    counts = Counter(name for result in results for name in _references(result))
    problems += [f"{name} referenced {count} times" for name, count in sorted(counts.items()) if count > 1]
    succeeded = defaultdict(list)
    for result in results:
        if result.status == ResultStatus.SUCCEEDED and result.review_id is not None:
            succeeded[result.review_id].append(result.pk)
    problems += [
        f"section review #{review} has succeeded results {pks}" for review, pks in succeeded.items() if len(pks) > 1
    ]
    per_job = defaultdict(list)
    for name in listed:
        if not name.lower().endswith(".png"):
            continue
        with storage.open(name, "rb") as handle:
            job = png_marker(handle.read())
        if job is not None:
            per_job[job].append(name)
    problems += [
        f"soak-job-{job} stored {len(names)} times: {sorted(names)}" for job, names in per_job.items() if len(names) > 1
    ]
    return sorted(problems)


def check_books(results, requested: Iterable[int], storage, prefix: str) -> Books:
    """All four checks over ``results`` (the soak's rows) and everything under ``prefix``."""
    results = list(results)
    listed = list(stored_names(storage, prefix))
    return Books(
        lost=find_lost(results, requested, storage),
        stuck=find_stuck(results),
        orphans=find_orphans(results, listed),
        duplicates=find_duplicates(results, listed, storage),
        outcomes=dict(Counter(f"{r.status}{'/' + r.error_kind if r.error_kind else ''}" for r in results)),
    )


def recovery_seconds(faults: Iterable[dict], finished: dict[int, float]) -> list[float]:
    """Per result hit by a fault: seconds from its first fault to its final terminal state.

    ``faults`` are the fault log's entries (``{"t", "result"}``); ``finished`` maps a
    result id to its ``finished_at`` as a timestamp. Results still unfinished are stuck,
    not slow, and are left to that figure.
    """
    first: dict[int, float] = {}
    for fault in faults:
        pk = fault.get("result")
        if pk is None:
            continue
        first[pk] = min(first.get(pk, math.inf), fault["t"])
    return sorted(max(0.0, finished[pk] - t) for pk, t in first.items() if pk in finished and finished[pk] >= t - 1)


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]
