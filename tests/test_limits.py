"""Limits checked once (blogimages.limits): sizes, steps, guidance, seeds, prompt lengths,
extra settings and provider names are refused the same way by the admin (the models'
clean()), the playground form, the JSON API, the service layer and the legacy parser."""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import ValidationError

from blogimages import limits, services
from blogimages.legacy import parse_legacy_text
from blogimages.models import ImageFormat, ImageGenerationResult, ImagePromptExample, ImageSetting

pytestmark = pytest.mark.django_db

SETTING_ADD = "/admin/blogimages/imagesetting/add/"
SETTING_LIST = "/admin/blogimages/imagesetting/"
FORMAT_ADD = "/admin/blogimages/imageformat/add/"
EXAMPLE_ADD = "/admin/blogimages/imagepromptexample/add/"
EXAMPLE_LIST = "/admin/blogimages/imagepromptexample/"
PLAYGROUND = "/admin/blogimages/imagegenerationresult/playground/"
GENERATE = "/api/v1/images/generate"
BASE = "blogimages.providers.placeholder.PlaceholderProvider"


@pytest.fixture(autouse=True)
def two_providers(settings):
    settings.BLOGIMAGES_PROVIDERS = {
        "placeholder": {"BACKEND": BASE, "OPTIONS": {"delay": 0.0}},
        "comfyui": {"BACKEND": BASE, "OPTIONS": {"delay": 0.0}},
    }


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


def setting_form(**values) -> dict:
    form = {
        "name": "Hero",
        "provider": "",
        "model": "",
        "width": "",
        "height": "",
        "steps": "",
        "guidance_scale": "",
        "sampler": "",
        "scheduler": "",
        "seed": "",
        "negative_prompt": "",
        "extra_settings": "{}",
    }
    return {**form, **{k: str(v) for k, v in values.items()}}


def form_errors(response) -> dict[str, list[str]]:
    assert response.status_code == 200, "the form was accepted"
    form = response.context["adminform"].form
    return {name: [str(m) for m in messages] for name, messages in form.errors.items()}


# --- admin: image settings --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("width", "height", "expected"),
    [
        (99999, 7, {"width": "Width 99999 is outside 64..4096.", "height": "Height 7 is outside 64..4096."}),
        (65, 100, {"width": "Width 65 is not a multiple of 8.", "height": "Height 100 is not a multiple of 8."}),
    ],
)
def test_admin_refuses_a_setting_size_out_of_bounds(admin_client, width, height, expected):
    errors = form_errors(admin_client.post(SETTING_ADD, setting_form(width=width, height=height)))
    assert {name: errors[name] for name in expected} == {name: [message] for name, message in expected.items()}
    assert not ImageSetting.objects.exists()


def test_admin_refuses_steps_guidance_and_seed_out_of_bounds(admin_client):
    response = admin_client.post(SETTING_ADD, setting_form(steps=500, guidance_scale=31, seed=-2))
    errors = form_errors(response)
    assert errors["steps"] == ["Steps 500 is outside 1..200."]
    assert errors["guidance_scale"] == ["Guidance scale 31 is outside 0..30."]
    assert errors["seed"] == ["Seed -2 is outside 0..9223372036854775807."]
    assert not ImageSetting.objects.exists()


def test_admin_saves_a_setting_within_bounds(admin_client):
    response = admin_client.post(
        SETTING_ADD,
        setting_form(width=1344, height=768, steps=30, provider="comfyui", extra_settings='{"clip_skip": 2}'),
    )
    assert response.status_code == 302
    setting = ImageSetting.objects.get()
    assert (setting.width, setting.height, setting.provider, setting.extra_settings) == (
        1344,
        768,
        "comfyui",
        {"clip_skip": 2},
    )


@pytest.mark.parametrize("extra", ['["clip_skip", 2]', '"clip_skip"', "3"])
def test_admin_refuses_extra_settings_that_are_not_an_object(admin_client, extra):
    errors = form_errors(admin_client.post(SETTING_ADD, setting_form(extra_settings=extra)))
    assert errors["extra_settings"][0].startswith("Extra settings must be a JSON object such as")
    assert not ImageSetting.objects.exists()


