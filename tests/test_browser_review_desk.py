# ruff: noqa: F811 - the fixtures imported from tests.test_browser are the tests' arguments
"""The review desk in a real browser (issue 11): one test per point the editor hit.

Playwright drives Debian's Chromium against the live server; a real RQ worker runs in a
thread where a job has to finish (tests/test_browser.py has the fixtures). Screenshots
of the review page go to tests/artifacts/ (review-desk-*.png).
"""

from __future__ import annotations

import io
import os
import re

import pytest
from PIL import Image

from blogimages import services
from blogimages.models import ImageFormat, ImageGenerationResult, ResultStatus, SectionReview
from tests.conftest import generated_result
from tests.test_browser import (  # noqa: F401 - fixtures
    ARTIFACTS,
    TIMEOUT,
    browser,
    live_worker,
    login,
    slow_placeholders,
    sqlite_lock_retry,
)

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def review_path(post) -> str:
    return f"/admin/blog/post/{post.pk}/images/"


def png(size=(640, 400), colour=(30, 120, 200)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def finished(section, **kwargs) -> ImageGenerationResult:
    """A finished candidate for a blog section row (its image through blogimages' storage)."""
    return generated_result(services.as_section(section), **kwargs)


def uploaded(section, size) -> ImageGenerationResult:
    """A candidate with a real thumbnail: an upload through the service, as the page makes one."""
    data = io.BytesIO(png(size))
    data.name = f"{size[0]}x{size[1]}.png"
    data.size = len(data.getvalue())
    return services.upload(services.as_section(section), data)


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"review-desk-{name}.png"), full_page=True)


@pytest.fixture
def slow_job(settings):
    """A placeholder slow enough (6 s, progress every second) to work on the page while it runs."""
    settings.BLOGIMAGES_PROVIDERS = {
        "placeholder": {
            "BACKEND": "blogimages.providers.placeholder.PlaceholderProvider",
            "OPTIONS": {"delay": 6.0, "steps": 6},
        }
    }
    settings.BLOGIMAGES_DEFAULT_PROVIDER = "placeholder"


# --- 1. feedback where the editor acted -----------------------------------------------------------


def test_1_feedback_shows_in_the_section_acted_on(browser, live_server, admin_user, make_post):
    post = make_post(sections=6)
    last = post.sections.order_by("position").last()
    context, page = login(browser, live_server.url, "admin", "admin-pass")
    page.goto(review_path(post))
    panel = page.locator(f"#bi-section-{last.pk}")
    panel.locator("input[type=file]").set_input_files(
        {"name": "notes.png", "mimeType": "image/png", "buffer": b"\x00\x01 not an image at all" * 10}
    )
    panel.locator("button[value=upload]").click()
    # Refused, the page comes back with that section's upload form open, to try again.
    page.wait_for_url(f"**{review_path(post)}?upload={last.pk}#bi-section-{last.pk}")
    assert panel.locator(".bi-upload-form input[type=file]").count() == 1
    message = page.locator(f"#bi-section-{last.pk} .bi-messages .error")
    message.wait_for()
    assert "The upload was refused" in message.inner_text()
    # On screen where the page jumped to, not 1,244 px above it.
    box = message.bounding_box()
    viewport = page.viewport_size
    assert box is not None and 0 <= box["y"] and box["y"] + box["height"] <= viewport["height"], box
    assert page.locator("#content > .messagelist, #main > .messagelist, ul.messagelist:not(.bi-messages)").count() == 0
    shot(page, "1-message-in-panel")

    # A page-wide action keeps its message at the top.
    page.click("button[value=generate-post]")
    top = page.locator("ul.messagelist:not(.bi-messages)")
    top.wait_for()
    assert "Queued 6 images." in top.inner_text()
    context.close()


# --- 2. each candidate carries its own decision; several at once ----------------------------------


