"""Refining a result (blogimages.refining): validation before anything is stored, lineage,
and the edit inputs reaching the provider through a real RQ worker.

``EchoEditProvider`` below is a small real provider (no HTTP): it records the edit it was
given and answers with the source resized to the request's size, the masked area painted
green, so the tests can see what reached it. Run with REDIS_URL=redis://127.0.0.1:6379/5.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.storage import default_storage
from django.urls import reverse
from PIL import Image, ImageDraw

from blogimages import refining, services
from blogimages.contract import GeneratedImage
from blogimages.exceptions import InvalidTransition
from blogimages.models import ImageFormat, ImageGenerationResult, ReviewAction, ReviewEvent
from blogimages.providers.base import BaseProvider
from blogimages.providers.placeholder import PlaceholderProvider
from tests.conftest import generated_result

RECEIVED: list = []
GREEN = (0, 200, 0)


class EchoEditProvider(BaseProvider):
    """Does every edit offline: the source at the asked size, the mask's white area painted green."""

    label = "Echo edits"
    kind = "echo"
    operations = frozenset({"refine", "variations", "upscale", "reference"})
    default_options = {"max_instruction": 200}

    def edit_refusal(self, request):
        refusal = super().edit_refusal(request)
        limit = self.options["max_instruction"]
        if not refusal and request.edit is not None and len(request.prompt) > limit:
            return f"The instruction is {len(request.prompt)} characters; {self.alias} takes at most {limit}."
        return refusal

    def generate(self, request, reporter):
        RECEIVED.append(request)
        edit = request.edit
        if edit is None:
            image = Image.new("RGB", (request.width, request.height), (90, 90, 90))
        else:
            image = Image.open(io.BytesIO(edit.source.content)).convert("RGB")
            if edit.mask is not None:
                mask = Image.open(io.BytesIO(edit.mask)).convert("L")
                image.paste(Image.new("RGB", image.size, GREEN), mask=mask)
            image = image.resize((request.width, request.height))
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        reporter.preview(buffer.getvalue())
        return GeneratedImage(content=buffer.getvalue(), seed=11, model="echo", provider=self.alias)


ECHO = {"BACKEND": "tests.test_refine.EchoEditProvider", "OPTIONS": {}}


class NoEditsProvider(PlaceholderProvider):
    """The placeholder without its edits: here "placeholder" is a provider that cannot edit."""

    operations = frozenset()


@pytest.fixture(autouse=True)
def providers_for_edits(settings):
    RECEIVED.clear()
    settings.BLOGIMAGES_PROVIDERS = {
        "placeholder": {"BACKEND": "tests.test_refine.NoEditsProvider", "OPTIONS": {}},
        "echo": ECHO,
        "auto": {"BACKEND": "blogimages.providers.auto.AutoProvider", "OPTIONS": {"order": ["placeholder", "echo"]}},
    }
    settings.BLOGIMAGES_DEFAULT_PROVIDER = "placeholder"


@pytest.fixture(autouse=True)
def no_previews():
    """Result ids repeat between tests (each rolls back); previews in Redis must not."""

    def wipe():
        redis = refining._redis()
        for key in redis.scan_iter("blogimages:preview:*"):
            redis.delete(key)

    wipe()
    yield
    wipe()


@pytest.fixture
def section(make_post):
    return make_post(sections=1).sections.get()


@pytest.fixture
def parent(section):
    return generated_result(section, prompt="A lighthouse at dusk", width=64, height=48)


