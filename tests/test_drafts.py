"""Prompts and alt text drafted by a text model (BLOGIMAGES_WRITER), against a local server that
speaks the chat completions protocol over real HTTP: what the request carries, that a draft
only ever lands in a field for the editor, what is saved once they confirm, errors, timeouts,
permissions, and that it is all off by default."""

from __future__ import annotations

import html
import io
import json
import socket

import pytest
from django.contrib.messages import get_messages
from django.core.checks import run_checks
from PIL import Image

from blogimages.hosts import get_host
from blogimages.models import (
    ImageFormat,
    ImageGenerationResult,
    ImagePromptExample,
    ImageSetting,
    ImageStyle,
    PostImageSettings,
    ResultStatus,
    ReviewStatus,
    SectionReview,
)
from tests.conftest import generated_result
from tests.servers.chat_completions import ChatCompletionsServer

# The browser test's fixtures (Chromium, a live RQ worker, slow placeholder providers).
from tests.test_browser import browser, live_worker, slow_placeholders, sqlite_lock_retry  # noqa: F401

pytestmark = pytest.mark.django_db

KEY = "sk-writer-test"
DRAFT = "A lighthouse on a cliff at dusk, waves below, warm light"
PROMPT_API = "/api/v1/drafts/prompt"
ALT_API = "/api/v1/drafts/alt-text"


def review_url(post) -> str:
    return f"/admin/blog/post/{post.pk}/images/"


