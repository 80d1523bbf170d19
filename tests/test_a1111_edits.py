"""Refine, variations and upscale on Automatic1111 / Forge, against the local server over real HTTP.

The server (tests/servers/a1111.py) checks img2img and extras bodies like the real API and
makes its image from the init image, so what comes back shows what was sent: pixels outside
the mask stay as they were, the size follows the request, and an upscale is the source
resized.
"""

from __future__ import annotations

import base64
import io

import pytest
import requests
from PIL import Image

from blogimages.contract import EditInputs, GenerationRequest, ProgressReporter, SourceImage
from blogimages.exceptions import GenerationCancelled, PermanentProviderError
from blogimages.providers.automatic1111 import TASK_PREFIX, UPSCALE_PREFIX, Automatic1111Provider
from tests.servers.a1111 import A1111Server

BACKEND = "blogimages.providers.automatic1111.Automatic1111Provider"

RED, BLUE = (200, 30, 30), (30, 30, 200)


class Recorder(ProgressReporter):
    def __init__(self, cancel_at: float | None = None):
        super().__init__()
        self.reports: list[tuple[int, str]] = []
        self.remote: list[tuple[str, str]] = []
        self.cancel_at = cancel_at
        self._cancelled = False

    def progress(self, percent, message=""):
        self.reports.append((int(percent), message))
        if self.cancel_at is not None and percent >= self.cancel_at:
            self._cancelled = True

    def cancelled(self):
        return self._cancelled

    def remote_id(self, remote_id, server=""):
        self.remote.append((remote_id, server))


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ("AUTOMATIC1111_BASE_URL", "AUTOMATIC1111_API_AUTH"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server(thread_server):
    return thread_server(A1111Server(step_delay=0.01))


def make(server, **options) -> Automatic1111Provider:
    return Automatic1111Provider("a1111", base_url=server.url, poll_interval=0.02, **options)


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def two_tone(width: int = 96, height: int = 64) -> SourceImage:
    """Red on the left half, blue on the right."""
    image = Image.new("RGB", (width, height), RED)
    image.paste(BLUE, (width // 2, 0, width, height))
    return SourceImage(png(image), width, height)


def right_half_mask(width: int = 96, height: int = 64, mode: str = "L") -> bytes:
    """White (change) on the right half, black (keep) on the left."""
    if mode == "RGBA":  # keep as transparent pixels, change as opaque white
        image = Image.new("RGBA", (width, height), (0, 0, 0, 0))
        image.paste((255, 255, 255, 255), (width // 2, 0, width, height))
    else:
        image = Image.new("L", (width, height), 0)
        image.paste(255, (width // 2, 0, width, height))
    return png(image)


def decode(value: str | bytes) -> Image.Image:
    data = base64.b64decode(value) if isinstance(value, str) else value
    return Image.open(io.BytesIO(data))


def edit_request(operation: str, source: SourceImage | None = None, **edit) -> GenerationRequest:
    source = source or two_tone()
    return GenerationRequest(
        prompt="a stormier sky",
        negative_prompt="blurry",
        width=1024,
        height=1024,
        steps=10,
        edit=EditInputs(operation=operation, source=source, **edit),
    )


# --- refine and variations: img2img ------------------------------------------------------------------


@pytest.mark.parametrize("mask_mode", ["L", "RGBA"])
def test_a_masked_refine_sends_img2img_with_the_mask_and_keeps_the_rest(server, mask_mode):
    provider = make(server)
    source = two_tone()
    reporter = Recorder()
    request, adjustments = provider.prepare(edit_request("refine", source, mask=right_half_mask(mode=mask_mode)))
    image = provider.generate(request, reporter)

    assert server.txt2img == [] and len(server.img2img) == 1
    body = server.img2img[0]["json"]
    assert base64.b64decode(body["init_images"][0]) == source.content
    sent_mask = decode(body["mask"])
    assert sent_mask.mode == "L" and sent_mask.size == (96, 64)
    assert sent_mask.getpixel((10, 10)) == 0 and sent_mask.getpixel((80, 10)) == 255
    # The source's size (not the request's 1024x1024), the inpaint defaults, the prompt.
    assert {k: body[k] for k in ("width", "height", "prompt", "negative_prompt", "steps", "seed")} == {
        "width": 96,
        "height": 64,
        "prompt": "a stormier sky",
        "negative_prompt": "blurry",
        "steps": 10,
        "seed": -1,
    }
    assert {k: body[k] for k in ("denoising_strength", "inpainting_fill", "inpaint_full_res", "mask_blur")} == {
        "denoising_strength": 0.85,
        "inpainting_fill": 1,
        "inpaint_full_res": False,
        "mask_blur": 4,
    }
    assert body["resize_mode"] == 0 and body["force_task_id"].startswith(TASK_PREFIX)
    assert adjustments == []

    result = decode(image.content).convert("RGB")
    assert result.size == (96, 64)
    assert result.getpixel((10, 10)) == RED  # black in the mask: untouched
    assert result.getpixel((80, 10)) != BLUE  # white: repainted
    assert image.metadata["operation"] == "refine" and image.metadata["denoising_strength"] == 0.85
    assert image.seed is not None and f"Seed: {image.seed}," in image.metadata["infotext"]
    assert reporter.remote == [(body["force_task_id"], server.url)]
    assert any(p > 5 for p, _ in reporter.reports), reporter.reports


def test_a_refine_without_mask_changes_the_whole_image_at_the_given_strength(server):
    provider = make(server, refine_strength=0.4)
    image = provider.generate(edit_request("refine", strength=0.3), Recorder())
    body = server.img2img[0]["json"]
    assert body["denoising_strength"] == 0.3
    assert "mask" not in body and "inpainting_fill" not in body
    result = decode(image.content).convert("RGB")
    assert result.getpixel((10, 10)) != RED and result.getpixel((80, 10)) != BLUE

    # Without a strength, the provider's own default for the operation.
    provider.generate(edit_request("refine"), Recorder())
    assert server.img2img[1]["json"]["denoising_strength"] == 0.4


def test_variations_use_a_new_seed_and_the_variation_strength(server):
    provider = make(server, variation_strength=0.65)
    first = provider.generate(edit_request("variations"), Recorder())
    second = provider.generate(edit_request("variations"), Recorder())
    assert [r["json"]["denoising_strength"] for r in server.img2img] == [0.65, 0.65]
    assert [r["json"]["seed"] for r in server.img2img] == [-1, -1]
    assert first.seed != second.seed and first.content != second.content
    assert first.metadata["operation"] == "variations"


def test_a_source_off_the_8_pixel_grid_is_snapped_and_the_change_recorded(server):
    provider = make(server)
    source = two_tone(100, 70)
    request, adjustments = provider.prepare(edit_request("refine", source))
    assert (request.width, request.height) == (104, 72)
    assert adjustments == ["source size 100x70 snapped to 104x72 (Automatic1111 needs multiples of 8)"]
    image = provider.generate(request, Recorder())
    assert decode(image.content).size == (104, 72)


def test_a_cancelled_refine_interrupts_our_task_and_stores_nothing(thread_server):
    server = thread_server(A1111Server(step_delay=0.1))
    provider = make(server)
    with pytest.raises(GenerationCancelled):
        provider.generate(edit_request("refine", strength=1.0), Recorder(cancel_at=10))
    assert server.interrupts == 1
    assert server.interrupted_tasks == [server.img2img[0]["json"]["force_task_id"]]


def test_a_reference_is_img2img_at_the_request_size_cropped_to_fit(server):
    provider = make(server)
    image = provider.generate(
        GenerationRequest(prompt="a harbour at night", width=128, height=64, edit=EditInputs("reference", two_tone())),
        Recorder(),
    )
    body = server.img2img[0]["json"]
    assert (body["width"], body["height"], body["resize_mode"], body["denoising_strength"]) == (128, 64, 1, 0.75)
    assert body["prompt"] == "a harbour at night" and "mask" not in body
    assert decode(image.content).size == (128, 64)
    assert image.metadata["operation"] == "reference"


# --- what A1111 cannot do, said before anything is sent -------------------------------------------------


def test_limits_are_sentences_before_anything_is_sent(server):
    provider = make(server)
    source = two_tone()
    cases = {
        "mask for variations": (
            edit_request("variations", mask=right_half_mask()),
            "Automatic1111 (a1111) uses a mask only to refine; remove the mask to variations the whole image.",
        ),
        "mask size": (
            edit_request("refine", source, mask=right_half_mask(48, 32)),
            "The mask is 48x32 but the source image is 96x64; paint the mask on the source itself.",
        ),
        "mask not an image": (edit_request("refine", mask=b"not a png"), "The mask is not a readable PNG image."),
        "strength": (edit_request("refine", strength=1.5), "The strength must be between 0 and 1, not 1.5."),
        "scale too large": (
            edit_request("upscale", scale=10),
            "Automatic1111 (a1111) upscales by more than 1 and at most 8 times, not 10.",
        ),
        "scale not larger": (
            edit_request("upscale", scale=0.5),
            "Automatic1111 (a1111) upscales by more than 1 and at most 8 times, not 0.5.",
        ),
        "target too large": (
            GenerationRequest(prompt="x", width=1024, height=1024, edit=EditInputs("upscale", source)),
            "Automatic1111 (a1111) upscales at most 8 times; 1024x1024 is more than that.",
        ),
    }
    for label, (request, sentence) in cases.items():
        assert provider.edit_refusal(request) == sentence, label
        with pytest.raises(PermanentProviderError) as caught:
            provider.prepare(request)
        assert str(caught.value) == sentence, label
    assert provider.edit_refusal(GenerationRequest(prompt="x")) == ""
    assert server.requests == []  # all of it offline


def test_the_server_stretches_or_refuses_a_mismatched_mask_as_a1111_does(server):
    """Why the size is checked first: A1111 never says the mask does not fit."""
    source, small_mask = two_tone(), right_half_mask(48, 32)
    provider = make(server)
    body = {
        **provider.payload(provider.prepared(GenerationRequest(prompt="x", width=96, height=64)), "task(t)"),
        "init_images": [base64.b64encode(source.content).decode()],
        "mask": base64.b64encode(small_mask).decode(),
    }
    whole = requests.post(f"{server.url}/sdapi/v1/img2img", json={**body, "inpaint_full_res": False}, timeout=10)
    assert whole.status_code == 200  # silently stretched
    only_masked = requests.post(f"{server.url}/sdapi/v1/img2img", json=body, timeout=10)  # upstream's default
    assert only_masked.status_code == 500 and only_masked.json()["errors"] == "images do not match"
    no_image = requests.post(f"{server.url}/sdapi/v1/img2img", json={"prompt": "x"}, timeout=10)
    assert (no_image.status_code, no_image.json()["detail"]) == (404, "Init image not found")
    bad = requests.post(f"{server.url}/sdapi/v1/img2img", json={**body, "denoising_strength": "lots"}, timeout=10)
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "denoising_strength"]


# --- upscale: extras ------------------------------------------------------------------------------------


def test_upscale_by_a_factor_uses_extras_with_the_named_upscaler(server):
    provider = make(server)
    source = two_tone()
    reporter = Recorder()
    request, _ = provider.prepare(edit_request("upscale", source, scale=2))
    assert (request.width, request.height) == (192, 128)
    image = provider.generate(request, reporter)

    assert server.img2img == [] and len(server.extras) == 1
    body = server.extras[0]["json"]
    assert base64.b64decode(body["image"]) == source.content
    # To the exact size (by a factor A1111 would floor it to a multiple of 8).
    assert {k: body[k] for k in ("upscaler_1", "resize_mode", "upscaling_resize_w", "upscaling_resize_h")} == {
        "upscaler_1": "R-ESRGAN 4x+",
        "resize_mode": 1,
        "upscaling_resize_w": 192,
        "upscaling_resize_h": 128,
    }
    result = decode(image.content).convert("RGB")
    assert result.size == (192, 128)
    assert result.getpixel((10, 10)) == RED and result.getpixel((180, 120)) == BLUE
    assert image.metadata == {"operation": "upscale", "upscaler": "R-ESRGAN 4x+", "scale": 2}
    assert image.seed is None and image.remote_id.startswith(UPSCALE_PREFIX)
    assert reporter.remote == [(image.remote_id, server.url)]
    assert "/sdapi/v1/upscalers" in server.paths()


def test_an_odd_factor_still_gives_the_exact_size(server):
    provider = make(server)
    image = provider.generate(edit_request("upscale", two_tone(100, 70), scale=1.5), Recorder())
    result = decode(image.content).convert("RGB")
    assert result.size == (150, 105)
    assert image.metadata["fitted_from"] == "144x104"  # A1111 floors to multiples of 8
    assert result.getpixel((0, 0)) == RED and result.getpixel((149, 104)) == BLUE  # no black padding


def test_upscale_to_the_request_size_crops_to_fit(server):
    provider = make(server, upscaler="Lanczos")
    image = provider.generate(
        GenerationRequest(prompt="x", width=256, height=128, edit=EditInputs("upscale", two_tone())), Recorder()
    )
    body = server.extras[0]["json"]
    assert {k: body[k] for k in ("upscaler_1", "resize_mode", "upscaling_resize_w", "upscaling_resize_h")} == {
        "upscaler_1": "Lanczos",
        "resize_mode": 1,
        "upscaling_resize_w": 256,
        "upscaling_resize_h": 128,
    }
    assert body["upscaling_crop"] is False  # its crop pads with black; fitted here instead
    assert decode(image.content).size == (256, 128)


def test_an_upscaler_the_server_lacks_is_named_with_the_ones_it_has(thread_server):
    server = thread_server(A1111Server(upscalers=["None", "Lanczos", "Nearest"]))
    provider = make(server)
    with pytest.raises(PermanentProviderError) as caught:
        provider.generate(edit_request("upscale", scale=2), Recorder())
    assert str(caught.value) == (
        f"Automatic1111 at {server.url} has no upscaler 'R-ESRGAN 4x+' (it has: Lanczos, Nearest); set the "
        "provider's upscaler option to one of those."
    )
    assert server.extras == []


def test_a_cancelled_upscale_is_abandoned(thread_server):
    server = thread_server(A1111Server(step_delay=1.0))
    provider = make(server)
    with pytest.raises(GenerationCancelled, match="while Automatic1111 was upscaling"):
        provider.generate(edit_request("upscale", scale=2), Recorder(cancel_at=5))
    assert len(server.extras) == 1


# --- end to end: refining.refine, the real worker, the stored result ---------------------------------------


@pytest.fixture
def refine(settings, server, django_capture_on_commit_callbacks, run_worker):
    """refining.refine on an "a1111" provider served by ``server``, then the real worker."""
    from blogimages import refining

    settings.BLOGIMAGES_PROVIDERS = {
        **settings.BLOGIMAGES_PROVIDERS,
        "a1111": {"BACKEND": BACKEND, "OPTIONS": {"base_url": server.url, "poll_interval": 0.02}},
    }

    def run(parent, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            results = refining.refine(parent, provider="a1111", **kwargs)
        run_worker()
        for result in results:
            result.refresh_from_db()
        return results

    return run


@pytest.fixture
def parent(make_post, server):
    from tests.conftest import generated_result

    section = make_post(sections=1).sections.get()
    result = generated_result(section, prompt="A lighthouse at dusk", width=96, height=64, colour=RED)
    result.provider = result.provider_used = "a1111"
    result.save(update_fields=["provider", "provider_used"])
    return result


def stored(fieldfile) -> bytes:
    from django.core.files.storage import default_storage

    with default_storage.open(fieldfile.name) as fh:
        return fh.read()


def test_end_to_end_a_masked_refine_is_stored_as_a_child_of_its_parent(parent, refine, server):
    [child] = refine(parent, operation="refine", instruction="make the sky stormier", mask=right_half_mask(mode="RGBA"))

    assert child.status == "succeeded", child.error_message
    assert (child.parent_id, child.operation, child.provider_used) == (parent.pk, "refine", "a1111")
    body = server.img2img[0]["json"]
    assert base64.b64decode(body["init_images"][0]) == stored(parent.image)  # the parent's file as stored
    # img2img draws what the prompt describes: the instruction follows the parent's prompt.
    assert body["prompt"] == f"{parent.final_prompt}, make the sky stormier"
    assert (body["width"], body["height"]) == (96, 64)
    assert decode(body["mask"]).getpixel((10, 10)) == 0 and decode(body["mask"]).getpixel((80, 10)) == 255
    image = decode(stored(child.image)).convert("RGB")
    assert (child.width, child.height) == image.size == (96, 64)
    assert image.getpixel((10, 10)) == RED and image.getpixel((80, 10)) != RED


def test_end_to_end_an_upscale_is_stored_at_the_new_size(parent, refine, server):
    [child] = refine(parent, operation="upscale", scale=2)
    assert child.status == "succeeded", child.error_message
    assert (child.parent_id, child.operation) == (parent.pk, "upscale")
    assert len(server.extras) == 1 and server.img2img == []
    assert (child.width, child.height) == decode(stored(child.image)).size == (192, 128)