def test_2_a_rejected_candidate_says_so_and_bulk_decisions(browser, live_server, admin_user, make_post):
    post = make_post(sections=2)
    first, second = post.sections.order_by("position")
    a, b = finished(first), finished(first, colour=(20, 200, 20))
    c = finished(second)
    context, page = login(browser, live_server.url, "admin", "admin-pass")
    page.goto(review_path(post))

    page.fill(f"#bi-comment-{first.pk}", "The lighthouse is missing")
    page.locator(f'.bi-card[data-result="{a.pk}"] button.bi-reject').click()
    page.wait_for_selector(f"#bi-section-{first.pk} .bi-messages .success")
    card = page.locator(f'.bi-card[data-result="{a.pk}"]')
    assert "Rejected: The lighthouse is missing — by admin" in card.inner_text()
    assert card.locator("button.bi-approve").count() == 0  # not the primary action any more
    assert card.locator("button.bi-approve-anyway").count() == 1
    assert "1 candidate rejected" in page.locator(f"#bi-section-{first.pk} .bi-panel__head").inner_text()
    a.refresh_from_db()
    assert a.rejection_comment == "The lighthouse is missing"

    # The results list filters by decision.
    page.goto("/admin/blogimages/imagegenerationresult/?decision=rejected")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 1 and f"{a.pk}" in rows.first.inner_text()

    # Two from one section cannot both be approved: said clearly, nothing approved.
    page.goto(review_path(post))
    for result in (a, b):
        page.check(f'.bi-card[data-result="{result.pk}"] input.bi-select')
    assert "(2 ticked)" in page.locator("[data-bi-selected-count]").inner_text()
    page.click("button[value=approve-selected]")
    error = page.locator("ul.messagelist .error")
    error.wait_for()
    assert "Only one image per section can be approved" in error.inner_text()
    assert not SectionReview.objects.filter(approved_result__isnull=False).exists()

    # One per section, but neither section has alt text: asked first (point 8), beside the
    # bulk buttons, nothing approved; confirming approves both with one message.
    page.check(f'.bi-card[data-result="{b.pk}"] input.bi-select')
    page.check(f'.bi-card[data-result="{c.pk}"] input.bi-select')
    page.click("button[value=approve-selected]")
    confirm = page.locator(".bi-bulk-confirm")
    confirm.wait_for()
    assert "would be published without alt text" in confirm.inner_text()
    assert f"#{b.pk}" in confirm.inner_text() and f"#{c.pk}" in confirm.inner_text()
    assert confirm.bounding_box()["y"] < page.locator("#bi-bulk").bounding_box()["y"]
    assert not SectionReview.objects.filter(approved_result__isnull=False).exists()
    confirm.get_by_role("button", name="Approve them without alt text").click()
    page.wait_for_selector("ul.messagelist .success")
    assert f"Approved 2 images (#{b.pk}, #{c.pk})." in page.locator("ul.messagelist").inner_text()
    assert set(SectionReview.objects.values_list("approved_result_id", flat=True)) == {b.pk, c.pk}
    shot(page, "2-decisions")
    context.close()


# --- 3. live updates change only what changed -------------------------------------------------------


def test_3_a_finishing_job_keeps_what_the_editor_was_doing(
    browser, live_server, live_worker, admin_user, make_post, slow_job
):
    post = make_post(sections=1)
    section = post.sections.get()
    services.add_comment(section, user=admin_user, text="Brighter, please")  # a history to open
    # The worker thread picks the job up as soon as it commits; it takes about 6 s.
    (job,) = services.generate_for_section(section, user=admin_user)
    context, page = login(browser, live_server.url, "admin", "admin-pass")
    page.goto(review_path(post))
    panel = page.locator(f"#bi-section-{section.pk}")
    assert panel.locator(f'.bi-card[data-result="{job.pk}"]').get_attribute("data-status") in ("queued", "running")

    # What the editor is doing while it runs.
    page.evaluate(f"window.__panel = document.getElementById('bi-section-{section.pk}')")
    panel.locator("input[type=file]").set_input_files({"name": "harbour.png", "mimeType": "image/png", "buffer": png()})
    panel.locator("input[name=approve_now]").check()
    panel.locator("details.bi-history summary").click()
    page.fill(f"#bi-comment-{section.pk}", "Half-typed remark")
    page.fill(f"#bi-upload-alt-{section.pk}", "Boats in a harbour")

    page.wait_for_selector(f'.bi-card[data-result="{job.pk}"][data-status="succeeded"] img', timeout=TIMEOUT)
    page.wait_for_function(
        f"document.querySelector('.bi-card[data-result=\"{job.pk}\"] img').naturalWidth > 0", timeout=TIMEOUT
    )
    job.refresh_from_db()
    assert job.status == ResultStatus.SUCCEEDED
    # The card updated (its image, its buttons); the rest of the panel is the same element.
    card = page.locator(f'.bi-card[data-result="{job.pk}"]')
    assert card.locator("button.bi-approve").count() == 1
    assert page.evaluate(f"window.__panel === document.getElementById('bi-section-{section.pk}')")
    assert (
        page.evaluate(f"document.querySelector('#bi-section-{section.pk} input[type=file]').files[0].name")
        == "harbour.png"
    )
    assert panel.locator("input[name=approve_now]").is_checked()
    assert page.evaluate(f"document.querySelector('#bi-section-{section.pk} details.bi-history').open")
    assert page.input_value(f"#bi-comment-{section.pk}") == "Half-typed remark"
    assert page.input_value(f"#bi-upload-alt-{section.pk}") == "Boats in a harbour"
    shot(page, "3-after-live-update")

    # And the chosen file still uploads.
    panel.locator("button[value=upload]").click()
    page.wait_for_selector(f"#bi-section-{section.pk} .bi-messages .success")
    assert "Uploaded harbour.png" in panel.locator(".bi-messages").inner_text()
    assert ImageGenerationResult.objects.get(source="uploaded").is_approved
    context.close()


