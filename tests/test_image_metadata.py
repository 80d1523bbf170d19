"""Stored and published files say nothing about how they were made.

A ComfyUI PNG carries its whole graph (prompts, negative prompt, seed, model file names),
an A1111 PNG its "parameters", an OpenAI image its Content Credentials, a camera JPEG its
GPS position. Each provider's real output goes through the job path here (real local
servers, a real worker), and the stored image, its thumbnail and its renditions are read
back with Pillow and byte by byte. What was sent stays in the database.
"""

from __future__ import annotations

import functools
import io
import json
import struct

import pytest
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image, ImageCms, PngImagePlugin

from blogimages import renditions, services
from blogimages.hosts import publishing
from blogimages.images import MetadataError, strip_metadata
from blogimages.models import ImageGenerationResult, ResultStatus
from blogimages.provenance import mark
from blogimages.services import GenerationSpec
from blogimages.storage import get_storage, rendition_names
from tests.servers.a1111 import A1111Server
from tests.servers.comfyui import FakeComfyUI, _png
from tests.servers.openai_server import OpenAIImagesServer
from tests.servers.runpod import RunPodServer, render

PROMPT = "A lighthouse on a cliff at dusk"
#: What must not be in any stored file, as bytes: container markers and the words they carry.
FORBIDDEN = (
    b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"caBX", b"Exif\x00\x00", b"<x:xmpmeta", b"http://ns.adobe.com/xap",
    b"c2pa", b"jumb", b"XMP ", b"EXIF", b"C2PA", b"parameters", b"workflow", b"\"prompt\"", b"lighthouse",
    b"Negative prompt", b"Canon", b"GPS", b"SECRET",
)  # fmt: skip
#: Pillow's ``info`` keys that describe pixels, not provenance.
HARMLESS_INFO = {
    "dpi", "jfif", "jfif_version", "jfif_unit", "jfif_density", "icc_profile", "background", "duration", "loop",
    "timestamp", "gamma", "srgb", "chromaticity", "transparency", "aspect", "adobe", "adobe_transform", "progressive",
    "progression",
}  # fmt: skip


@functools.cache
def srgb_profile() -> bytes:
    """One sRGB profile per run: lcms writes the time of creation into the header (bytes
    24-35), so two built a second apart differ."""
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def without_ai_mark(data: bytes) -> bytes:
    """``data`` less blogimages' own XMP (the AI mark: tests/test_provenance.py reads it), if
    that is all the metadata it has; else ``data`` as it is, for assert_clean to fail on."""
    stripped = strip_metadata(data)
    return stripped if mark(stripped, ai_generated=True) == data else data


