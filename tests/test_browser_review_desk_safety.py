# ruff: noqa: F811 - the fixtures imported from tests.test_browser are the tests' arguments
"""The review desk's safety rails in a real browser (issue 11, points 8, 10 and 11).

8: alt text is asked for on upload and at approval, the public page carries what the editor
   confirmed (never the prompt), and an approval without alt text is asked about first: by
   the page's script, and by the server (publish_without_alt=1) without script.
10: an unknown provider name is refused where it is saved, and a row saved before the check
    says where the bad name came from when it is used.
11: a double click sends one request, buttons are disabled while it runs, and replacing an
    approved image says what it replaced.

Playwright drives Debian's Chromium against the live server (tests/test_browser.py has the
fixtures). The alt text warning's screenshot goes to tests/artifacts/review-desk-8-alt-warning.png.
"""

from __future__ import annotations

import os

import pytest

from blogimages import services
from blogimages.models import (
    ImageGenerationResult,
    ImagePromptExample,
    ImageSetting,
    ReviewAction,
    ReviewEvent,
    SectionReview,
)
from tests.test_browser import (  # noqa: F401 - fixtures
    ARTIFACTS,
    TIMEOUT,
    browser,
    login,
)
from tests.test_browser_review_desk import finished, png, review_path

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

MISSING_ALT = "This image will be published without alt text; screen readers will say nothing. Approve anyway?"
BASE = "blogimages.providers.placeholder.PlaceholderProvider"


@pytest.fixture(autouse=True)
def two_providers(settings):
    settings.BLOGIMAGES_PROVIDERS = {
        "placeholder": {"BACKEND": BASE, "OPTIONS": {"delay": 0.0}},
        "sketch": {"BACKEND": BASE, "OPTIONS": {"delay": 0.0}},
    }
    settings.BLOGIMAGES_DEFAULT_PROVIDER = "placeholder"


def review_of(section) -> SectionReview:
    return SectionReview.objects.get(section_key=str(section.pk))


def public_alt(context, post, section) -> str | None:
    """The alt attribute of the section's image on the post's public page."""
    public = context.new_page()
    public.goto(f"/blog/{post.slug}/")
    image = public.locator(f"#section-{section.pk} img")
    assert image.count() == 1
    alt = image.get_attribute("alt")
    public.close()
    return alt


def posts_to(page, path: str) -> list[str]:
    """Every POST the page sends to ``path`` (appended as they happen)."""
    sent: list[str] = []
    page.on(
        "request",
        lambda request: sent.append(request.url) if request.method == "POST" and path in request.url else None,
    )
    return sent


# --- 8. alt text: asked for, published as confirmed, warned about ------------------------------------


def test_8_alt_text_is_asked_for_on_upload_and_at_approval_and_published(browser, live_server, admin_user, make_post):
    post = make_post(sections=2)
    first, second = post.sections.order_by("position")
    candidate = finished(first)
    context, page = login(browser, live_server.url, "admin", "admin-pass")
    page.goto(review_path(post))

    # At approval: the field is there, says what it is for, and warns while it is empty.
    alt = page.locator(f"#bi-alt-{first.pk}")
    assert page.locator(f'label[for="bi-alt-{first.pk}"]').inner_text().startswith("Alt text")
    warning = page.locator(f"#bi-form-{first.pk} [data-bi-alt-warning]")
    assert warning.is_visible() and "No alt text" in warning.inner_text()
    alt.fill("A white lighthouse on a cliff at dusk")
    assert not warning.is_visible()
    page.locator(f'.bi-card[data-result="{candidate.pk}"] button.bi-approve').click()
    message = page.locator(f"#bi-section-{first.pk} .bi-messages .success")
    message.wait_for()
    assert f"Approved image #{candidate.pk}" in message.inner_text()
    assert review_of(first).alt_text == "A white lighthouse on a cliff at dusk"
    # Prefilled next time (editable), and on the public page as written.
    assert page.input_value(f"#bi-alt-{first.pk}") == "A white lighthouse on a cliff at dusk"
    assert public_alt(context, post, first) == "A white lighthouse on a cliff at dusk"

    # On upload: the form asks for it; ticking "approve it" with it empty warns.
    panel = page.locator(f"#bi-section-{second.pk}")
    upload_alt = panel.locator(f"#bi-upload-alt-{second.pk}")
    upload_warning = panel.locator(".bi-upload-form [data-bi-alt-warning]")
    assert upload_alt.is_visible() and not upload_warning.is_visible()
    panel.locator("input[type=file]").set_input_files({"name": "boats.png", "mimeType": "image/png", "buffer": png()})
    panel.locator("input[name=approve_now]").check()
    assert upload_warning.is_visible()
    upload_alt.fill("Red fishing boats moored in a harbour")
    assert not upload_warning.is_visible()
    panel.locator("button[value=upload]").click()
    done = page.locator(f"#bi-section-{second.pk} .bi-messages .success")
    done.wait_for()
    assert "Uploaded boats.png" in done.inner_text() and "approved it" in done.inner_text()
    uploaded = ImageGenerationResult.objects.get(source="uploaded")
    assert uploaded.is_approved and review_of(second).alt_text == "Red fishing boats moored in a harbour"
    assert public_alt(context, post, second) == "Red fishing boats moored in a harbour"
    context.close()