def texts(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def png_file(size=(300, 200), colour=(200, 40, 40), name="harbour.png") -> io.BytesIO:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    buffer.seek(0)
    buffer.name = name
    return buffer


def close_to(colour, expected, slack=6) -> bool:
    return all(abs(a - b) <= slack for a, b in zip(colour, expected, strict=True))


@pytest.fixture
def writer_server(thread_server, settings):
    """A chat completions server, and BLOGIMAGES_WRITER pointing at it."""
    server = thread_server(ChatCompletionsServer(api_key=KEY))
    settings.BLOGIMAGES_WRITER = {
        "BASE_URL": server.url,
        "API_KEY": KEY,
        "MODEL": "text-model",
        "VISION_MODEL": "vision-model",
        "TIMEOUT": 10,
    }
    return server


@pytest.fixture
def coast_post(db):
    """A post whose three sections each say something of their own."""
    from project.blog.models import Post, Section

    post = Post.objects.create(title="The Cornish coast in winter", slug="cornish-coast")
    bodies = [
        ("Arriving at Penzance", "The sleeper train pulls in before dawn; the bay is grey and still."),
        ("St Michael's Mount", "At low tide a cobbled causeway leads across the sand to the castle on the rock."),
        ("Mousehole harbour", "Fishing boats lean on the mud inside the granite harbour walls."),
    ]
    for position, (heading, body) in enumerate(bodies):
        Section.objects.create(post=post, position=position, heading=heading, body=body)
    return post


def sections_of(post):
    """The post's sections as blogimages reads them (``.pk`` is the key, ``.text`` the body)."""
    return get_host().sections(post)


def draft(client, post, do, **data):
    response = client.post(review_url(post), {"do": do, **data}, HTTP_ACCEPT="application/json")
    return response.status_code, json.loads(response.content)


def api_post(client, path, body):
    return client.post(path, data=json.dumps(body), content_type="application/json")


# --- off by default ------------------------------------------------------------------------------


def test_off_by_default_no_buttons_and_a_clear_not_configured(client, admin_user, coast_post):
    client.force_login(admin_user)
    first = sections_of(coast_post)[0]
    page = client.get(review_url(coast_post)).content.decode()
    assert "Draft a prompt" not in page and "Draft alt text" not in page and "data-bi-draft" not in page
    # The prompt override and alt text fields are there: editors write by hand as before.
    assert f'id="bi-prompt-{first.pk}"' in page and f'id="bi-alt-{first.pk}"' in page

    status, body = draft(client, coast_post, "draft-prompt", section=first.pk)
    assert status == 404 and body["error"].startswith("Drafting is not configured: set BLOGIMAGES_WRITER")
    response = api_post(client, PROMPT_API, {"post": coast_post.pk, "section": str(first.pk)})
    assert response.status_code == 404 and "not configured" in response.json()["error"]
    assert not SectionReview.objects.exists() and not ImageGenerationResult.objects.exists()


# --- prompt drafts -------------------------------------------------------------------------------


def test_prompt_draft_carries_the_post_and_style_and_lands_only_in_the_field(
    client, admin_user, coast_post, writer_server
):
    style = ImageStyle.objects.create(
        name="Watercolour",
        prompt_template="{prompt}, watercolour, soft light",
        negative_prompt="people",
        description="Loose washes, pale winter colours.",
    )
    wide = ImageFormat.objects.create(name="Blog hero", width=1344, height=768)
    setting = ImageSetting.objects.create(name="Calm", negative_prompt="text, watermark")
    example = ImagePromptExample.objects.create(
        name="Coast", prompt="A quiet fishing village at first light", style=style, image_format=wide, setting=setting
    )
    PostImageSettings.objects.create(post=coast_post, prompt_example=example)
    first, middle, last = sections_of(coast_post)
    client.force_login(admin_user)

    page = client.get(review_url(coast_post)).content.decode()
    assert "Draft a prompt" in page
    assert 'data-bi-draft="bi-prompt-' in page and " hidden>" in page  # shown by the script only

    status, body = draft(client, coast_post, "draft-prompt", section=middle.pk)
    assert status == 200
    assert body == {"text": DRAFT, "model": "text-model"}  # the model's quotes are gone

    (sent,) = writer_server.completions
    assert sent["headers"]["authorization"] == f"Bearer {KEY}"
    assert sent["json"]["model"] == "text-model"
    assert [m["role"] for m in sent["json"]["messages"]] == ["system", "user"]
    said = writer_server.texts()
    for expected in (
        "The Cornish coast in winter",  # the post's title
        "St Michael's Mount",  # the section
        "a cobbled causeway leads across the sand",
        "Arriving at Penzance",  # its neighbours
        "the bay is grey and still",
        "Mousehole harbour",
        "Fishing boats lean on the mud",
        "Watercolour",  # the style's guidance
        "Loose washes, pale winter colours.",
        "{prompt}, watercolour, soft light",
        "1344x768",
        "people, text, watermark",
        "A quiet fishing village at first light",
    ):
        assert expected in said, expected

    # A draft is only an answer: nothing saved, nothing generated.
    assert not SectionReview.objects.exists()
    assert not ImageGenerationResult.objects.exists()


def test_generation_uses_the_prompt_the_editor_saved_never_the_unseen_draft(
    client, admin_user, coast_post, writer_server, django_capture_on_commit_callbacks
):
    first = sections_of(coast_post)[0]
    client.force_login(admin_user)
    status, body = draft(client, coast_post, "draft-prompt", section=first.pk)
    assert status == 200 and body["text"] == DRAFT

    # Generating before saving uses the section's own text: the draft went nowhere.
    with django_capture_on_commit_callbacks(execute=True):
        client.post(review_url(coast_post), {"do": "generate-section", "section": first.pk})
    (before,) = ImageGenerationResult.objects.all()
    assert before.prompt == first.text

    edited = DRAFT + ", a single gull overhead"
    data = {"do": "save-prompt", "section": first.pk, "prompt": edited}
    response = client.post(review_url(coast_post), data, follow=True)
    assert "Saved the prompt of “Arriving at Penzance”." in texts(response)
    assert SectionReview.objects.get(section_key=str(first.pk)).prompt_override == edited
    assert f">{edited}</textarea>" in response.content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        client.post(review_url(coast_post), {"do": "generate-section", "section": first.pk})
    after = ImageGenerationResult.objects.exclude(pk=before.pk).get()
    assert after.prompt == edited
    assert len(writer_server.completions) == 1  # generating asks the writer nothing


def test_prompt_draft_needs_the_generate_permission(client, make_editor, coast_post, writer_server):
    first = sections_of(coast_post)[0]
    reviewer = make_editor("reviewer", perms=["review_images"])
    client.force_login(reviewer)
    page = client.get(review_url(coast_post)).content.decode()
    assert "Draft a prompt" not in page and f'id="bi-prompt-{first.pk}"' not in page
    assert client.post(review_url(coast_post), {"do": "draft-prompt", "section": first.pk}).status_code == 403
    assert api_post(client, PROMPT_API, {"post": coast_post.pk, "section": str(first.pk)}).status_code == 403
    assert writer_server.completions == []


# --- alt text drafts -----------------------------------------------------------------------------


def test_alt_text_draft_sends_the_image_and_is_saved_only_at_approval(client, admin_user, coast_post, writer_server):
    middle = sections_of(coast_post)[1]
    result = generated_result(middle, colour=(30, 120, 200), width=64, height=48)
    client.force_login(admin_user)
    page = client.get(review_url(coast_post)).content.decode()
    assert f'value="draft-alt:{result.pk}"' in page and "Draft alt text" in page

    status, body = draft(client, coast_post, f"draft-alt:{result.pk}", section=middle.pk)
    assert status == 200 and body["model"] == "vision-model"
    assert body["text"].startswith("A picture 64 by 48 pixels, rgb(")

    (sent,) = writer_server.completions
    assert sent["json"]["model"] == "vision-model"
    user = sent["json"]["messages"][-1]["content"]
    assert [part["type"] for part in user] == ["text", "image_url"]
    assert user[1]["image_url"]["url"].startswith("data:image/")
    (image,) = writer_server.images()
    assert image.size == (64, 48) and close_to(image.convert("RGB").getpixel((32, 24)), (30, 120, 200))
    said = writer_server.texts()
    assert "The Cornish coast in winter" in said and "St Michael's Mount" in said and "causeway" in said

    review = SectionReview.objects.get(pk=result.review_id)
    assert review.alt_text == "" and review.status == ReviewStatus.PENDING  # nothing saved yet

    confirmed = "The castle on St Michael's Mount across a blue bay at low tide"
    response = client.post(
        review_url(coast_post),
        {"do": f"approve:{result.pk}", "section": middle.pk, "replaces": "", "alt_text": f"  {confirmed} "},
        follow=True,
    )
    assert any(text.startswith("Approved image #") for text in texts(response))
    review.refresh_from_db()
    assert review.status == ReviewStatus.APPROVED and review.alt_text == confirmed
    assert f'value="{html.escape(confirmed)}"' in response.content.decode()


def test_alt_text_of_the_approved_image_is_saved_by_the_editor(client, admin_user, coast_post, writer_server, approve):
    first = sections_of(coast_post)[0]
    result = generated_result(first)
    approve(result, user=admin_user)
    client.force_login(admin_user)
    status, body = draft(client, coast_post, f"draft-alt:{result.pk}", section=first.pk)
    assert status == 200
    response = client.post(
        review_url(coast_post), {"do": "save-alt", "section": first.pk, "alt_text": "Dawn over Penzance"}, follow=True
    )
    assert "Saved the alt text of “Arriving at Penzance”." in texts(response)
    assert SectionReview.objects.get(pk=result.review_id).alt_text == "Dawn over Penzance"


def test_upload_alt_text_is_drafted_from_the_chosen_file_and_saved_with_the_approval(
    client, admin_user, coast_post, writer_server
):
    last = sections_of(coast_post)[2]
    client.force_login(admin_user)
    status, body = draft(client, coast_post, "draft-alt-upload", section=last.pk, file=png_file())
    assert status == 200 and body["text"].startswith("A picture 300 by 200 pixels")
    (image,) = writer_server.images()
    assert image.size == (300, 200) and close_to(image.convert("RGB").getpixel((150, 100)), (200, 40, 40))
    assert "Mousehole harbour" in writer_server.texts()
    assert not ImageGenerationResult.objects.exists()  # the file was read, not stored

    # Without "approve it" the alt text would describe an image that is not the section's: not saved.
    client.post(review_url(coast_post), {"do": "upload", "section": last.pk, "file": png_file(), "alt_text": "Boats"})
    assert SectionReview.objects.get(section_key=str(last.pk)).alt_text == ""
    response = client.post(
        review_url(coast_post),
        {"do": "upload", "section": last.pk, "file": png_file(), "approve_now": "1", "alt_text": "Boats on the mud"},
        follow=True,
    )
    assert any(text.startswith("Uploaded harbour.png") for text in texts(response))
    review = SectionReview.objects.get(section_key=str(last.pk))
    assert review.status == ReviewStatus.APPROVED and review.alt_text == "Boats on the mud"


def test_a_bad_file_is_refused_before_the_writer_sees_it(client, admin_user, coast_post, writer_server):
    last = sections_of(coast_post)[2]
    client.force_login(admin_user)
    svg = io.BytesIO(b"<svg onload=alert(1)></svg>")
    svg.name = "notes.png"
    status, body = draft(client, coast_post, "draft-alt-upload", section=last.pk, file=svg)
    assert status == 400 and body["error"].startswith("The file was refused: SVG")
    status, body = draft(client, coast_post, "draft-alt-upload", section=last.pk)
    assert status == 400 and body["error"] == "Choose an image file first."
    assert writer_server.completions == []


def test_too_long_alt_text_is_refused_and_the_approval_does_not_happen(client, admin_user, coast_post, writer_server):
    first = sections_of(coast_post)[0]
    result = generated_result(first)
    client.force_login(admin_user)
    response = client.post(
        review_url(coast_post),
        {"do": f"approve:{result.pk}", "section": first.pk, "replaces": "", "alt_text": "x" * 301},
        follow=True,
    )
    assert "The alt text is 301 characters; the limit is 300." in " ".join(texts(response))
    assert SectionReview.objects.get(pk=result.review_id).status == ReviewStatus.PENDING


# --- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "outcome, status, words",
    [
        ("server_error", 502, "text-model at 127.0.0.1:{port} failed (500: The server had an error"),
        ("rate_limit", 503, "is rate limited (429: Rate limit reached for text-model"),
        ("malformed", 502, "sent an answer that is not a chat completion"),
        ("empty", 502, "wrote nothing (it declined: I can't help with that.)"),
        ("slow", 504, "text-model at 127.0.0.1:{port} did not answer within 0.5 seconds"),
    ],
)
def test_errors_are_one_clear_sentence_and_nothing_is_saved(
    client, admin_user, coast_post, writer_server, settings, outcome, status, words
):
    settings.BLOGIMAGES_WRITER = {**settings.BLOGIMAGES_WRITER, "TIMEOUT": 0.5}
    writer_server.script(outcome)
    first = sections_of(coast_post)[0]
    client.force_login(admin_user)
    got, body = draft(client, coast_post, "draft-prompt", section=first.pk)
    assert got == status
    assert body["error"].startswith("Could not draft: ")
    assert words.format(port=writer_server.server_address[1]) in body["error"]
    assert "\n" not in body["error"] and body["error"].endswith(".")
    if outcome == "rate_limit":
        assert body["error"].endswith("; try again in 7 seconds.")
    assert not SectionReview.objects.exists() and not ImageGenerationResult.objects.exists()
    # The editor can still write by hand.
    client.post(review_url(coast_post), {"do": "save-prompt", "section": first.pk, "prompt": "Dawn at Penzance"})
    assert SectionReview.objects.get(section_key=str(first.pk)).prompt_override == "Dawn at Penzance"


