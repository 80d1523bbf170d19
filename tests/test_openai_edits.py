"""OpenAI edits (``POST /v1/images/edits``): the real ``openai`` client against the local server,
which parses the multipart form and streams server-sent events as api.openai.com does.

Run with REDIS_URL=redis://127.0.0.1:6379/6.
"""

from __future__ import annotations

import io

import pytest
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.files.storage import default_storage
from django.urls import reverse
from PIL import Image, ImageDraw

from blogimages import refining
from blogimages.models import ImageStyle
from blogimages.providers.capabilities import build_table
from blogimages.providers.openai import VARIATION_INSTRUCTION, openai_mask
from tests.conftest import generated_result
from tests.servers.openai_server import EDIT_PAINT, OpenAIImagesServer

BACKEND = "blogimages.providers.openai.OpenAIImagesProvider"
W, H = 1024, 768  # a size gpt-image-2 takes as it is
BOX = (100, 100, 299, 199)  # the painted area


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ("OPENAI_API_KEY", "OPENAI_AUTH_TOKEN", "OPENAI_BASE_URL", "ENABLE_CLOUD_APIS"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def no_previews():
    def wipe():
        redis = refining._redis()
        for key in redis.scan_iter("blogimages:preview:*"):
            redis.delete(key)

    wipe()
    yield
    wipe()


@pytest.fixture
def server(thread_server):
    return thread_server(OpenAIImagesServer(api_key="sk-test"))


@pytest.fixture
def configure(settings, server):
    def run(**options):
        settings.BLOGIMAGES_PROVIDERS = {
            "placeholder": {"BACKEND": "blogimages.providers.placeholder.PlaceholderProvider", "OPTIONS": {}},
            "openai": {"BACKEND": BACKEND, "OPTIONS": {"api_key": "sk-test", "base_url": server.url, **options}},
            "auto": {
                "BACKEND": "blogimages.providers.auto.AutoProvider",
                "OPTIONS": {"order": ["placeholder", "openai"]},
            },
        }

    run()
    return run


@pytest.fixture
def parent(make_post, configure):
    section = make_post(sections=1).sections.get()
    result = generated_result(section, prompt="A lighthouse at dusk", width=W, height=H, colour=(20, 60, 120))
    result.provider = result.provider_used = "openai"
    result.save(update_fields=["provider", "provider_used"])
    return result


@pytest.fixture
def refine(django_capture_on_commit_callbacks, run_worker):
    """refining.refine, then the real worker; returns the refreshed results."""

    def run(parent, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            results = refining.refine(parent, **kwargs)
        run_worker()
        for result in results:
            result.refresh_from_db()
        return results

    return run


def canvas_mask() -> bytes:
    """What a browser canvas gives: white paint on a transparent background."""
    image = Image.new("RGBA", (W, H), (0, 0, 0, 0))
    ImageDraw.Draw(image).rectangle(BOX, fill=(255, 255, 255, 255))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def stored(fieldfile) -> bytes:
    with default_storage.open(fieldfile.name) as fh:
        return fh.read()


def form_file(edit: dict, field: str) -> dict:
    [found] = [f for f in edit["files"] if f["field"] == field]
    return found


# --- refine with a mask, streamed -----------------------------------------------------------------


def test_refine_sends_source_and_converted_mask_and_streams_partial_images(parent, server, refine, client, admin_user):
    [child] = refine(parent, operation="refine", instruction="make the sky stormier", mask=canvas_mask())

    assert child.status == "succeeded", child.error_message
    assert (child.provider, child.provider_used, child.model) == ("openai", "openai", "gpt-image-2")
    [edit] = server.edits
    fields = edit["fields"]
    assert fields["prompt"] == "make the sky stormier"
    assert (fields["model"], fields["size"], fields["n"]) == ("gpt-image-2", f"{W}x{H}", "1")
    assert (fields["stream"], fields["partial_images"]) == ("true", "2")
    assert "input_fidelity" not in fields and "moderation" not in fields
    # The source is the parent's file, as stored; the request went to the edits endpoint only.
    source = form_file(edit, "image")
    assert source["data"] == stored(parent.image)
    assert source["content_type"] == "image/png"
    assert server.generations == []
    # The mask in OpenAI's convention: an RGBA PNG of the source's size, transparent where painted.
    mask = Image.open(io.BytesIO(form_file(edit, "mask")["data"]))
    assert (mask.format, mask.mode, mask.size) == ("PNG", "RGBA", (W, H))
    assert mask.getpixel((150, 150))[3] == 0
    assert mask.getpixel((500, 500))[3] == 255
    # The server painted exactly the masked area: the stored image shows it went where it should.
    image = Image.open(io.BytesIO(stored(child.image))).convert("RGB")
    assert image.size == (W, H)
    assert image.getpixel((150, 150)) == EDIT_PAINT
    assert image.getpixel((500, 500)) == (20, 60, 120)
    # The completed event's usage and what was sent are recorded.
    meta = child.provider_meta
    assert meta["usage"]["input_tokens_details"]["image_tokens"] == 323
    assert meta["edit"] == {
        "endpoint": "images/edits",
        "operation": "refine",
        "mask": True,
        "partial_images": 2,
    }
    # The partial images reached reporter.preview: the newest is kept for the card ...
    # (two arrived at once: the first is written, the second at the next progress report)
    assert refining.preview_count(child.pk) >= 1
    preview = Image.open(io.BytesIO(refining.preview(child.pk)))
    assert preview.format == "WEBP" and max(preview.size) == 512
    # ... and the page fetches it from the API.
    client.force_login(admin_user)
    response = client.get(reverse("blogimages:api-result-preview", args=[child.pk]))
    assert response.status_code == 200 and response["Content-Type"] == "image/webp"


def test_without_streaming_the_edit_is_one_answer(parent, server, refine, configure):
    configure(partial_images=0)
    [child] = refine(parent, operation="refine", instruction="add a moon", mask=canvas_mask())
    assert child.status == "succeeded", child.error_message
    [edit] = server.edits
    assert "stream" not in edit["fields"] and "partial_images" not in edit["fields"]
    assert refining.preview(child.pk) is None
    assert Image.open(io.BytesIO(stored(child.image))).convert("RGB").getpixel((150, 150)) == EDIT_PAINT


# --- variations and references ------------------------------------------------------------------


def test_a_variation_is_an_edit_with_the_parents_prompt(parent, server, refine):
    [child] = refine(parent, operation="variations")
    assert child.status == "succeeded", child.error_message
    [edit] = server.edits
    assert edit["fields"]["prompt"] == f"{VARIATION_INSTRUCTION} A lighthouse at dusk"
    assert form_file(edit, "image")["data"] == stored(parent.image)
    assert not [f for f in edit["files"] if f["field"] == "mask"]
    assert (
        "OpenAI has no variations endpoint for GPT image models: sent as an edit" in child.provider_meta["adjustments"]
    )


def test_a_reference_goes_as_image_array_with_the_parents_style(parent, server, refine):
    parent.style = ImageStyle.objects.create(name="Ink", prompt_template="{prompt}, ink drawing")
    parent.save(update_fields=["style"])
    [child] = refine(parent, operation="reference", instruction="a harbour at dawn")
    assert child.status == "succeeded", child.error_message
    [edit] = server.edits
    assert edit["fields"]["prompt"] == "a harbour at dawn, ink drawing"
    [reference] = [f for f in edit["files"] if f["field"] == "image[]"]
    assert reference["data"] == stored(parent.image)


# --- refused before any money is spent ------------------------------------------------------------------


def test_openai_cannot_upscale_and_says_so_before_anything_is_sent(parent, server, refine):
    with pytest.raises(ValidationError) as caught:
        refine(parent, operation="upscale", scale=2, provider="openai")
    assert caught.value.message_dict["provider"] == [
        "OpenAI (openai) cannot upscale an image; use a provider with an upscale model (ComfyUI or Automatic1111)."
    ]
    assert server.requests == []


def test_input_fidelity_only_where_the_model_takes_it(parent, server, refine, configure):
    with pytest.raises(ValidationError) as caught:
        refine(parent, operation="refine", instruction="keep the face", mask=canvas_mask(), fidelity="high")
    assert caught.value.message_dict["provider"] == ["gpt-image-2 takes no input fidelity; leave fidelity empty."]
    assert server.requests == []

    # An operator whose model (a compatible server's) takes it says so in the table.
    configure(models={"gpt-image-2": {"input_fidelity": ["low", "high"]}})
    server.no_fidelity = set()
    assert refining.edit_options(parent, "openai")["fidelity"] == ["low", "high"]
    [child] = refine(parent, operation="refine", instruction="keep the face", mask=canvas_mask(), fidelity="high")
    assert child.status == "succeeded", child.error_message
    assert server.edits[0]["fields"]["input_fidelity"] == "high"
    assert child.provider_meta["edit"]["input_fidelity"] == "high"


def test_an_instruction_over_the_models_edit_limit_is_refused(parent, server, refine, configure):
    configure(models={"gpt-image-2": {"max_edit_prompt": 40}})
    with pytest.raises(ValidationError) as caught:
        refine(parent, operation="refine", instruction="x" * 41, mask=canvas_mask())
    assert caught.value.message_dict["provider"] == [
        "The instruction is 41 characters; gpt-image-2 takes at most 40 for an edit."
    ]
    assert server.requests == []


def test_a_safety_block_on_an_edit_fails_permanently(parent, server, refine):
    server.script("moderation_blocked")
    [child] = refine(parent, operation="refine", instruction="x", mask=canvas_mask())
    assert (child.status, child.error_kind) == ("failed", "permanent")
    assert "safety system blocked" in child.error_message
    assert len(server.edits) == 1


def test_auto_sends_an_edit_to_openai_when_the_first_provider_cannot(parent, server, refine, settings):
    settings.BLOGIMAGES_ENABLE_CLOUD_APIS = True
    # auto's order starts with "placeholder": here one without edits.
    settings.BLOGIMAGES_PROVIDERS = {
        **settings.BLOGIMAGES_PROVIDERS,
        "placeholder": {"BACKEND": "tests.test_refine.NoEditsProvider", "OPTIONS": {}},
    }
    [child] = refine(parent, operation="refine", instruction="add gulls", mask=canvas_mask(), provider="auto")
    assert child.status == "succeeded", child.error_message
    assert (child.provider, child.provider_used) == ("auto", "openai")
    assert len(server.edits) == 1


# --- the mask and the table ----------------------------------------------------------------------------


def test_openai_mask_inverts_white_to_transparent():
    grey = Image.new("L", (32, 16), 0)
    ImageDraw.Draw(grey).rectangle((0, 0, 7, 7), fill=255)
    buffer = io.BytesIO()
    grey.save(buffer, format="PNG")
    converted = Image.open(io.BytesIO(openai_mask(buffer.getvalue())))
    assert (converted.mode, converted.size) == ("RGBA", (32, 16))
    assert converted.getpixel((3, 3))[3] == 0 and converted.getpixel((20, 10))[3] == 255


def test_the_table_knows_edits_and_refuses_bad_entries():
    table = build_table({})
    assert table["gpt-image-2"].edits and table["gpt-image-2"].partial_images == 3
    assert table["gpt-image-2"].input_fidelity == ()
    assert table["gpt-image-1.5"].input_fidelity == ("low", "high")
    assert table["gpt-image-1-mini"].input_fidelity == ("low",)
    assert not table["dall-e-3"].edits
    with pytest.raises(ImproperlyConfigured, match="partial_images must be a whole number from 0 to 3"):
        build_table({"gpt-image-2": {"partial_images": 5}})
    with pytest.raises(ImproperlyConfigured, match="input_fidelity must be a list"):
        build_table({"gpt-image-2": {"input_fidelity": "high"}})