# --- 4. the prompt and settings sent -----------------------------------------------------------------


def test_4_cards_and_sections_show_what_was_sent(browser, live_server, admin_user, make_post):
    from blogimages.models import ImageStyle

    post = make_post(sections=1)
    section = post.sections.get()
    result = finished(section)
    style = ImageStyle.objects.create(name="Ink", prompt_template="{prompt}, ink drawing", negative_prompt="text")
    ImageGenerationResult.objects.filter(pk=result.pk).update(
        style=style,
        final_prompt="A lighthouse on a cliff, ink drawing",
        negative_prompt="text, watermark",
        model="sdxl-base-1.0",
        seed=4242,
        params={"width": 1344, "height": 768, "steps": 28, "guidance_scale": 5.5, "sampler": "dpmpp_2m"},
        width=1344,
        height=768,
    )
    context, page = login(browser, live_server.url, "admin", "admin-pass")
    page.goto(review_path(post))
    card = page.locator(f'.bi-card[data-result="{result.pk}"]')
    sent = card.locator("details.bi-sent")
    assert not sent.locator("dl").is_visible()  # collapsed
    sent.locator("summary").click()
    text = sent.inner_text()
    for shown in ("A lighthouse on a cliff, ink drawing", "text, watermark", "Ink", "28", "5.5", "dpmpp_2m"):
        assert shown in text, shown
    facts = card.locator(".bi-facts").inner_text()
    assert "sdxl-base-1.0" in facts and "4242" in facts and "16:9" in facts
    section_sent = page.locator(f"#bi-section-{section.pk} details.bi-sent--section")
    section_sent.locator("summary").click()
    assert "text, watermark" in section_sent.inner_text()
    shot(page, "4-sent")
    context.close()


# --- 6. extreme sizes ---------------------------------------------------------------------------------


def test_6_extreme_sizes_keep_rows_bounded(browser, live_server, admin_user, make_post):
    post = make_post(sections=1)
    section = post.sections.get()
    tall, wide = uploaded(section, (65, 4096)), uploaded(section, (4096, 65))
    normal = uploaded(section, (640, 400))
    context, page = login(browser, live_server.url, "admin", "admin-pass")
    page.goto(review_path(post))
    page.wait_for_function("Array.from(document.querySelectorAll('.bi-card img')).every(i => i.naturalWidth > 0)")
    heights = {}
    for result in (tall, wide, normal):
        card = page.locator(f'.bi-card[data-result="{result.pk}"]')
        thumb = card.locator(".bi-thumb").bounding_box()
        heights[result.pk] = card.bounding_box()["height"]
        assert thumb["height"] <= 170 and thumb["width"] <= 170, thumb
        image = card.locator("img").bounding_box()
        assert image["height"] <= thumb["height"] + 1 and image["width"] <= thumb["width"] + 1
        # contain: the whole image is shown, its shape kept, inside the box.
        assert card.locator("img").evaluate("i => getComputedStyle(i).objectFit") == "contain"
    assert max(heights.values()) < 600, heights
    row = page.locator(f"#bi-section-{section.pk} [data-bi-cards]").bounding_box()
    assert row["height"] < 700, row
    assert "65×4096 (≈1:63)" in page.locator(f'.bi-card[data-result="{tall.pk}"]').inner_text()
    shot(page, "6-extreme-sizes")
    context.close()