def test_admin_refuses_an_unknown_provider_on_a_setting(admin_client):
    errors = form_errors(admin_client.post(SETTING_ADD, setting_form(provider="dalle")))
    assert errors["provider"] == [
        "Image setting 'Hero': provider 'dalle' is not in BLOGIMAGES_PROVIDERS (placeholder, comfyui)."
    ]


def test_admin_refuses_a_format_size_out_of_bounds(admin_client):
    response = admin_client.post(FORMAT_ADD, {"name": "Odd", "width": 99999, "height": 7, "description": ""})
    errors = form_errors(response)
    assert errors["width"] == ["Width 99999 is outside 64..4096."]
    assert errors["height"] == ["Height 7 is outside 64..4096."]
    assert not ImageFormat.objects.exists()


def test_settings_list_shows_a_bad_existing_row_instead_of_failing(admin_client, make_post):
    # Saved before the checks existed (or by code that skipped full_clean).
    bad = ImageSetting.objects.create(name="Old", provider="dalle", width=99999, extra_settings=["clip_skip", 2])
    ImageSetting.objects.create(name="Fine", width=1024, height=1024)
    response = admin_client.get(SETTING_LIST)
    assert response.status_code == 200
    page = response.content.decode()
    assert "Extra settings must be a JSON object such as" in page
    assert "Width 99999 is outside 64..4096." in page
    assert "Image setting &#x27;Old&#x27;: provider &#x27;dalle&#x27; is not in BLOGIMAGES_PROVIDERS" in page
    assert admin_client.get(f"{SETTING_LIST}{bad.pk}/change/").status_code == 200

    # Generating with it says which setting is wrong, before any row is made.
    with pytest.raises(ValidationError) as caught:
        services.request_generation(
            services.GenerationSpec(prompt="a lighthouse", setting=bad, providers=["placeholder"])
        )
    assert caught.value.message_dict["setting"][0].startswith("Image setting 'Old': Extra settings must be")
    assert not ImageGenerationResult.objects.exists()


# --- admin: prompt examples --------------------------------------------------------------------


def example_form(**values) -> dict:
    form = {"name": "Harbour", "prompt": "a harbour at dawn", "style": "", "image_format": "", "setting": ""}
    return {**form, "provider": "", "model": "", "notes": "", **values}


def test_admin_refuses_an_unknown_provider_on_a_prompt_example(admin_client):
    errors = form_errors(admin_client.post(EXAMPLE_ADD, example_form(provider="dalle")))
    assert errors["provider"] == [
        "Prompt example 'Harbour': provider 'dalle' is not in BLOGIMAGES_PROVIDERS (placeholder, comfyui)."
    ]
    assert not ImagePromptExample.objects.exists()
    assert admin_client.post(EXAMPLE_ADD, example_form(provider="comfyui")).status_code == 302


def test_admin_refuses_a_prompt_example_over_the_prompt_limit(admin_client):
    errors = form_errors(admin_client.post(EXAMPLE_ADD, example_form(prompt="x" * (limits.PROMPT_MAX + 1))))
    assert errors["prompt"] == [f"The prompt is {limits.PROMPT_MAX + 1} characters; the limit is {limits.PROMPT_MAX}."]


def test_a_saved_unknown_provider_fails_naming_where_it_came_from(admin_client):
    setting = ImageSetting.objects.create(name="Hero", provider="dalle")
    example = ImagePromptExample.objects.create(name="Harbour", prompt="a harbour", provider="midjourney")
    with pytest.raises(ValidationError) as caught:
        services.request_generation(services.GenerationSpec(prompt_example=example))
    assert caught.value.message_dict["provider"] == [
        "Prompt example 'Harbour': provider 'midjourney' is not in BLOGIMAGES_PROVIDERS (placeholder, comfyui)."
    ]
    with pytest.raises(ValidationError) as caught:
        services.request_generation(services.GenerationSpec(prompt="a harbour", setting=setting))
    assert caught.value.message_dict["provider"] == [
        "Image setting 'Hero': provider 'dalle' is not in BLOGIMAGES_PROVIDERS (placeholder, comfyui)."
    ]
    page = admin_client.get(EXAMPLE_LIST).content.decode()
    assert "provider &#x27;midjourney&#x27; is not in BLOGIMAGES_PROVIDERS" in page
    assert not ImageGenerationResult.objects.exists()