def assert_clean(data: bytes) -> Image.Image:
    """``data`` carries no metadata but the AI mark, read with Pillow and byte by byte; returns the image."""
    data = without_ai_mark(data)
    found = [marker for marker in FORBIDDEN if marker in data]
    assert found == [], f"metadata left in the file: {found}"
    image = Image.open(io.BytesIO(data))
    image.load()
    assert set(image.info) <= HARMLESS_INFO, set(image.info) - HARMLESS_INFO
    assert dict(image.getexif()) == {}
    assert getattr(image, "text", {}) == {}
    return image


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    chunks, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        chunks.append((data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return chunks


def idat(data: bytes) -> bytes:
    return b"".join(body for kind, body in png_chunks(data) if kind == b"IDAT")


def stored_files(result: ImageGenerationResult) -> dict[str, bytes]:
    """Every file stored for the result: image, thumbnail and renditions."""
    storage = get_storage()
    names = {"image": result.image.name, "thumbnail": result.thumbnail.name}
    names.update({f"rendition {name}": name for name in rendition_names(result.renditions)})
    files = {}
    for label, name in names.items():
        with storage.open(name, "rb") as handle:
            files[label] = handle.read()
    return files


# --- each provider's output, through the job path ---------------------------------------------


@pytest.fixture
def generate(db, settings, django_capture_on_commit_callbacks, run_worker):
    """Generate through the service layer and a real worker, then make the renditions."""
    settings.BLOGIMAGES_RENDITION_WIDTHS = (64, 160)

    def run(provider: str, **overrides) -> ImageGenerationResult:
        spec = GenerationSpec(prompt=PROMPT, providers=[provider], overrides=overrides)
        with django_capture_on_commit_callbacks(execute=True):
            [result] = services.request_generation(spec)
        run_worker()
        result.refresh_from_db()
        assert result.status == ResultStatus.SUCCEEDED, result.error_message
        renditions.make_renditions(result.pk)
        result.refresh_from_db()
        assert len(result.renditions) == 2
        return result

    return run


def providers_setting(settings, alias: str, backend: str, **options) -> None:
    settings.BLOGIMAGES_PROVIDERS = {**settings.BLOGIMAGES_PROVIDERS, alias: {"BACKEND": backend, "OPTIONS": options}}


def check_stored(result: ImageGenerationResult, served: bytes, *, same_encoder: bool = True) -> None:
    """The stored files are clean; the image's pixels are the served ones (for a PNG, its
    compressed image data byte for byte: nothing was re-encoded)."""
    files = stored_files(result)
    for label, data in files.items():
        try:
            assert_clean(data)
        except AssertionError as exc:
            raise AssertionError(f"{result.provider}: {label}: {exc}") from None
    stored = files["image"]
    assert stored != served  # the served file did carry metadata
    with Image.open(io.BytesIO(stored)) as mine, Image.open(io.BytesIO(served)) as theirs:
        assert (mine.format, mine.size) == (theirs.format, theirs.size)
        assert mine.tobytes() == theirs.tobytes()
    if served.startswith(b"\x89PNG") and same_encoder:
        assert idat(stored) == idat(served)
    assert (result.file_size, len(stored)) == (len(stored), result.file_size)
    assert mark(strip_metadata(stored), ai_generated=True) == stored  # nothing but the AI mark


def comfyui_result(settings, generate):
    """A result generated by the fake ComfyUI, and the file the server wrote for it."""
    with FakeComfyUI(run_time=0.05) as server:
        providers_setting(
            settings,
            "comfyui",
            "blogimages.providers.comfyui.ComfyUIProvider",
            urls=[server.url],
            workflow="sdxl",
            poll_interval=0.05,
        )
        result = generate("comfyui", width=320, height=256, steps=3)
        output = result.provider_meta["output"]
        return result, server.files[("output", output["subfolder"], output["filename"])]


def test_comfyui_output_loses_its_graph(settings, generate):
    result, served = comfyui_result(settings, generate)
    assert b"tEXt" in served and PROMPT.encode() in served  # what ComfyUI wrote: the graph
    check_stored(result, served)
    # The snapshot stays in the database.
    assert result.final_prompt == PROMPT and result.seed is not None


def test_automatic1111_output_loses_its_parameters(settings, thread_server, generate):
    server = thread_server(A1111Server(step_delay=0.001))
    providers_setting(
        settings,
        "a1111",
        "blogimages.providers.automatic1111.Automatic1111Provider",
        base_url=server.url,
        poll_interval=0.02,
    )
    result = generate("a1111", width=320, height=200, steps=2)
    # What the server sent: its pixels, and its infotext in a "parameters" tEXt chunk.
    seed = result.seed
    served = io.BytesIO()
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", result.provider_meta["infotext"])
    Image.new("RGB", (320, 200), (seed % 200, 40 + seed % 97, 90)).save(served, format="PNG", pnginfo=info)
    assert "Negative prompt" in result.provider_meta["infotext"]
    check_stored(result, served.getvalue(), same_encoder=False)


@pytest.mark.parametrize("output_format", ["png", "jpeg", "webp"])
def test_openai_output_loses_its_content_credentials(settings, thread_server, generate, monkeypatch, output_format):
    pytest.importorskip("openai")
    for name in ("OPENAI_API_KEY", "OPENAI_AUTH_TOKEN", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    server = thread_server(OpenAIImagesServer(api_key="sk-test"))
    providers_setting(
        settings, "openai", "blogimages.providers.openai.OpenAIImagesProvider", api_key="sk-test", base_url=server.url
    )
    result = generate("openai", extra={"output_format": output_format})
    [served] = server.images
    assert b"c2pa" in served
    check_stored(result, served)


def test_runpod_output_loses_its_graph(settings, thread_server, generate, monkeypatch):
    monkeypatch.delenv("RUNPOD_API_KEY", raising=False)
    server = thread_server(RunPodServer(api_key="rp-test", endpoints=("ep100",)))
    server.plan(output_format="message")
    providers_setting(
        settings,
        "runpod",
        "blogimages.providers.runpod.RunPodProvider",
        api_key="rp-test",
        endpoint_id="ep100",
        base_url=server.url,
        polling_interval=0.01,
        workflow="sdxl",
    )
    result = generate("runpod", width=320, height=192)
    served = render(server.runs[0]["json"]["input"]["workflow"])
    assert b"tEXt" in served
    check_stored(result, served)


def test_placeholder_output_is_stored_clean(generate):
    result = generate("placeholder", width=320, height=256)
    for data in stored_files(result).values():
        assert_clean(data)


# --- uploads ------------------------------------------------------------------------------------


def camera_jpeg(orientation: int = 1, size=(120, 80)) -> bytes:
    """A JPEG as a phone writes it: EXIF with camera, GPS and orientation, XMP, a comment, ICC."""
    image = Image.new("RGB", size, (200, 120, 40))
    image.paste((20, 40, 200), (0, 0, size[0] // 2, size[1] // 4))  # a mark that shows a turn
    exif = Image.Exif()
    exif[0x010F] = "Canon"  # Make
    exif[0x0110] = "Canon EOS SECRET"  # Model
    exif[0x0112] = orientation
    exif[0x8825] = {1: "N", 2: (52.0, 22.0, 1.5), 3: "E", 4: (4.0, 53.0, 2.0)}  # GPS
    buffer = io.BytesIO()
    image.save(
        buffer,
        format="JPEG",
        exif=exif,
        xmp=b'<x:xmpmeta xmlns:x="adobe:ns:meta/">SECRET author</x:xmpmeta>',
        comment=b"SECRET comment",
        icc_profile=srgb_profile(),
        quality=95,
    )
    return buffer.getvalue()


def test_an_uploaded_camera_jpeg_keeps_no_exif_xmp_or_comment(make_post, admin_user, settings):
    settings.BLOGIMAGES_RENDITION_WIDTHS = (64,)
    data = camera_jpeg()
    with Image.open(io.BytesIO(data)) as original:  # the file carries it all
        assert {"exif", "xmp", "comment", "icc_profile"} <= set(original.info)
        assert original.getexif().get_ifd(0x8825)
    section = make_post(sections=1).sections.get()
    result = services.upload(section, SimpleUploadedFile("photo.jpg", data, "image/jpeg"), user=admin_user)
    renditions.make_renditions(result.pk)
    result.refresh_from_db()
    files = stored_files(result)
    assert len(files) == 3
    for data in files.values():
        image = assert_clean(data)
        assert image.info.get("icc_profile") == srgb_profile()  # colour is not provenance
    assert result.content_type == "image/jpeg"


def test_an_uploaded_photo_turned_by_exif_is_stored_upright(make_post):
    section = make_post(sections=1).sections.get()
    data = camera_jpeg(orientation=6)  # "turn 90° clockwise to view"
    result = services.upload(section, SimpleUploadedFile("photo.jpg", data, "image/jpeg"))
    stored = assert_clean(stored_files(result)["image"])
    assert stored.size == (80, 120) == (result.width, result.height)


def test_an_uploaded_png_from_a1111_keeps_no_parameters(make_post):
    section = make_post(sections=1).sections.get()
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a lighthouse\nNegative prompt: blur\nSteps: 20, Seed: 1")
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (1, 2, 3)).save(buffer, format="PNG", pnginfo=info)
    result = services.upload(section, SimpleUploadedFile("a1111.png", buffer.getvalue(), "image/png"))
    for data in stored_files(result).values():
        assert_clean(data)


# --- the stripping itself, byte by byte ---------------------------------------------------------


def test_a_comfyui_png_keeps_its_pixels_and_colour_and_loses_prompt_and_workflow():
    graph = {"3": {"class_type": "KSampler", "inputs": {"seed": 42, "text": "SECRET"}}}
    workflow = {"nodes": [{"type": "CheckpointLoaderSimple", "widgets_values": ["sdxl_SECRET.safetensors"]}]}
    served = _png(64, 48, "key", graph, {"workflow": workflow})  # as ComfyUI's SaveImage writes it
    with Image.open(io.BytesIO(served)) as image:
        assert json.loads(image.text["prompt"]) == graph and json.loads(image.text["workflow"]) == workflow
    # With an ICC profile and data appended after IEND, as a careless tool leaves it.
    with Image.open(io.BytesIO(served)) as image:
        buffer = io.BytesIO()
        info = PngImagePlugin.PngInfo()
        for key, value in image.text.items():
            info.add_itxt(key, value, zip=True)
        image.save(buffer, format="PNG", pnginfo=info, icc_profile=srgb_profile())
    dirty = buffer.getvalue() + b"<html>SECRET</html>"
    clean = strip_metadata(dirty)
    image = assert_clean(clean)
    assert image.info["icc_profile"] == srgb_profile()
    assert [kind for kind, _ in png_chunks(clean)] == [b"IHDR", b"iCCP", b"IDAT", b"IEND"]
    assert idat(clean) == idat(dirty)
    assert strip_metadata(clean) == clean


def test_jpeg_and_webp_lose_metadata_without_their_image_data_being_re_encoded():
    jpeg = camera_jpeg()
    clean = strip_metadata(jpeg)
    assert_clean(clean)
    scan = jpeg.index(b"\xff\xda")
    assert clean.endswith(jpeg[scan:])  # the frame's tables and scans are copied as they were
    assert Image.open(io.BytesIO(clean)).info["icc_profile"] == srgb_profile()

    image = Image.new("RGB", (40, 30), (10, 200, 30))
    exif = Image.Exif()
    exif[0x0131] = "ComfyUI SECRET"
    buffer = io.BytesIO()
    image.save(buffer, format="WEBP", exif=exif, xmp=b"<x:xmpmeta>SECRET</x:xmpmeta>", icc_profile=srgb_profile())
    webp = buffer.getvalue()
    clean = strip_metadata(webp)
    stripped = assert_clean(clean)
    assert stripped.info["icc_profile"] == srgb_profile()
    with Image.open(io.BytesIO(webp)) as original:
        assert stripped.tobytes() == original.tobytes()
    assert webp[webp.index(b"VP8 ") :].split(b"EXIF")[0] in clean  # the bitstream, untouched
    assert strip_metadata(clean) == clean


def test_what_is_not_a_png_jpeg_or_webp_is_refused():
    with pytest.raises(MetadataError):
        strip_metadata(b"<html>not an image</html>")
    with pytest.raises(MetadataError):
        strip_metadata(_png(8, 8, "k", {})[:40])  # cut short


# --- publishing into a CMS ------------------------------------------------------------------------


def test_publishing_reads_a_file_stored_before_stripping_without_its_metadata(make_post):
    section = make_post(sections=1).sections.get()
    review = services.review_for(section)
    served = _png(64, 48, "old", {"3": {"inputs": {"text": "SECRET"}}}, {"workflow": {"nodes": []}})
    # Written straight to storage, as blogimages did before it stripped metadata.
    name = get_storage().save("blogimages/images/old.png", ContentFile(served))
    result = ImageGenerationResult.objects.create(
        review=review, prompt="x", final_prompt="x", provider="comfyui", status=ResultStatus.SUCCEEDED, image=name
    )
    data = publishing.read_image(result)
    assert_clean(data)
    assert idat(data) == idat(served)