# --- 7. upload refusals are sentences ---------------------------------------------------------------


@pytest.mark.parametrize(
    "name, payload",
    [
        ("garbage.png", b"\x8f\x12 garbage \x00\x01\x02" * 40),
        ("notes.png", b"Dear editor,\nthis is a text file renamed to .png\n"),
        ("truncated.png", png()[:120]),
        ("huge.png", png((1200, 1200))),
    ],
    ids=["garbage", "text-renamed", "truncated", "over-large"],
)
def test_7_upload_refusals_are_sentences(browser, live_server, admin_user, make_post, settings, name, payload):
    settings.BLOGIMAGES_UPLOAD_MAX_PIXELS = 1000 * 1000
    post = make_post(sections=1)
    section = post.sections.get()
    context, page = login(browser, live_server.url, "admin", "admin-pass")
    page.goto(review_path(post))
    panel = page.locator(f"#bi-section-{section.pk}")
    panel.locator("input[type=file]").set_input_files({"name": name, "mimeType": "image/png", "buffer": payload})
    panel.locator("button[value=upload]").click()
    message = page.locator(f"#bi-section-{section.pk} .bi-messages .error")
    message.wait_for()
    text = message.inner_text()
    assert text.startswith("The upload was refused: ") and text.rstrip().endswith(".")
    assert not re.search(r"<_io|0x[0-9a-f]{6,}|BytesIO|Traceback|Error:", text), text
    assert not ImageGenerationResult.objects.exists()
    context.close()


# --- 9. editing a section goes back to it -------------------------------------------------------------


def test_9_editing_a_section_goes_back_to_that_section(browser, live_server, admin_user, make_post):
    post = make_post(sections=4)
    third = post.sections.order_by("position")[2]
    finished(third)
    context, page = login(browser, live_server.url, "admin", "admin-pass")
    page.goto(review_path(post))
    page.locator(f"#bi-section-{third.pk} a.bi-edit").click()
    page.wait_for_url("**/sectionreview/*/change/?next=*")
    page.fill("#id_prompt_override", "Gulls over a harbour wall at noon")
    page.fill("#id_alt_text", "Gulls over a harbour wall")
    page.click("input[name=_save]")
    page.wait_for_url(f"**{review_path(post)}#bi-section-{third.pk}")
    assert "Gulls over a harbour wall at noon" in page.locator(f"#bi-section-{third.pk} .bi-prompt").inner_text()
    context.close()


# --- 12. a queue nobody works -------------------------------------------------------------------------


def test_12_a_job_no_worker_picks_up_says_so(browser, live_server, admin_user, make_post, rq_queue):
    from rq import Worker

    post = make_post(sections=1)
    (job,) = services.generate_for_section(post.sections.get(), user=admin_user)
    context, page = login(browser, live_server.url, "admin", "admin-pass")
    page.goto(review_path(post))
    note = page.locator(f'.bi-card[data-result="{job.pk}"] [data-bi-queue-note]')
    assert note.is_visible()
    assert f"No worker is taking jobs from queue “{rq_queue.name}”" in note.inner_text()
    shot(page, "12-no-worker")

    # The status page lists a dead worker as dead, not idle.
    dead = Worker([rq_queue], connection=rq_queue.connection, name="crashed-worker")
    dead.register_birth()
    try:
        rq_queue.connection.hset(dead.key, "pid", 2**22 + 4321)  # no such process on this host
        page.goto("/admin/blogimages/imagegenerationresult/status/")
        worker = page.locator('.bi-worker:has-text("crashed-worker")')
        assert worker.get_attribute("data-worker-state") == "dead"
        assert "dead" in worker.inner_text() and "idle" not in worker.inner_text()
        assert "No worker is taking jobs from queue" in page.locator("[data-bi-queue-note]").inner_text()
    finally:
        dead.register_death()
    context.close()


