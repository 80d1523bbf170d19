"""The soak's book-keeping (bench/soak_books.py) on hand-built states: each check finds
the defect it is there for and nothing on a clean state. The soak itself is ``make soak``."""

from __future__ import annotations

import io

import pytest
from django.contrib.contenttypes.models import ContentType
from django.core.files.base import ContentFile
from PIL import Image

from bench import soak_books
from bench.soak_storage import FaultyStorage
from blogimages.models import ImageGenerationResult, SectionReview
from blogimages.storage import get_storage
from project.blog.models import Post

pytestmark = pytest.mark.django_db
PREFIX = "blogimages"


def png(job: int | None = None) -> bytes:
    """A small PNG with the job painted into it, as the soak's fake Automatic1111 makes them."""
    image = Image.new("RGB", (8, 8), (20, 40, 60))
    if job is not None:
        soak_books.mark_image(image, job)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def stored(name: str, data: bytes = b"RIFF....WEBP") -> str:
    return get_storage().save(name, ContentFile(data))


def review(key: str) -> SectionReview:
    post = Post.objects.get_or_create(slug="soak", defaults={"title": "Soak"})[0]
    return SectionReview.objects.create(
        post_type=ContentType.objects.get_for_model(Post), post_id=str(post.pk), section_key=key
    )


def result(job: int, status: str, **fields) -> ImageGenerationResult:
    prompt = f"soak-job-{job}: a harbour at dawn"
    return ImageGenerationResult.objects.create(
        prompt=prompt, final_prompt=prompt, provider="a1111", status=status, **fields
    )


def succeeded(job: int, **fields) -> ImageGenerationResult:
    image = stored(f"{PREFIX}/images/2026/01/{job}.png", png(job))
    thumbnail = stored(f"{PREFIX}/thumbnails/2026/01/{job}.webp")
    return result(job, "succeeded", image=image, thumbnail=thumbnail, **fields)


def books(requested=None) -> soak_books.Books:
    results = ImageGenerationResult.objects.order_by("pk")
    requested = [r.pk for r in results] if requested is None else requested
    return soak_books.check_books(results, requested, get_storage(), PREFIX)


def test_a_clean_state_has_nothing_to_report():
    succeeded(1, review=review("1"))
    result(2, "failed", error_message="Automatic1111 did not answer within 4 s.", error_kind="transient")
    result(3, "cancelled", error_message="Cancelled by an editor.")
    stored("elsewhere/not-ours.png", png(9))  # outside the key prefix: not blogimages' file

    found = books()

    assert (found.lost, found.stuck, found.orphans, found.duplicates) == ([], [], [], [])
    assert found.outcomes == {"succeeded": 1, "failed/transient": 1, "cancelled": 1}


def test_lost_results_are_found():
    ok = succeeded(1)
    no_image = result(2, "succeeded")
    gone = result(3, "succeeded", image=f"{PREFIX}/images/2026/01/gone.png")
    silent = result(4, "failed", error_kind="transient")
    unexplained = result(5, "cancelled")

    found = books(requested=[ok.pk, no_image.pk, gone.pk, silent.pk, unexplained.pk, 999])

    assert sorted(found.lost) == sorted([999, no_image.pk, gone.pk, silent.pk, unexplained.pk])
    assert found.stuck == [] and found.orphans == [] and found.duplicates == []


def test_stuck_results_are_found():
    succeeded(1)
    queued = result(2, "queued")
    running = result(3, "running")

    found = books()

    assert found.stuck == [queued.pk, running.pk]
    assert found.lost == []


def test_orphan_files_are_found():
    succeeded(1)
    orphan = stored(f"{PREFIX}/images/2026/01/orphan.png", png(7))
    orphan_thumbnail = stored(f"{PREFIX}/thumbnails/2026/01/orphan.webp")
    rendition = stored(f"{PREFIX}/renditions/2026/01/1-480.webp")
    result(2, "succeeded", image=stored(f"{PREFIX}/images/2026/01/2.png", png(2)), renditions={"480": rendition})

    found = books()

    assert found.orphans == sorted([orphan, orphan_thumbnail])
    assert found.duplicates == []


def test_a_file_referenced_twice_is_a_duplicate():
    first = succeeded(1)
    result(2, "succeeded", image=first.image.name, thumbnail=stored(f"{PREFIX}/thumbnails/2026/01/2.webp"))

    found = books()

    assert found.duplicates == [f"{first.image.name} referenced 2 times"]


def test_two_images_for_one_section_are_a_duplicate():
    section = review("1")
    one, two = succeeded(1, review=section), succeeded(2, review=section)

    found = books()

    assert found.duplicates == [f"section review #{section.pk} has succeeded results {[one.pk, two.pk]}"]


def test_one_job_stored_twice_is_a_duplicate_and_an_orphan():
    first = succeeded(5)
    again = stored(f"{PREFIX}/images/2026/01/5-again.png", png(5))

    found = books()

    assert found.duplicates == [f"soak-job-5 stored 2 times: {sorted([first.image.name, again])}"]
    assert found.orphans == [again]


def test_recovery_is_from_first_fault_to_terminal():
    faults = [
        {"t": 100.0, "kind": "kill_both", "result": 1},
        {"t": 104.0, "kind": "provider_5xx", "result": 1},
        {"t": 110.0, "kind": "storage_refused", "result": 2},
        {"t": 120.0, "kind": "redis_restart", "result": 3},  # never finished: stuck, not slow
        {"t": 130.0, "kind": "redis_restart", "result": None},
    ]

    seconds = soak_books.recovery_seconds(faults, {1: 112.0, 2: 111.5, 4: 50.0})

    assert seconds == [1.5, 12.0]
    assert soak_books.percentile(seconds, 0.95) == 12.0
    assert soak_books.percentile([], 0.95) == 0.0


@pytest.mark.parametrize(("fault", "error"), [("refused", ConnectionRefusedError), ("stalled", TimeoutError)])
def test_the_faulty_storage_fails_while_switched_on(tmp_path, monkeypatch, fault, error):
    monkeypatch.setenv("SOAK_FAULT_DIR", str(tmp_path))
    monkeypatch.setenv("SOAK_STORAGE_STALL_S", "0")
    storage = FaultyStorage(location=tmp_path / "media")
    (tmp_path / "storage").write_text(fault)

    with pytest.raises(error):
        storage.save("blogimages/images/a.png", ContentFile(png()))
    assert '"kind": "storage_' + fault in (tmp_path / "faults.jsonl").read_text()

    (tmp_path / "storage").unlink()
    name = storage.save("blogimages/images/a.png", ContentFile(png()))
    assert storage.exists(name)


def test_the_job_marker_survives_what_blogimages_does_to_a_stored_png():
    from blogimages.images import strip_metadata

    assert soak_books.png_marker(strip_metadata(png(70_123))) == 70_123
    assert soak_books.png_marker(png()) is None
    assert soak_books.png_marker(b"RIFF....WEBP") is None
