"""Images go through Django's storage API: the filesystem by default, S3 over HTTP via moto."""

from __future__ import annotations

import io
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from blogimages import services, storage
from blogimages.exceptions import ConcurrentTransition, UploadRejected
from blogimages.models import ImageGenerationResult, ResultStatus

pytestmark = pytest.mark.django_db


def png_bytes(size=(64, 48), colour="red") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def test_generated_images_land_in_s3(s3_storage, make_post, run_worker, django_capture_on_commit_callbacks):
    client, bucket = s3_storage
    section = make_post(sections=1).sections.get()
    with django_capture_on_commit_callbacks(execute=True):
        (result,) = services.generate_for_section(section)
    run_worker()
    result.refresh_from_db()
    assert result.status == ResultStatus.SUCCEEDED, result.error_message
    stored = client.get_object(Bucket=bucket, Key=result.image.name)["Body"].read()
    assert stored[:8] == b"\x89PNG\r\n\x1a\n" and len(stored) == result.file_size
    thumb = client.head_object(Bucket=bucket, Key=result.thumbnail.name)
    assert thumb["ContentLength"] > 0
    # The URL django-storages gives is served by the S3 API over HTTP.
    response = requests.get(result.image.url, timeout=5)
    assert response.status_code == 200 and response.content == stored


def test_concurrent_saves_never_overwrite(s3_storage):
    client, bucket = s3_storage
    payloads = [png_bytes(colour=(i, 0, 0)) for i in range(16)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        names = list(pool.map(lambda data: storage.save_bytes(data, "image/png"), payloads))
    assert len(set(names)) == 16
    for name, data in zip(names, payloads, strict=True):
        assert client.get_object(Bucket=bucket, Key=name)["Body"].read() == data


def test_store_output_leaves_no_orphan_when_the_result_was_cancelled(media_root):
    (result,) = services.request_generation(services.GenerationSpec(prompt="a heron"))
    result.transition(ResultStatus.RUNNING)
    stale = ImageGenerationResult.objects.get(pk=result.pk)
    services.cancel(result)  # an editor cancels while the worker is storing
    with pytest.raises(ConcurrentTransition):
        services.store_output(stale, png_bytes(), fields={})
    stored = [p for p in media_root.rglob("*") if p.is_file()] if media_root.exists() else []
    assert stored == []


def test_upload_becomes_a_candidate(make_post, admin_user, media_root):
    section = make_post(sections=1).sections.get()
    result = services.upload(section, SimpleUploadedFile("mine.png", png_bytes((200, 100))), user=admin_user)
    assert (result.status, result.source, result.width, result.height) == ("succeeded", "uploaded", 200, 100)
    review = services.approve(result, user=admin_user)
    assert review.approved_result_id == result.pk


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "The file is empty."),
        (b"<svg xmlns='http://www.w3.org/2000/svg'></svg>", "SVG, HTML and other text files are not accepted"),
        (png_bytes()[:60], "The file is not a complete, readable image"),
        (b"just some text pretending to be a png", "The file is not a complete, readable image"),
    ],
)
def test_bad_uploads_are_refused_and_leave_nothing(content, message, make_post, media_root):
    section = make_post(sections=1).sections.get()
    with pytest.raises(UploadRejected, match=message):
        services.upload(section, SimpleUploadedFile("bad.png", content))
    assert ImageGenerationResult.objects.count() == 0
    assert not media_root.exists() or not any(p.is_file() for p in media_root.rglob("*"))


def test_html_appended_to_a_png_is_stripped(make_post):
    section = make_post(sections=1).sections.get()
    result = services.upload(section, SimpleUploadedFile("x.png", png_bytes() + b"<script>alert(1)</script>"))
    with result.image.open("rb") as stored:
        assert b"<script>" not in stored.read()


def test_oversized_upload_is_refused(settings, make_post):
    settings.BLOGIMAGES_UPLOAD_MAX_PIXELS = 100 * 100
    section = make_post(sections=1).sections.get()
    with pytest.raises(UploadRejected, match="the limit is 10,000 pixels"):
        services.upload(section, SimpleUploadedFile("big.png", png_bytes((200, 200))))


# --- what Django's ImageField alone would let through ------------------------------------------


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _with_chunk(png: bytes, chunk: bytes) -> bytes:
    return png[:33] + chunk + png[33:]  # right after IHDR (8-byte signature + 25-byte IHDR)


def _png_claiming(width: int, height: int) -> bytes:
    """A few hundred bytes whose header says ``width`` x ``height``: a decompression bomb."""
    header = _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + header + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 4096)) + _png_chunk(b"IEND", b"")


def _gif(frames: int) -> bytes:
    images = [Image.new("P", (8, 8), index % 256) for index in range(frames)]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=10, optimize=False)
    return buffer.getvalue()


def _truncated_jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.effect_noise((256, 256), 50).convert("RGB").save(buffer, format="JPEG")
    return buffer.getvalue()[: len(buffer.getvalue()) // 2]


@pytest.mark.parametrize(
    "make, message",
    [
        pytest.param(_truncated_jpeg, r"not a complete, readable image \(image file is truncated", id="truncated-jpeg"),
        pytest.param(lambda: _gif(20_000), "The animation has 20000 frames; upload a still image.", id="frame-bomb"),
        pytest.param(
            # 50 MB of text that compresses to 50 KB: Pillow refuses to inflate it.
            lambda: _with_chunk(png_bytes(), _png_chunk(b"zTXt", b"note\0\0" + zlib.compress(b"A" * 50 * 2**20))),
            "not a complete, readable image",
            id="50mb-text-chunk",
        ),
        pytest.param(
            lambda: _png_claiming(60_000, 60_000),
            "The image is too large to decode safely; the limit is 40,000,000 pixels in all.",
            id="decompression-bomb",
        ),
    ],
)
def test_what_imagefield_lets_through_is_refused_and_leaves_nothing(make, message, make_post, media_root):
    section = make_post(sections=1).sections.get()
    with pytest.raises(UploadRejected, match=message):
        services.upload(section, SimpleUploadedFile("photo.png", make()))
    assert ImageGenerationResult.objects.count() == 0
    assert not media_root.exists() or not any(p.is_file() for p in media_root.rglob("*"))


def test_a_short_animation_is_stored_as_its_first_frame(make_post):
    section = make_post(sections=1).sections.get()
    result = services.upload(section, SimpleUploadedFile("wave.gif", _gif(3)))
    with result.image.open("rb") as stored, Image.open(stored) as image:
        assert (image.format, getattr(image, "n_frames", 1)) == ("PNG", 1)


def test_a_large_text_chunk_is_dropped_by_re_encoding(make_post):
    section = make_post(sections=1).sections.get()
    upload = _with_chunk(png_bytes(), _png_chunk(b"tEXt", b"note\x00" + b"A" * 2**20))
    result = services.upload(section, SimpleUploadedFile("notes.png", upload))
    assert result.file_size < 1000
    with result.image.open("rb") as stored:
        assert b"AAAA" not in stored.read()


def test_truncated_files_are_refused_even_if_the_host_lets_pillow_load_them(make_post, monkeypatch):
    from PIL import ImageFile

    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)  # the host's own choice
    section = make_post(sections=1).sections.get()
    with pytest.raises(UploadRejected, match="image file is truncated"):
        services.upload(section, SimpleUploadedFile("photo.jpg", _truncated_jpeg()))
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # and it is left as the host set it