# --- 13. smaller --------------------------------------------------------------------------------------


def test_13_header_labels_model_names_comment_and_aspect(
    browser, live_server, admin_user, make_post, make_editor, django_user_model
):
    post = make_post(sections=1)
    section = post.sections.get()
    result = finished(section)
    long_model = "stabilityai/stable-diffusion-xl-base-1.0-refiner-with-a-long-name"
    ImageGenerationResult.objects.filter(pk=result.pk).update(model=long_model)
    services.reject(result=result, user=admin_user, comment="Old remark")
    services.add_comment(section, user=admin_user, text="Newest remark")
    ImageFormat.objects.create(name="Blog hero", width=1344, height=768)
    user = django_user_model.objects.create_superuser("mlopez", "m@example.com", "pw-mlopez")
    user.first_name, user.last_name = "Maria", "Lopez"
    user.save()

    context, page = login(browser, live_server.url, "mlopez", "pw-mlopez")
    page.goto(review_path(post))
    tools = page.locator("#user-tools")
    assert tools.locator("strong").text_content() == "Maria Lopez"  # not "Maria"
    assert "(mlopez)" in tools.text_content()
    model = page.locator(f'.bi-card[data-result="{result.pk}"] .bi-facts dd[title]')
    assert model.get_attribute("title") == long_model
    assert model.evaluate("e => e.scrollWidth > e.clientWidth")  # clipped with an ellipsis, not cramped
    assert model.evaluate("e => getComputedStyle(e).textOverflow") == "ellipsis"
    latest = page.locator(f"#bi-section-{section.pk} .bi-comment").inner_text()
    assert "Newest remark" in latest and "Old remark" not in latest
    assert "Comment (required to reject)" in page.locator(f"#bi-section-{section.pk}").inner_text()
    page.goto("/admin/blogimages/imageformat/")
    assert page.locator("td.field-aspect").inner_text() == "16:9"
    context.close()

    make_editor("gen", perms=["generate_images"])
    context, page = login(browser, live_server.url, "gen", "editor-pass")
    page.goto(review_path(post))
    assert "required to reject" not in page.locator(f"#bi-section-{section.pk}").inner_text()
    context.close()


# --- keyboard and 390 px --------------------------------------------------------------------------------


def test_keyboard_and_a_390px_screen(browser, live_server, admin_user, make_post):
    post = make_post(sections=2)
    first, second = post.sections.order_by("position")
    a = finished(first)
    uploaded(second, (4096, 65))
    ImageGenerationResult.objects.filter(pk=a.pk).update(model="a-model-name-without-any-spaces-to-break-it-at-all")
    context, page = login(browser, live_server.url, "admin", "admin-pass")
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(review_path(post))
    page.wait_for_load_state("networkidle")
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"the page is {overflow}px wider than the screen"
    wide = page.evaluate(
        """() => Array.from(document.querySelectorAll('.bi-review *'))
             .filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1
                          && getComputedStyle(e).visibility !== 'hidden' && e.getClientRects().length)
             .map(e => e.tagName + '.' + e.className).slice(0, 5)"""
    )
    assert wide == [], wide
    shot(page, "390px")

    # Keyboard only: tick the card, move to its Approve button, press Enter.
    page.fill(f"#bi-alt-{first.pk}", "A lighthouse")  # else the page asks first (test_browser_review_desk_safety)
    page.focus(f'.bi-card[data-result="{a.pk}"] input.bi-select')
    page.keyboard.press("Space")
    assert page.is_checked(f'.bi-card[data-result="{a.pk}"] input.bi-select')
    page.focus(f'.bi-card[data-result="{a.pk}"] a[href$="/{a.pk}/change/"]')
    for _ in range(12):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.classList.contains('bi-approve')"):
            break
    assert page.evaluate("document.activeElement.value") == f"approve:{a.pk}"
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"  # the focus is visible
    page.keyboard.press("Enter")
    page.wait_for_selector(f"#bi-section-{first.pk} .bi-messages .success")
    a.refresh_from_db()
    assert a.is_approved
    context.close()