# --- the playground form ----------------------------------------------------------------------


def test_playground_takes_its_bounds_from_the_limits(admin_client):
    response = admin_client.post(
        PLAYGROUND, {"action": "generate", "prompt": "a lighthouse", "providers": ["placeholder"], "width": 4104}
    )
    assert response.status_code == 200
    assert response.context["form"].errors["width"] == ["Ensure this value is less than or equal to 4096."]
    assert 'max="4096"' in response.content.decode()
    assert not ImageGenerationResult.objects.exists()


# --- the JSON API ------------------------------------------------------------------------------


def post_json(client, body):
    return client.post(GENERATE, data=json.dumps(body), content_type="application/json")


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"width": 99999, "height": 7}, "width", "Width 99999 is outside 64..4096."),
        ({"width": 1024, "height": 4104}, "height", "Height 4104 is outside 64..4096."),
        ({"steps": 0}, "steps", "Steps 0 is outside 1..200."),
        ({"settings": {"steps": 201}}, "steps", "Steps 201 is outside 1..200."),
        ({"guidance_scale": 30.5}, "guidance_scale", "Guidance scale 30.5 is outside 0..30."),
        ({"seed": 2**63}, "seed", "Seed 9223372036854775808 is outside 0..9223372036854775807."),
        ({"seed": -1}, "seed", "Seed -1 is outside 0..9223372036854775807."),
        ({"prompt": "x" * 4001}, "prompt", "The prompt is 4001 characters; the limit is 4000."),
    ],
)
def test_api_answers_400_naming_the_field(admin_client, body, field, message):
    response = post_json(admin_client, {"prompt": "a lighthouse", "provider": "placeholder", **body})
    assert response.status_code == 400
    assert response.json()["errors"][field] == [message]
    assert not ImageGenerationResult.objects.exists()


def test_api_names_a_stored_setting_with_bad_extra_settings(admin_client):
    setting = ImageSetting.objects.create(name="Old", extra_settings=["clip_skip", 2])
    response = post_json(admin_client, {"prompt": "a lighthouse", "provider": "placeholder", "setting": setting.pk})
    assert response.status_code == 400
    assert response.json()["errors"]["setting"][0].startswith("Image setting 'Old': Extra settings must be")


# --- the legacy parser ----------------------------------------------------------------------------


def test_legacy_parser_reports_an_out_of_range_size_with_its_line():
    parsed = parse_legacy_text("99999x7, 30 steps")
    assert parsed.fields == {"steps": 30}
    assert parsed.warnings == [
        "Width 99999 is outside 64..4096; not applied.",
        "Height 7 is outside 64..4096; not applied.",
    ]

    parsed = parse_legacy_text("sampler: euler\nsize: 65x100\nsteps: 30")
    assert "width" not in parsed.fields and "height" not in parsed.fields
    assert parsed.warnings == [
        "Width 65 (line 2) is not a multiple of 8; not applied.",
        "Height 100 (line 2) is not a multiple of 8; not applied.",
    ]


def test_the_legacy_parser_and_the_models_share_the_limits():
    for name, limit in limits.NUMBERS.items():
        text = f"{name}: {limit.high + 1}"
        assert parse_legacy_text(text).warnings[0].endswith(f"is outside {limit.low}..{limit.high}; not applied.")
        with pytest.raises(ValidationError) as caught:
            ImageSetting(name="x", **{name: limit.high + 1}).clean()
        assert list(caught.value.message_dict) == [name]