def test_an_unreachable_writer_and_a_wrong_key(client, admin_user, coast_post, writer_server, settings):
    first = sections_of(coast_post)[0]
    client.force_login(admin_user)
    settings.BLOGIMAGES_WRITER = {**settings.BLOGIMAGES_WRITER, "API_KEY": "sk-wrong"}
    status, body = draft(client, coast_post, "draft-prompt", section=first.pk)
    assert status == 502 and "refused the request (401: Incorrect API key provided.)" in body["error"]
    assert "sk-wrong" not in body["error"]

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings.BLOGIMAGES_WRITER = {**settings.BLOGIMAGES_WRITER, "BASE_URL": f"http://127.0.0.1:{port}/v1"}
    status, body = draft(client, coast_post, "draft-prompt", section=first.pk)
    assert status == 503
    assert body["error"] == f"Could not draft: 127.0.0.1:{port} is not reachable (connection refused)."


# --- the JSON API --------------------------------------------------------------------------------


def test_api_returns_drafts_and_saves_nothing(client, admin_user, coast_post, writer_server):
    first, middle, _last = sections_of(coast_post)
    result = generated_result(middle, colour=(10, 200, 60))
    client.force_login(admin_user)  # session auth; the test client skips CSRF

    response = api_post(client, PROMPT_API, {"post": coast_post.pk, "section": str(first.pk)})
    assert response.status_code == 200
    expected = {"post": str(coast_post.pk), "section": str(first.pk), "prompt": DRAFT, "model": "text-model"}
    assert response.json() == expected
    assert "Arriving at Penzance" in writer_server.texts()

    response = api_post(client, ALT_API, {"result": result.pk})
    assert response.status_code == 200
    body = response.json()
    assert body["result"] == result.pk and body["model"] == "vision-model"
    assert body["alt_text"].startswith("A picture 64 by 48 pixels")
    assert len(writer_server.images()) == 1

    review = SectionReview.objects.get(pk=result.review_id)
    assert review.alt_text == "" and review.prompt_override == ""
    assert not SectionReview.objects.filter(section_key=str(first.pk)).exists()
    assert ImageGenerationResult.objects.count() == 1