@pytest.fixture
def refine(django_capture_on_commit_callbacks):
    """refining.refine with its after-commit enqueue run."""

    def run(parent, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return refining.refine(parent, **kwargs)

    return run


def files(media_root: Path) -> list[str]:
    return sorted(str(p.relative_to(media_root)) for p in Path(media_root).rglob("*") if p.is_file())


def painted_mask(width=64, height=48, box=(8, 8, 24, 24), transparent=False) -> bytes:
    """White paint in ``box`` (None: none): on black, or on a transparent canvas (what a browser canvas gives)."""
    if transparent:
        image = Image.new("RGBA", (width, height), (0, 0, 0, 0))
        if box:
            ImageDraw.Draw(image).rectangle(box, fill=(255, 255, 255, 255))
    else:
        image = Image.new("L", (width, height), 0)
        if box:
            ImageDraw.Draw(image).rectangle(box, fill=255)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def image_of(fieldfile) -> Image.Image:
    with default_storage.open(fieldfile.name) as fh:
        image = Image.open(io.BytesIO(fh.read()))
        image.load()
        return image


# --- end to end through the worker ------------------------------------------------------------------


def test_a_refine_reaches_the_provider_with_source_mask_and_strength_and_keeps_its_lineage(
    parent, refine, run_worker, media_root
):
    with default_storage.open(parent.image.name) as fh:
        source_bytes = fh.read()

    [child] = refine(
        parent,
        operation="refine",
        instruction="make the sky stormier",
        mask=painted_mask(transparent=True),
        strength=0.6,
        provider="echo",
    )
    assert run_worker() == 1
    child.refresh_from_db()

    assert child.status == "succeeded", child.error_message
    assert (child.parent_id, child.operation, child.review_id) == (parent.pk, "refine", parent.review_id)
    assert (child.prompt, child.final_prompt, child.provider_used) == (
        "make the sky stormier",
        "make the sky stormier",
        "echo",
    )
    assert child.params["edit"] == {
        "operation": "refine",
        "parent": parent.pk,
        "strength": 0.6,
        "fidelity": "",
        "scale": None,
    }
    [request] = RECEIVED
    assert request.edit.operation == "refine"
    assert request.edit.source.content == source_bytes  # the parent's file as stored
    assert (request.edit.source.width, request.edit.source.height) == (64, 48)
    assert request.edit.strength == 0.6
    # The mask was normalised to an L-mode PNG, white where the paint was, and stored.
    mask = Image.open(io.BytesIO(request.edit.mask))
    assert (mask.mode, mask.size) == ("L", (64, 48))
    assert mask.getpixel((10, 10)) == 255 and mask.getpixel((40, 40)) == 0
    with default_storage.open(child.mask.name) as fh:
        assert fh.read() == request.edit.mask
    assert child.mask.name.split("/")[1] == "masks"
    # The provider painted the mask's area: the stored image shows it.
    stored = image_of(child.image).convert("RGB")
    assert stored.getpixel((10, 10)) == GREEN and stored.getpixel((40, 40)) != GREEN
    # The section's history says what it was made from.
    event = ReviewEvent.objects.get(result=child)
    assert (event.action, event.comment) == (ReviewAction.GENERATED, f"Refined from #{parent.pk}")
    # The provider's partial image is kept for the card, small.
    preview = refining.preview(child.pk)
    assert Image.open(io.BytesIO(preview)).format == "WEBP"
    assert refining.preview_count(child.pk) == 1


def test_variations_upscale_and_reference_each_reach_the_provider(parent, section, refine, run_worker):
    parent.image_format = ImageFormat.objects.create(name="Wide", width=128, height=96)
    parent.save(update_fields=["image_format"])

    [variation] = refine(parent, operation="variations", provider="echo")
    [to_format] = refine(parent, operation="upscale", provider="echo")
    [by_three] = refine(parent, operation="upscale", scale=3, provider="echo")
    [reference] = refine(parent, operation="reference", instruction="the same lighthouse by day", provider="echo")
    assert run_worker() == 4
    for result in (variation, to_format, by_three, reference):
        result.refresh_from_db()
        assert result.status == "succeeded", result.error_message
        assert result.parent_id == parent.pk

    operations = {request.edit.operation: request for request in RECEIVED}
    assert operations.keys() == {"variations", "upscale", "reference"}
    assert variation.prompt == parent.prompt and variation.final_prompt == parent.final_prompt
    assert (to_format.width, to_format.height) == (128, 96)  # the parent's format's size
    assert (by_three.width, by_three.height) == (192, 144)
    assert by_three.params["edit"]["scale"] == 3.0
    assert reference.prompt == "the same lighthouse by day"
    assert all(request.edit.mask is None for request in RECEIVED)


# --- bad input: a sentence naming the field, nothing stored -------------------------------------------


def _delete_parent_file(parent):
    default_storage.delete(parent.image.name)


def _fail_parent(parent):
    ImageGenerationResult.objects.filter(pk=parent.pk).update(status="failed")


BAD = [
    ("parent", {"operation": "refine", "instruction": "x"}, _delete_parent_file, "no longer in storage"),
    ("parent", {"operation": "refine", "instruction": "x"}, _fail_parent, "has no finished image"),
    ("operation", {"operation": "explode"}, None, "Unknown operation 'explode'"),
    ("instruction", {"operation": "refine"}, None, "instruction is required to refine an image"),
    ("instruction", {"operation": "reference", "instruction": "  "}, None, "write the new prompt"),
    ("instruction", {"operation": "upscale", "instruction": "bigger"}, None, "not used to upscale"),
    ("provider", {"operation": "refine", "instruction": "x" * 201}, None, "echo takes at most 200"),
    ("mask", {"operation": "refine", "instruction": "x", "mask": painted_mask(65, 48)}, None, "must be the size"),
    (
        "mask",
        {"operation": "refine", "instruction": "x", "mask": painted_mask(box=None)},
        None,
        "all black",
    ),
    ("mask", {"operation": "refine", "instruction": "x", "mask": b"<svg/>"}, None, "not a readable"),
    ("mask", {"operation": "upscale", "mask": painted_mask()}, None, "not used to upscale"),
    ("strength", {"operation": "refine", "instruction": "x", "strength": 1.5}, None, "outside 0..1"),
    ("strength", {"operation": "refine", "instruction": "x", "strength": "lots"}, None, "must be a number"),
    ("scale", {"operation": "upscale", "scale": 0.5}, None, "above 1 and at most 4"),
    ("scale", {"operation": "upscale", "scale": 5}, None, "above 1 and at most 4"),
    ("scale", {"operation": "refine", "instruction": "x", "scale": 2}, None, "only used to upscale"),
    ("fidelity", {"operation": "refine", "instruction": "x", "fidelity": "ultra"}, None, "low, high"),
    ("candidates", {"operation": "variations", "candidates": 0}, None, "candidates"),
]


@pytest.mark.parametrize("field,kwargs,spoil,words", BAD, ids=[f"{b[0]}-{i}" for i, b in enumerate(BAD)])
def test_bad_input_is_one_sentence_naming_the_field_and_stores_nothing(
    parent, refine, rq_queue, media_root, field, kwargs, spoil, words
):
    if spoil:
        spoil(parent)
    before_files, before_rows = files(media_root), ImageGenerationResult.objects.count()
    before_events = ReviewEvent.objects.count()
    with pytest.raises(ValidationError) as caught:
        refine(parent, provider=kwargs.pop("provider", "echo"), **kwargs)
    messages = caught.value.message_dict
    assert field in messages, messages
    assert words in " ".join(messages[field])
    assert files(media_root) == before_files
    assert ImageGenerationResult.objects.count() == before_rows
    assert ReviewEvent.objects.count() == before_events
    assert rq_queue.count == 0


def test_a_source_over_the_size_limit_is_refused(section, refine, media_root):
    huge = generated_result(section, prompt="p", width=4100, height=16)
    before = files(media_root)
    with pytest.raises(ValidationError) as caught:
        refine(huge, operation="variations", provider="echo")
    assert "4100x16 pixels" in caught.value.message_dict["parent"][0]
    assert files(media_root) == before


def test_an_upscale_past_the_size_limit_is_refused(section, refine):
    big = generated_result(section, prompt="p", width=1500, height=1000)
    with pytest.raises(ValidationError) as caught:
        refine(big, operation="upscale", scale=3, provider="echo")
    assert caught.value.message_dict["scale"] == ["Upscaling 1500x1000 by 3 gives 4500x3000; the limit is 4096x4096."]


def test_a_provider_that_cannot_is_named_before_anything_is_queued(parent, refine, media_root):
    with pytest.raises(ValidationError) as caught:
        refine(parent, operation="refine", instruction="x", mask=painted_mask(), provider="placeholder")
    assert caught.value.message_dict["provider"] == [
        "Placeholder (offline) (placeholder) cannot refine an image; it can do: no edits."
    ]
    assert files(media_root) == [parent.image.name]


def test_a_user_who_may_not_generate_is_refused(parent, refine, make_editor, media_root):
    viewer = make_editor("viewer")
    with pytest.raises(PermissionDenied):
        refine(parent, operation="variations", provider="echo", user=viewer)
    assert ImageGenerationResult.objects.count() == 1


# --- auto ----------------------------------------------------------------------------------------------


def test_auto_chooses_a_provider_that_can(parent, refine, run_worker):
    # The parent's provider (placeholder) cannot edit: the default is auto, which skips it.
    [child] = refine(parent, operation="refine", instruction="add a moon", mask=painted_mask())
    assert child.provider == "auto"
    run_worker()
    child.refresh_from_db()
    assert child.status == "succeeded", child.error_message
    assert child.provider_used == "echo"
    assert "cannot do this" in child.provider_meta["auto_skipped"]["placeholder"]
    assert RECEIVED[0].edit.mask is not None


def test_auto_says_why_when_no_candidate_can(parent, refine, settings):
    settings.BLOGIMAGES_PROVIDERS = {
        **settings.BLOGIMAGES_PROVIDERS,
        "auto": {"BACKEND": "blogimages.providers.auto.AutoProvider", "OPTIONS": {"order": ["placeholder"]}},
    }
    with pytest.raises(ValidationError) as caught:
        refine(parent, operation="upscale", provider="auto")
    [message] = caught.value.message_dict["provider"]
    assert message.startswith("No provider that auto may use can upscale this image (placeholder: ")


# --- lineage: approve, refine again, regenerate ----------------------------------------------------------


def test_each_step_can_be_approved_refined_again_and_regenerated(
    parent, refine, run_worker, approve, django_capture_on_commit_callbacks, media_root
):
    [child] = refine(parent, operation="refine", instruction="stormier", mask=painted_mask(), provider="echo")
    run_worker()
    child.refresh_from_db()
    review = approve(child)
    assert review.approved_result_id == child.pk

    [grandchild] = refine(child, operation="upscale", scale=2, provider="echo")
    run_worker()
    grandchild.refresh_from_db()
    assert grandchild.status == "succeeded"
    assert [r.pk for r in refining.lineage(grandchild)] == [parent.pk, child.pk, grandchild.pk]
    assert [r.pk for r in services.lineage(parent)] == [parent.pk]

    # Regenerating the refined step re-runs the same edit from the same parent, mask included.
    RECEIVED.clear()
    with django_capture_on_commit_callbacks(execute=True):
        again = services.regenerate(child)
    assert (again.parent_id, again.operation) == (parent.pk, "refine")
    assert again.mask.name and again.mask.name != child.mask.name
    run_worker()
    again.refresh_from_db()
    assert again.status == "succeeded", again.error_message
    [request] = RECEIVED
    with default_storage.open(parent.image.name) as fh:
        assert request.edit.source.content == fh.read()
    with default_storage.open(child.mask.name) as fh:
        assert request.edit.mask == fh.read()
    assert request.prompt == f"{parent.final_prompt}, stormier"  # echo draws descriptions


def test_regenerating_a_step_whose_parent_was_deleted_is_refused(parent, refine, run_worker, media_root):
    [child] = refine(parent, operation="variations", provider="echo")
    run_worker()
    ImageGenerationResult.objects.filter(pk=parent.pk).delete()
    child.refresh_from_db()
    before = files(media_root)
    with pytest.raises(InvalidTransition, match="has been deleted"):
        services.regenerate(child)
    assert files(media_root) == before


def test_a_parent_whose_file_vanished_after_queueing_fails_permanently(parent, refine, run_worker):
    [child] = refine(parent, operation="variations", provider="echo")
    default_storage.delete(parent.image.name)
    run_worker()
    child.refresh_from_db()
    assert (child.status, child.error_kind) == ("failed", "permanent")
    assert child.error_message == f"The image of result #{parent.pk} is no longer in storage; it cannot be refined."
    assert RECEIVED == []


def test_deleting_a_refined_result_deletes_its_mask(
    parent, refine, run_worker, admin_user, rf, django_capture_on_commit_callbacks, media_root
):
    from django.contrib import admin

    [child] = refine(parent, operation="refine", instruction="x", mask=painted_mask(), provider="echo")
    run_worker()
    child.refresh_from_db()
    mask_name = child.mask.name
    assert default_storage.exists(mask_name)
    request = rf.post("/")
    request.user = admin_user
    with django_capture_on_commit_callbacks(execute=True):
        admin.site._registry[ImageGenerationResult].delete_model(request, child)
    assert not default_storage.exists(mask_name)
    assert files(media_root) == [parent.image.name]


def test_cleaning_up_a_removed_section_deletes_the_masks_too(
    parent, section, refine, run_worker, django_capture_on_commit_callbacks, media_root
):
    [child] = refine(parent, operation="refine", instruction="x", mask=painted_mask(), provider="echo")
    run_worker()
    child.refresh_from_db()
    assert child.mask.name in files(media_root)
    section.delete()
    with django_capture_on_commit_callbacks(execute=True):
        assert services.delete_removed_section(child.review) == 2
    assert files(media_root) == []


def test_a_repeated_idempotency_key_gets_the_first_results_and_stores_one_mask(parent, refine, media_root, admin_user):
    ask = dict(operation="refine", instruction="x", provider="echo", idempotency_key="k1", user=admin_user)
    first = refine(parent, mask=painted_mask(), **ask)
    again = refine(parent, mask=painted_mask(), **ask)
    assert [r.pk for r in again] == [r.pk for r in first]
    assert again[0].repeated
    assert len([name for name in files(media_root) if "/masks/" in name]) == 1


def test_candidates_each_get_their_own_mask_file(parent, refine, media_root):
    results = refine(parent, operation="refine", instruction="x", mask=painted_mask(), provider="echo", candidates=3)
    assert len({r.mask.name for r in results}) == 3
    assert len({r.group for r in results}) == 1


def test_edit_options_say_what_each_provider_can(parent):
    echo = refining.edit_options(parent, "echo")
    assert echo["operations"] == {"refine": "", "variations": "", "upscale": "", "reference": ""}
    assert echo["strength"] is True
    placeholder = refining.edit_options(parent, "placeholder")
    assert all("cannot" in why for why in placeholder["operations"].values())
    # The default (the parent's provider, placeholder, cannot) falls back to auto.
    assert refining.edit_options(parent)["operations"]["refine"] == ""


def test_mask_normalisation():
    painted = refining.normalise_mask(painted_mask(transparent=True), (64, 48))
    image = Image.open(io.BytesIO(painted))
    assert (image.format, image.mode) == ("PNG", "L")
    assert set(image.get_flattened_data()) == {0, 255}
    assert image.getpixel((8, 8)) == 255 and image.getpixel((30, 30)) == 0


# --- the API -----------------------------------------------------------------------------------------------


@pytest.fixture
def api_client(client, admin_user):
    client.force_login(admin_user)
    return client


def test_api_refine_with_a_mask_file_and_the_preview(
    parent, api_client, run_worker, django_capture_on_commit_callbacks
):
    url = reverse("blogimages:api-result-refine", args=[parent.pk])
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client.post(
            url,
            {
                "operation": "refine",
                "instruction": "add a moon",
                "strength": "0.4",
                "provider": "echo",
                "mask": io.BytesIO(painted_mask()),
            },
        )
    assert response.status_code == 202, response.content
    [queued] = response.json()["results"]
    child = ImageGenerationResult.objects.get(pk=queued["id"])
    assert (child.parent_id, child.params["edit"]["strength"], bool(child.mask)) == (parent.pk, 0.4, True)

    preview_url = reverse("blogimages:api-result-preview", args=[child.pk])
    assert api_client.get(preview_url).status_code == 404  # nothing yet
    run_worker()
    response = api_client.get(preview_url)
    assert response.status_code == 200
    assert response["Content-Type"] == "image/webp"
    assert response["X-Preview-Count"] == "1"
    assert Image.open(io.BytesIO(response.content)).size == (64, 48)


def test_api_refine_json_errors_name_the_field(parent, api_client, media_root):
    url = reverse("blogimages:api-result-refine", args=[parent.pk])
    before = files(media_root)
    response = api_client.post(
        url,
        json.dumps(
            {"operation": "refine", "instruction": "x", "mask": "data:image/png;base64,AAAA", "provider": "echo"}
        ),
        content_type="application/json",
    )
    assert response.status_code == 400
    assert "mask" in response.json()["errors"]
    response = api_client.post(url, json.dumps({"operation": "upscale", "scale": 9}), content_type="application/json")
    assert response.status_code == 400
    assert response.json()["errors"]["scale"] == ["The upscale factor 9 must be above 1 and at most 4."]
    assert (
        api_client.post(
            reverse("blogimages:api-result-refine", args=[999999]), "{}", content_type="application/json"
        ).status_code
        == 404
    )
    assert files(media_root) == before


def test_the_shipped_placeholder_refines_offline(parent, refine, run_worker, settings):
    settings.BLOGIMAGES_PROVIDERS = {
        **settings.BLOGIMAGES_PROVIDERS,
        "placeholder": {"BACKEND": "blogimages.providers.placeholder.PlaceholderProvider", "OPTIONS": {}},
    }
    [refined] = refine(parent, operation="refine", instruction="add a moon", mask=painted_mask())
    [bigger] = refine(parent, operation="upscale", scale=2)
    run_worker()
    refined.refresh_from_db()
    bigger.refresh_from_db()
    assert (refined.status, bigger.status) == ("succeeded", "succeeded"), (refined.error_message, bigger.error_message)
    assert refined.provider_used == "placeholder"
    assert (bigger.width, bigger.height) == (parent.width * 2, parent.height * 2)
    with refined.image.open("rb") as stored:
        image = Image.open(io.BytesIO(stored.read())).convert("RGB")
    # The painted area (see painted_mask) is tinted; the rest is the parent's.
    assert image.getpixel((8, 8)) == (255, 0, 255)


def test_a_refine_instruction_follows_the_source_prompt_for_img2img_models(parent, refine, run_worker):
    [child] = refine(parent, operation="refine", instruction="make the sky stormier", provider="echo")
    run_worker()
    [received] = RECEIVED
    # echo (like A1111, ComfyUI, diffusers) draws what a prompt describes; OpenAI gets the instruction alone.
    assert received.prompt == f"{parent.final_prompt}, make the sky stormier"
    assert received.edit.source_prompt == parent.final_prompt
    child.refresh_from_db()
    assert child.final_prompt == "make the sky stormier"