def test_8_approving_without_alt_text_is_asked_about_first(browser, live_server, admin_user, make_post):
    post = make_post(sections=1)
    (section,) = post.sections.all()
    old, new = finished(section), finished(section, colour=(20, 200, 20))
    services.approve(old)
    services.save_alt_text(review_of(section), "A grey lighthouse")
    context, page = login(browser, live_server.url, "admin", "admin-pass")
    page.goto(review_path(post))
    sent = posts_to(page, review_path(post))

    # Clearing the prefilled alt text shows the warning next to the field.
    assert page.input_value(f"#bi-alt-{section.pk}") == "A grey lighthouse"
    warning = page.locator(f"#bi-form-{section.pk} [data-bi-alt-warning]")
    assert not warning.is_visible()
    page.fill(f"#bi-alt-{section.pk}", "")
    assert warning.is_visible()

    # Approve: nothing is sent; the page asks, next to the button clicked.
    card = page.locator(f'.bi-card[data-result="{new.pk}"]')
    card.locator("button.bi-approve").click()
    ask = page.locator("[data-bi-alt-ask]")
    ask.wait_for()
    assert MISSING_ALT in ask.inner_text()
    assert card.locator("[data-bi-alt-ask]").count() == 1
    page.locator(f"#bi-section-{section.pk}").screenshot(path=str(ARTIFACTS / "review-desk-8-alt-warning.png"))
    assert sent == [] and review_of(section).approved_result_id == old.pk

    # "Write alt text" takes the editor back to the field; nothing was sent.
    ask.get_by_role("button", name="Write alt text").click()
    assert ask.count() == 0
    assert page.evaluate("document.activeElement.id") == f"bi-alt-{section.pk}"

    # Asked again, confirmed: one request, approved without alt text, and it says what it replaced.
    card.locator("button.bi-approve").click()
    page.get_by_role("button", name="Approve without alt text").click()
    message = page.locator(f"#bi-section-{section.pk} .bi-messages .success")
    message.wait_for()
    assert f"Approved image #{new.pk} for “Section 1”; it replaces image #{old.pk}." in message.inner_text()
    assert len(sent) == 1
    review = review_of(section)
    assert review.approved_result_id == new.pk and review.alt_text == ""
    assert public_alt(context, post, section) == ""
    context.close()


def test_8_without_script_the_server_asks_for_the_confirmation(browser, live_server, admin_user, make_post):
    post = make_post(sections=1)
    (section,) = post.sections.all()
    candidate = finished(section)
    context, page = login(browser, live_server.url, "admin", "admin-pass", java_script_enabled=False)
    page.goto(review_path(post))

    # The warning is in the page as served (the alt field is empty).
    assert page.locator(f"#bi-form-{section.pk} [data-bi-alt-warning]").is_visible()
    page.locator(f'.bi-card[data-result="{candidate.pk}"] button.bi-approve').click()
    refusal = page.locator(f"#bi-section-{section.pk} .bi-messages .warning")
    refusal.wait_for()
    assert MISSING_ALT in refusal.inner_text()
    assert not ImageGenerationResult.objects.get(pk=candidate.pk).is_approved
    assert not ReviewEvent.objects.filter(action=ReviewAction.APPROVED).exists()

    refusal.get_by_role("button", name="Approve without alt text").click()
    done = page.locator(f"#bi-section-{section.pk} .bi-messages .success")
    done.wait_for()
    assert f"Approved image #{candidate.pk}" in done.inner_text()
    assert ImageGenerationResult.objects.get(pk=candidate.pk).is_approved
    context.close()


def test_8_a_generated_image_does_not_reuse_its_prompt_as_alt_text(browser, live_server, admin_user, make_post):
    post = make_post(sections=1)
    (section,) = post.sections.all()
    candidate = finished(section, prompt="watercolour lighthouse, dusk, 4k, trending")
    services.approve(candidate)  # approved elsewhere (the API, an admin action): no alt text confirmed
    context, page = login(browser, live_server.url, "admin", "admin-pass")
    assert public_alt(context, post, section) == ""

    # Confirmed by the editor, the words are published.
    page.goto(review_path(post))
    page.fill(f"#bi-alt-{section.pk}", "A lighthouse painted in watercolour at dusk")
    page.click(f"#bi-form-{section.pk} button[value=save-alt]")
    page.locator(f"#bi-section-{section.pk} .bi-messages .success").wait_for()
    assert public_alt(context, post, section) == "A lighthouse painted in watercolour at dusk"
    context.close()


# --- 10. provider names are checked where they are saved ---------------------------------------------