def test_api_errors_permissions_and_input(client, admin_user, make_editor, coast_post, writer_server):
    first, middle, _last = sections_of(coast_post)
    result = generated_result(middle)
    client.force_login(admin_user)
    writer_server.script("rate_limit")
    response = api_post(client, PROMPT_API, {"post": coast_post.pk, "section": str(first.pk)})
    assert response.status_code == 503 and response["Retry-After"] == "7"
    assert response.json()["error"].startswith("Could not draft: text-model at 127.0.0.1:")

    response = api_post(client, PROMPT_API, {"post": coast_post.pk})
    assert response.status_code == 400 and "section" in response.json()["errors"]
    response = api_post(client, ALT_API, {"result": 999999})
    assert response.status_code == 400 and response.json()["errors"]["result"] == ["No result with id 999999."]

    generator = make_editor("generator", perms=["generate_images"])
    client.force_login(generator)
    assert api_post(client, PROMPT_API, {"post": coast_post.pk, "section": str(first.pk)}).status_code == 200
    response = api_post(client, ALT_API, {"result": result.pk})
    assert response.status_code == 403 and "review_images" in response.json()["error"]


# --- settings ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, words",
    [
        ("https://api.openai.com/v1", "must be a dict"),
        ({"BASE_URL": "https://api.openai.com/v1"}, "['MODEL'] must name a model"),
        ({"BASE_URL": "api.openai.com", "MODEL": "m"}, "['BASE_URL'] is 'api.openai.com'"),
        ({"BASE_URL": "https://x.example/v1", "MODEL": "m", "KEY": "sk"}, "unknown key 'KEY'"),
        ({"BASE_URL": "https://x.example/v1", "MODEL": "m", "TIMEOUT": 0}, "['TIMEOUT'] must be a number"),
        ({"BASE_URL": "https://x.example/v1", "MODEL": "m", "API_KEY": None}, "['API_KEY'] must be a string"),
    ],
)
def test_a_bad_writer_setting_is_check_e044(settings, value, words):
    settings.BLOGIMAGES_WRITER = value
    found = [m for m in run_checks(tags=["blogimages"]) if m.id == "blogimages.E044"]
    assert found and words in found[0].msg
    assert "BLOGIMAGES_WRITER = {" in found[0].hint


