"""The prompt playground: compose, compare providers side by side, save, and reuse settings."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlparse

import pytest
from django.contrib.messages import get_messages

from blogimages.models import (
    ImageFormat,
    ImageGenerationResult,
    ImagePromptExample,
    ImageSetting,
    ImageStyle,
    ResultStatus,
)

pytestmark = pytest.mark.django_db

URL = "/admin/blogimages/imagegenerationresult/playground/"
BASE = "blogimages.providers.placeholder.PlaceholderProvider"


def texts(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


@pytest.fixture(autouse=True)
def two_providers(settings):
    settings.BLOGIMAGES_PROVIDERS = {
        "placeholder": {"BACKEND": BASE, "OPTIONS": {"delay": 0.0}},
        "sketch": {"BACKEND": BASE, "OPTIONS": {"delay": 0.0, "steps": 2}},
    }


@pytest.fixture
def library():
    style = ImageStyle.objects.create(name="Ink", prompt_template="{prompt}, ink drawing", negative_prompt="colour")
    fmt = ImageFormat.objects.create(name="Wide", width=768, height=432)
    setting = ImageSetting.objects.create(name="Quick", steps=12, guidance_scale=4.5, sampler="euler")
    return style, fmt, setting


@pytest.fixture
def generate(client, django_capture_on_commit_callbacks):
    def post(**data):
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(URL, {"action": "generate", **data})

    return post


def test_compare_two_providers_side_by_side(client, admin_user, library, generate, run_worker):
    style, fmt, setting = library
    client.force_login(admin_user)
    page = client.get(URL).content.decode()
    assert 'value="placeholder"' in page and 'value="sketch"' in page

    response = generate(
        prompt="A harbour at dawn",
        style=style.pk,
        image_format=fmt.pk,
        setting=setting.pk,
        providers=["placeholder", "sketch"],
        seed="42",
    )
    assert response.status_code == 302
    group = parse_qs(urlparse(response["Location"]).query)["group"][0]
    assert texts(response) == ["Queued 2 images side by side."]
    results = list(ImageGenerationResult.objects.order_by("id"))
    assert [r.provider for r in results] == ["placeholder", "sketch"]
    assert {str(r.group) for r in results} == {group}
    assert all(r.review_id is None and r.requested_by == admin_user for r in results)
    assert results[0].final_prompt == "A harbour at dawn, ink drawing"
    assert results[0].params["steps"] == 12 and results[0].params["width"] == 768 and results[0].seed == 42

    assert run_worker() == 2
    html = client.get(response["Location"]).content.decode()
    assert html.count('class="bi-card bi-card--wide bi-card--succeeded"') == 2
    for result in ImageGenerationResult.objects.all():
        assert f'src="{result.thumbnail.url}"' in html
    assert "768×432" in html and "Ink" in html and "Quick" in html
    assert 'data-bi-live="playground"' in html
    # The form shows the group's settings, both providers ticked.
    assert 'value="placeholder" id="id_providers_0" checked' in html
    assert 'value="sketch" id="id_providers_1" checked' in html


def test_status_endpoint_sends_progress_and_finished_cards(client, admin_user, generate, run_worker):
    client.force_login(admin_user)
    location = generate(prompt="Fog", providers=["placeholder"])["Location"]
    group = parse_qs(urlparse(location).query)["group"][0]
    data = json.loads(client.get(URL + "status/", {"group": group}).content)
    assert data["active"] is True and data["results"][0]["status"] == "queued"
    run_worker()
    data = json.loads(client.get(URL + "status/", {"group": group}).content)
    (row,) = data["results"]
    assert data["active"] is False and row["status"] == "succeeded" and row["progress"] == 100
    assert '<img src="/media/blogimages/thumbnails/' in row["html"]
    assert json.loads(client.get(URL + "status/", {"group": "nonsense"}).content) == {"active": False, "results": []}


def test_save_the_combination_as_a_prompt_example(client, admin_user, library):
    style, fmt, setting = library
    client.force_login(admin_user)
    data = {
        "action": "save",
        "prompt": "Lanterns",
        "style": style.pk,
        "image_format": fmt.pk,
        "setting": setting.pk,
        "providers": ["sketch"],
        "model": "",
        "example_name": "Lantern ink",
    }
    response = client.post(URL, data)
    assert response.status_code == 302
    example = ImagePromptExample.objects.get(name="Lantern ink")
    assert (example.prompt, example.style, example.image_format, example.setting, example.provider) == (
        "Lanterns",
        style,
        fmt,
        setting,
        "sketch",
    )
    assert example.created_by == admin_user
    assert response["Location"].endswith(f"?example={example.pk}")
    assert not ImageGenerationResult.objects.exists()  # saving generates nothing

    again = client.post(URL, data)
    assert "A prompt example named “Lantern ink” already exists." in again.content.decode()
    unnamed = client.post(URL, {**data, "example_name": ""})
    assert "This field is required." in unnamed.content.decode()

    # Opening the example fills the form.
    html = client.get(URL, {"example": example.pk}).content.decode()
    assert "Lanterns</textarea>" in html and 'value="sketch" id="id_providers_1" checked' in html


def test_save_with_advanced_values_warns_they_are_not_kept(client, admin_user):
    client.force_login(admin_user)
    response = client.post(
        URL,
        {
            "action": "save",
            "prompt": "Kites",
            "providers": ["placeholder", "sketch"],
            "seed": "5",
            "example_name": "Kites",
        },
        follow=True,
    )
    messages = texts(response)
    example = ImagePromptExample.objects.get(name="Kites")
    change_url = f"/admin/blogimages/imagepromptexample/{example.pk}/change/"
    assert messages[0] == f'Saved the prompt example <a href="{change_url}">Kites</a>.'

    assert "the advanced values (seed, size, steps…) belong in an image setting" in messages[1]
    assert example.provider == ""  # two providers: none pinned


def test_use_these_settings_again_reproduces_the_request(client, admin_user, library, generate, run_worker):
    style, fmt, setting = library
    client.force_login(admin_user)
    generate(
        prompt="Gulls",
        style=style.pk,
        image_format=fmt.pk,
        setting=setting.pk,
        providers=["sketch"],
        steps="30",
        negative_prompt="text, watermark",
    )
    run_worker()
    original = ImageGenerationResult.objects.get()
    assert original.status == ResultStatus.SUCCEEDED and original.seed is not None

    page = client.get(URL, {"from": original.pk})
    form = page.context["form"]
    initial = form.initial
    assert initial["prompt"] == "Gulls" and initial["providers"] == ["sketch"]
    assert (initial["style"], initial["image_format"], initial["setting"]) == (style.pk, fmt.pk, setting.pk)
    assert initial["seed"] == original.seed
    assert initial["steps"] == 30 and initial["negative_prompt"] == "text, watermark"
    assert "width" not in initial and "guidance_scale" not in initial  # the same as the format and setting give

    # Sending the prefilled form back asks for exactly the same thing.
    data = {k: v for k, v in initial.items() if v is not None}
    generate(**data)
    copy = ImageGenerationResult.objects.latest("id")
    assert copy.params == original.params | {"seed": original.seed}
    assert (copy.final_prompt, copy.provider, copy.seed) == (original.final_prompt, "sketch", original.seed)
    run_worker()
    copy.refresh_from_db()
    assert copy.checksum == original.checksum  # the placeholder is deterministic: the same image


def test_unknown_result_to_copy_is_one_clear_message(client, admin_user):
    client.force_login(admin_user)
    response = client.get(URL, {"from": "999"})
    assert texts(response) == ["There is no result #999 to copy."]


@pytest.mark.parametrize(
    "data, error",
    [
        ({"prompt": "x"}, "This field is required."),
        ({"prompt": "x", "providers": ["nope"]}, "Select a valid choice. nope is not one of the available choices."),
        ({"prompt": "x", "providers": ["sketch"], "width": "10"}, "Ensure this value is greater than or equal to 64."),
        ({"prompt": "", "providers": ["sketch"]}, "This field is required."),
    ],
)
def test_bad_input_names_the_field_and_queues_nothing(client, admin_user, generate, data, error):
    client.force_login(admin_user)
    response = generate(**data)
    assert response.status_code == 200
    assert error in response.content.decode()
    assert not ImageGenerationResult.objects.exists()


def test_a_broken_style_is_reported_on_the_form(client, admin_user, generate):
    broken = ImageStyle.objects.create(name="Broken", loras=[{"strength": 1}])  # saved without clean()
    client.force_login(admin_user)
    response = generate(prompt="x", providers=["sketch"], style=broken.pk)
    assert "LoRA 1 needs a &#x27;name&#x27;" in response.content.decode()
    assert not ImageGenerationResult.objects.exists()


def test_permissions(client, make_editor, generate):
    viewer = make_editor("viewer")
    client.force_login(viewer)
    html = client.get(URL).content.decode()
    assert 'value="generate"' not in html and 'value="save"' not in html
    assert generate(prompt="x", providers=["sketch"]).status_code == 403
    assert (
        client.post(URL, {"action": "save", "prompt": "x", "providers": ["sketch"], "example_name": "n"}).status_code
        == 403
    )
    assert not ImageGenerationResult.objects.exists() and not ImagePromptExample.objects.exists()

    client.force_login(make_editor("maker", perms=["generate_images", "add_imagepromptexample"]))
    html = client.get(URL).content.decode()
    assert 'value="generate"' in html and 'value="save"' in html

    outsider = make_editor("outsider")
    outsider.user_permissions.clear()
    client.force_login(outsider)
    assert client.get(URL).status_code == 403


def test_models_endpoint_lists_the_chosen_providers_models(client, admin_user):
    client.force_login(admin_user)
    data = json.loads(client.get(URL + "models/", {"provider": ["sketch", "unknown"]}).content)
    assert data == {"models": {"sketch": ["placeholder"]}, "errors": {}}


def test_recent_comparisons_are_listed(client, admin_user, generate):
    client.force_login(admin_user)
    generate(prompt="First idea", providers=["sketch"])
    generate(prompt="Second idea", providers=["sketch", "placeholder"])
    html = client.get(URL).content.decode()
    assert html.index("Second idea") < html.index("First idea")
    assert "2 images" in html


# --- one seed per comparison; sending a result to a section (issue 11) ------------------------------


def test_a_comparison_shares_one_seed_unless_pinned(client, admin_user, generate, run_worker):
    client.force_login(admin_user)
    generate(prompt="A harbour at dawn", providers=["placeholder", "sketch"])
    first = list(ImageGenerationResult.objects.order_by("id"))
    assert len({r.seed for r in first}) == 1 and first[0].seed is not None
    assert all(r.params["seed"] == first[0].seed for r in first)
    generate(prompt="A harbour at dusk", providers=["placeholder", "sketch"])
    second = list(ImageGenerationResult.objects.order_by("id"))[2:]
    assert len({r.seed for r in second}) == 1 and second[0].seed != first[0].seed  # a new draw each time
    generate(prompt="Pinned", providers=["placeholder", "sketch"], seed="7")
    assert {r.seed for r in ImageGenerationResult.objects.filter(prompt="Pinned")} == {7}
    generate(prompt="Alone", providers=["placeholder"])
    alone = ImageGenerationResult.objects.get(prompt="Alone")
    assert alone.seed is None  # one provider: the job draws it, as before
    run_worker()
    assert len({r.seed for r in ImageGenerationResult.objects.filter(prompt="A harbour at dawn")}) == 1


def test_cards_carry_the_viewer_tools(client, admin_user, generate, run_worker):
    client.force_login(admin_user)
    location = generate(prompt="Fog", providers=["placeholder", "sketch"])["Location"]
    run_worker()
    html = client.get(location).content.decode()
    assert 'id="bi-viewer-template"' in html and "blogimages/viewer.js" in html
    for result in ImageGenerationResult.objects.all():
        assert f'data-bi-view="{result.pk}"' in html
        assert f'data-bi-send="{result.pk}"' in html  # a playground image may be sent to a section
        assert f'data-bi-open="{result.pk}" data-bi-mode="refine"' in html
        assert f'data-group="{result.group}"' in html


def test_send_a_playground_result_to_a_section(client, admin_user, make_post, generate, run_worker):
    from blogimages.hosts import get_host
    from blogimages.models import ReviewAction, ReviewEvent

    client.force_login(admin_user)
    generate(prompt="Cliffs", providers=["sketch"], seed="11")
    run_worker()
    result = ImageGenerationResult.objects.get()
    post = make_post(sections=2, title="Cornish coast")
    section = get_host().sections(post)[1]
    base = "/admin/blogimages/imagegenerationresult/viewer/"

    found = json.loads(client.get(base + "posts/", {"q": "cornish"}).content)["posts"]
    assert [p["title"] for p in found] == ["Cornish coast"]
    ref = found[0]["ref"]
    listed = json.loads(client.get(base + "sections/", {"post": ref}).content)["sections"]
    assert [s["title"] for s in listed] == ["Section 1", "Section 2"]

    # Bad input: a sentence naming what is missing, nothing changed.
    for data, words in (
        ({}, "Choose the post"),
        ({"post": "9999-1"}, "Choose the post"),
        ({"post": ref, "section": "nope"}, "Choose a section"),
    ):
        response = client.post(base + f"{result.pk}/attach/", data)
        assert response.status_code == 400 and words in json.loads(response.content)["error"]
    result.refresh_from_db()
    assert result.review_id is None

    response = client.post(base + f"{result.pk}/attach/", {"post": ref, "section": section.key})
    assert response.status_code == 200, response.content
    assert f"Sent image #{result.pk} to “Section 2” of “Cornish coast”" in json.loads(response.content)["message"]
    result.refresh_from_db()
    assert result.review.section_key == section.key and result.provider == "sketch" and result.seed == 11
    event = ReviewEvent.objects.get(review=result.review, result=result)
    assert event.action == ReviewAction.GENERATED and "sent from the playground" in event.comment
    # It is a candidate in that section's review, with its provenance.
    review = client.get(f"/admin/blog/post/{post.pk}/images/").content.decode()
    assert f'data-result="{result.pk}"' in review and "sketch" in review
    # Sent once: a second send is refused with a sentence.
    again = client.post(base + f"{result.pk}/attach/", {"post": ref, "section": section.key})
    assert again.status_code == 400 and "already belongs to a section" in json.loads(again.content)["error"]


def test_sending_needs_the_generate_permission(client, make_editor, make_post, generate, admin_user, run_worker):
    from blogimages.hosts import get_host

    client.force_login(admin_user)
    generate(prompt="Cliffs", providers=["sketch"])
    run_worker()
    result = ImageGenerationResult.objects.get()
    post = make_post(sections=1)
    from blogimages.admin_views.viewer import post_ref

    client.force_login(make_editor("looker"))
    response = client.post(
        f"/admin/blogimages/imagegenerationresult/viewer/{result.pk}/attach/",
        {"post": post_ref(post), "section": get_host().sections(post)[0].key},
    )
    assert response.status_code == 403
    result.refresh_from_db()
    assert result.review_id is None


# --- the viewer's refine endpoint (thin: refining.refine holds the rules) ------------------------------


def test_refine_options_and_refusals_are_sentences(client, admin_user, make_editor, generate, run_worker):
    client.force_login(admin_user)
    generate(prompt="Cliffs", providers=["placeholder"])
    run_worker()
    result = ImageGenerationResult.objects.get()
    base = f"/admin/blogimages/imagegenerationresult/viewer/{result.pk}/"

    options = json.loads(client.get(base + "options/").content)
    assert set(options["operations"]) == {"refine", "variations", "upscale", "reference"}
    assert options["providers"] == ["placeholder", "sketch"] and (options["width"], options["height"]) == (
        result.width,
        result.height,
    )
    assert client.get(base + "options/", {"provider": "nope"}).status_code == 400
    assert client.get("/admin/blogimages/imagegenerationresult/viewer/999999/options/").status_code == 404

    # Bad input: 400 with a sentence naming the field; nothing queued.
    for data, field in (
        ({"operation": "refine", "strength": "lots"}, "strength"),
        ({"operation": "upscale", "scale": "inf"}, "scale"),
        ({"operation": "refine", "candidates": "two"}, "candidates"),
        ({"operation": "explode"}, "operation"),
        ({"operation": "refine", "instruction": ""}, None),
    ):
        response = client.post(base + "refine/", data)
        assert response.status_code == 400, (data, response.content)
        answer = json.loads(response.content)
        assert answer["error"] and answer["error"].endswith(".")
        if field:
            assert field in answer["errors"], answer
    assert ImageGenerationResult.objects.count() == 1
    assert client.get(base + "refine/").status_code == 405

    # No generate permission: 403, nothing queued.
    client.force_login(make_editor("looker"))
    response = client.post(base + "refine/", {"operation": "variations"})
    assert response.status_code == 403 and json.loads(response.content)["error"]
    assert ImageGenerationResult.objects.count() == 1