def test_10_an_unknown_provider_is_refused_on_save_and_an_old_row_names_itself(
    browser, live_server, admin_user, make_post
):
    context, page = login(browser, live_server.url, "admin", "admin-pass")

    # A prompt example: refused on save, the sentence at the field.
    page.goto("/admin/blogimages/imagepromptexample/add/")
    page.fill("#id_name", "Harbour")
    page.fill("#id_prompt", "a harbour at dawn")
    page.fill("#id_provider", "nope")
    page.click("input[name=_save]")
    error = page.locator(".field-provider .errorlist")
    error.wait_for()
    assert (
        "Prompt example 'Harbour': provider 'nope' is not in BLOGIMAGES_PROVIDERS (placeholder, sketch)."
        in error.inner_text()
    )
    assert not ImagePromptExample.objects.exists()

    # An image setting: the same.
    page.goto("/admin/blogimages/imagesetting/add/")
    page.fill("#id_name", "Hero")
    page.fill("#id_provider", "dalle")
    page.click("input[name=_save]")
    error = page.locator(".field-provider .errorlist")
    error.wait_for()
    assert "Image setting 'Hero': provider 'dalle' is not in BLOGIMAGES_PROVIDERS" in error.inner_text()
    assert not ImageSetting.objects.exists()

    # Rows saved before the check (update() skips clean()): generating says where the name came from.
    post = make_post(sections=2)
    first, second = post.sections.order_by("position")
    old = ImagePromptExample.objects.create(name="Old harbour", prompt="a harbour", provider="placeholder")
    ImagePromptExample.objects.filter(pk=old.pk).update(provider="nope")
    setting = ImageSetting.objects.create(name="Old hero")
    ImageSetting.objects.filter(pk=setting.pk).update(provider="dalle")
    fine = ImagePromptExample.objects.create(name="Quay", prompt="a quay", setting=setting)
    SectionReview.objects.filter(pk=services.review_for(services.as_section(first)).pk).update(prompt_example=old)
    SectionReview.objects.filter(pk=services.review_for(services.as_section(second)).pk).update(prompt_example=fine)

    page.goto(review_path(post))
    for section, sentence in (
        (first, "Prompt example 'Old harbour' names provider 'nope'"),
        (second, "Image setting 'Old hero' names provider 'dalle'"),
    ):
        page.click(f"#bi-form-{section.pk} button[value=generate-section]")
        refusal = page.locator(f"#bi-section-{section.pk} .bi-messages .error")
        refusal.wait_for()
        text = refusal.inner_text()
        owner, name = sentence.split(" names provider ")
        assert owner in text and f"provider {name}" in text and "BLOGIMAGES_PROVIDERS" in text, text
    assert not ImageGenerationResult.objects.exists()
    context.close()


# --- 11. one click, one request; busy buttons; replacing says so -------------------------------------


def test_11_double_clicks_send_one_request(browser, live_server, admin_user, make_post, rq_queue):
    post = make_post(sections=1)
    (section,) = post.sections.all()
    old, new = finished(section), finished(section, colour=(20, 200, 20))
    services.approve(old)
    context, page = login(browser, live_server.url, "admin", "admin-pass")
    page.goto(review_path(post))
    sent = posts_to(page, review_path(post))

    generate = page.locator(f"#bi-form-{section.pk} button[value=generate-section]")
    before = ImageGenerationResult.objects.count()
    generate.dblclick()
    message = page.locator(f"#bi-section-{section.pk} .bi-messages .success")
    message.wait_for()
    assert "Queued" in message.inner_text()
    page.wait_for_load_state("networkidle")
    assert len(sent) == 1 and ImageGenerationResult.objects.count() == before + 1

    # Approve, double-clicked (alt text written, so nothing to ask): one request, one approval,
    # and the message names the image it replaced.
    sent.clear()
    page.fill(f"#bi-alt-{section.pk}", "A green lighthouse")
    page.locator(f'.bi-card[data-result="{new.pk}"] button.bi-approve').dblclick()
    message = page.locator(f"#bi-section-{section.pk} .bi-messages .success")
    message.wait_for()
    assert f"Approved image #{new.pk} for “Section 1”; it replaces image #{old.pk}." in message.inner_text()
    page.wait_for_load_state("networkidle")
    assert len(sent) == 1
    approvals = ReviewEvent.objects.filter(action=ReviewAction.APPROVED, result_id=new.pk)
    assert approvals.count() == 1
    assert review_of(section).approved_result_id == new.pk

    # While a request runs its form's buttons are disabled (and say they are busy).
    page.goto(review_path(post))
    generate = page.locator(f"#bi-form-{section.pk} button[value=generate-section]")
    busy = generate.evaluate(
        "b => new Promise(done => { b.click(); setTimeout(() => done([b.disabled, b.getAttribute('aria-busy')]), 0); })"
    )
    assert busy == [True, "true"]
    page.locator(f"#bi-section-{section.pk} .bi-messages .success").wait_for()
    context.close()