def test_a_good_writer_setting_passes_the_checks(settings):
    settings.BLOGIMAGES_WRITER = {"BASE_URL": "http://127.0.0.1:8080/v1", "MODEL": "llama3.2-vision"}
    assert [m for m in run_checks(tags=["blogimages"]) if m.id == "blogimages.E044"] == []


# --- in a real browser -----------------------------------------------------------------------------


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_browser_draft_edit_save_and_generate(
    browser,  # noqa: F811 - the fixture imported from test_browser
    live_server,
    live_worker,  # noqa: F811
    admin_user,
    coast_post,
    writer_server,
    slow_placeholders,  # noqa: F811
):
    from tests.test_browser import login, wait_for_progress_in_place

    middle = sections_of(coast_post)[1]
    context, page = login(browser, live_server.url, "admin", "admin-pass")
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"/admin/blog/post/{coast_post.pk}/images/")
    panel = page.locator(f"#bi-section-{middle.pk}")
    field = panel.locator(f"#bi-prompt-{middle.pk}")
    assert field.input_value() == ""

    panel.locator("button[value=draft-prompt]").click()
    page.wait_for_function(f"document.getElementById('bi-prompt-{middle.pk}').value !== ''")
    assert field.input_value() == DRAFT
    assert "Drafted by text-model" in panel.locator(".bi-prompt-form [data-bi-draft-note]").inner_text()
    assert not ImageGenerationResult.objects.exists() and not SectionReview.objects.exists()

    edited = "The castle on St Michael's Mount at low tide, the causeway wet and shining"
    field.fill(edited)
    panel.locator("button[value=save-prompt]").click()
    page.wait_for_selector(".messagelist .success")
    assert SectionReview.objects.get(section_key=str(middle.pk)).prompt_override == edited
    assert page.locator(f"#bi-prompt-{middle.pk}").input_value() == edited

    page.locator(f"#bi-section-{middle.pk} button[value=generate-section]").click()
    page.wait_for_selector(".messagelist .success")
    wait_for_progress_in_place(page, images=1)
    (result,) = ImageGenerationResult.objects.all()
    assert result.prompt == edited and result.status == ResultStatus.SUCCEEDED
    assert len(writer_server.completions) == 1

    # The panel was re-rendered when the image was done: its draft buttons work again.
    # Alt text at approval: drafted from the image into the field, edited, saved with the approval.
    card = page.locator(f'.bi-card[data-result="{result.pk}"]')
    card.locator("button[value^=draft-alt]").click()
    alt = page.locator(f"#bi-alt-{middle.pk}")
    page.wait_for_function(f"document.getElementById('bi-alt-{middle.pk}').value !== ''")
    assert alt.input_value().startswith("A picture ")
    assert writer_server.completions[-1]["json"]["model"] == "vision-model"
    assert SectionReview.objects.get(section_key=str(middle.pk)).alt_text == ""
    alt.fill("The castle on its rock at low tide")
    card.locator("button.bi-approve").click()
    page.wait_for_selector(".messagelist .success")
    review = SectionReview.objects.get(section_key=str(middle.pk))
    assert review.approved_result_id == result.pk and review.alt_text == "The castle on its rock at low tide"
    assert errors == []
    context.close()
