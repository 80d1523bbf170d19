"""The image viewer, refine, compare, gallery and batch notices in a real browser (Playwright,
Debian's Chromium), against the live server and a real RQ worker thread.

Screenshots go to tests/artifacts/ (viewer, compare, mask painting, gallery, 390 px).
"""

from __future__ import annotations

import io
import os

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from blogimages import services
from blogimages.hosts import get_host
from blogimages.models import ImageGenerationResult, ResultStatus
from tests import test_browser as base
from tests.test_browser import ARTIFACTS, TIMEOUT, login

# The browser, the live RQ worker thread and SQLite's lock retry: tests/test_browser.py's fixtures.
browser = base.browser
live_worker = base.live_worker
sqlite_lock_retry = base.sqlite_lock_retry

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

BASE = "blogimages.providers.placeholder.PlaceholderProvider"
PLAYGROUND = "/admin/blogimages/imagegenerationresult/playground/"
GALLERY = "/admin/blogimages/imagegenerationresult/gallery/"
VIEWER = "dialog#bi-viewer"


@pytest.fixture
def placeholders(settings):
    settings.BLOGIMAGES_PROVIDERS = {
        "placeholder": {"BACKEND": BASE, "OPTIONS": {"delay": 0.6, "steps": 3}},
        "sketch": {"BACKEND": BASE, "OPTIONS": {"delay": 0.3, "steps": 2}},
    }
    settings.BLOGIMAGES_DEFAULT_PROVIDER = "placeholder"


def png(size, colour) -> SimpleUploadedFile:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return SimpleUploadedFile("photo.png", buffer.getvalue(), content_type="image/png")


@pytest.fixture
def uploads(make_post, admin_user):
    """A post of two sections and three uploaded candidates of different sizes (real thumbnails)."""
    post = make_post(sections=2)
    first, second = get_host().sections(post)
    a = services.upload(first, png((640, 400), (30, 120, 200)), user=admin_user)
    b = services.upload(first, png((300, 500), (200, 60, 40)), user=admin_user)
    c = services.upload(second, png((400, 400), (40, 160, 60)), user=admin_user)
    return post, (a, b, c)


def review_url(post) -> str:
    return f"/admin/blog/post/{post.pk}/images/"


def scale(page) -> float:
    return float(page.get_attribute(VIEWER, "data-scale"))


def title(page) -> str:
    return page.inner_text("#bi-viewer-title")


def pane_scales(page) -> list[float]:
    """Screen pixels per image pixel of each pane of the viewer."""
    return page.evaluate(
        """() => Array.from(document.querySelectorAll('#bi-viewer .bi-viewer__pane')).map((pane) => {
            const img = pane.querySelector('img');
            return pane.querySelector('.bi-viewer__frame').getBoundingClientRect().width / img.naturalWidth;
        })"""
    )


def wait_loaded(page) -> None:
    page.wait_for_function(
        """() => { const imgs = document.querySelectorAll('#bi-viewer .bi-viewer__pane img');
                   return imgs.length > 0 && Array.from(imgs).every((i) => i.complete && i.naturalWidth > 0)
                          && document.getElementById('bi-viewer').dataset.scale; }"""
    )


def test_viewer_zoom_keyboard_and_decisions(browser, live_server, admin_user, uploads):
    ARTIFACTS.mkdir(exist_ok=True)
    post, (a, b, c) = uploads
    context, page = login(browser, live_server.url, "admin", "admin-pass")
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(review_url(post))

    # Keyboard only: focus the first image, Enter opens the viewer, not the raw file.
    page.focus(f'[data-bi-view="{a.pk}"]')
    page.keyboard.press("Enter")
    page.wait_for_selector(f"{VIEWER}[open]")
    assert page.url.endswith(review_url(post))
    wait_loaded(page)
    assert f"#{a.pk}" in title(page)
    assert page.evaluate("document.getElementById('bi-viewer').contains(document.activeElement)")
    fit = scale(page)
    assert 0 < fit <= 1

    # Zoom: + and - by a step, 0 back to fit, 1 to actual pixels, the wheel about the pointer.
    page.keyboard.press("+")
    assert scale(page) == pytest.approx(fit * 1.25, rel=1e-3)
    page.keyboard.press("+")
    assert scale(page) == pytest.approx(fit * 1.25 * 1.25, rel=1e-3)
    page.keyboard.press("-")
    assert scale(page) == pytest.approx(fit * 1.25, rel=1e-3)
    page.keyboard.press("0")
    assert scale(page) == pytest.approx(fit, rel=1e-3)
    box = page.locator(f"{VIEWER} .bi-viewer__pane").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.wheel(0, -400)
    page.wait_for_function(f"parseFloat(document.getElementById('bi-viewer').dataset.scale) > {fit * 1.2}")
    page.click(f'{VIEWER} [data-bi-act="zoom-in"]')
    page.keyboard.press("1")
    assert scale(page) == 1
    # Zoomed in: the image is larger than its pane and Shift+arrows move it.
    for _ in range(4):
        page.click(f'{VIEWER} [data-bi-act="zoom-in"]')
    before = page.eval_on_selector(f"{VIEWER} .bi-viewer__pane", "p => p.scrollLeft")
    page.focus(f"{VIEWER} .bi-viewer__pane")
    page.keyboard.press("Shift+ArrowRight")
    assert page.eval_on_selector(f"{VIEWER} .bi-viewer__pane", "p => p.scrollLeft") > before
    page.keyboard.press("0")
    page.screenshot(path=str(ARTIFACTS / "viewer.png"))

    # Next / previous across the page's candidates (and sections), with the arrow keys.
    page.keyboard.press("ArrowRight")
    page.wait_for_function(f"document.getElementById('bi-viewer-title').textContent.includes('#{b.pk}')")
    page.keyboard.press("ArrowRight")
    page.wait_for_function(f"document.getElementById('bi-viewer-title').textContent.includes('#{c.pk}')")
    assert page.inner_text(f"{VIEWER} [data-bi-pos]") == "3 / 3"
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")
    page.wait_for_function(f"document.getElementById('bi-viewer-title').textContent.includes('#{a.pk}')")

    # Focus stays in the dialog, whatever Tab and Shift+Tab do.
    for key in ["Tab"] * 30 + ["Shift+Tab"] * 10:
        page.keyboard.press(key)
        assert page.evaluate("document.getElementById('bi-viewer').contains(document.activeElement)"), key

    # Esc closes it and gives focus back to the image it was opened from.
    page.keyboard.press("Escape")
    page.wait_for_selector(f"{VIEWER}:not([open])", state="attached")
    assert page.evaluate("document.activeElement.dataset.biView") == str(a.pk)

    # Reject from the viewer: a comment is asked for, in a sentence, then the page's form sends it.
    page.click(f'[data-bi-view="{b.pk}"]')
    page.wait_for_selector(f"{VIEWER}[open]")
    page.click(f'{VIEWER} [data-bi-act="reject"]')
    assert "a comment is required to reject" in page.inner_text(f"{VIEWER} [data-bi-msg]")
    assert ImageGenerationResult.objects.get(pk=b.pk).rejected_at is None
    page.fill("#bi-viewer-comment", "Too red for the coast")
    with page.expect_navigation():
        page.click(f'{VIEWER} [data-bi-act="reject"]')
    page.wait_for_function("document.body.innerText.includes('Rejected image #')")
    b.refresh_from_db()
    assert b.rejected_at is not None and b.rejection_comment == "Too red for the coast"

    # Approve from the viewer, by keyboard alone (with alt text written: else the page asks first).
    panel = page.locator(".bi-panel", has=page.locator(f'[data-bi-view="{a.pk}"]'))
    panel.locator("input[id^=bi-alt-]").fill("A lighthouse on a cliff")
    page.focus(f'[data-bi-view="{a.pk}"]')
    page.keyboard.press("Enter")
    page.wait_for_selector(f"{VIEWER}[open]")
    for _ in range(40):
        if page.evaluate("document.activeElement.dataset.biAct") == "approve":
            break
        page.keyboard.press("Tab")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    page.wait_for_function("document.body.innerText.includes('Approved image #')")
    assert ImageGenerationResult.objects.get(pk=a.pk).is_approved
    assert errors == []
    context.close()


def test_compare_two_side_by_side_at_one_scale(browser, live_server, admin_user, uploads):
    ARTIFACTS.mkdir(exist_ok=True)
    post, (a, b, c) = uploads
    context, page = login(browser, live_server.url, "admin", "admin-pass")
    page.goto(review_url(post))
    assert page.is_hidden("[data-bi-compare-bar]") or page.locator("[data-bi-compare-bar]").count() == 0
    page.check(f'input[data-bi-compare][value="{a.pk}"]')
    assert "pick another" in page.inner_text("[data-bi-compare-bar]")
    assert page.is_disabled('[data-bi-compare-bar] [data-bi-act="compare"]')
    page.check(f'input[data-bi-compare][value="{b.pk}"]')
    page.click('[data-bi-compare-bar] [data-bi-act="compare"]')
    page.wait_for_selector(f"{VIEWER}[open].is-compare")
    wait_loaded(page)
    assert page.locator(f"{VIEWER} .bi-viewer__pane").count() == 2
    first = pane_scales(page)
    # 640x400 and 300x500 at one pixel scale: the same number of screen pixels per image pixel.
    assert first[0] == pytest.approx(first[1], rel=0.01)
    widths = page.evaluate(
        "Array.from(document.querySelectorAll('#bi-viewer .bi-viewer__frame')).map(f => f.getBoundingClientRect())"
    )
    assert widths[0]["width"] / widths[1]["width"] == pytest.approx(640 / 300, rel=0.02)
    assert widths[0]["x"] + widths[0]["width"] <= widths[1]["x"] + 1  # side by side
    # Zoom is shared: both grow together.
    page.keyboard.press("+")
    page.keyboard.press("+")
    zoomed = pane_scales(page)
    assert zoomed[0] == pytest.approx(zoomed[1], rel=0.01) and zoomed[0] > first[0] * 1.5
    # ... and so is moving: scroll one, the other follows (the same image point).
    for _ in range(4):
        page.keyboard.press("+")
    page.eval_on_selector(f"{VIEWER} .bi-viewer__pane", "p => { p.scrollTop = 60; }")
    page.wait_for_function(
        "(() => { const p = document.querySelectorAll('#bi-viewer .bi-viewer__pane');"
        " return p[0].scrollTop === 60 && Math.abs(p[1].scrollTop - 60) <= 1; })()"
    )
    page.keyboard.press("0")
    page.screenshot(path=str(ARTIFACTS / "viewer-compare.png"))
    page.keyboard.press("Escape")
    context.close()


@pytest.fixture
def a1111(settings, thread_server):
    """An AUTOMATIC1111 test server (img2img with init image and mask) beside the placeholder."""
    from tests.servers.a1111 import A1111Server

    server = thread_server(A1111Server(step_delay=0.01))
    settings.BLOGIMAGES_PROVIDERS = {
        "placeholder": {"BACKEND": BASE, "OPTIONS": {"delay": 0.0}},
        "a1111": {
            "BACKEND": "blogimages.providers.automatic1111.Automatic1111Provider",
            "OPTIONS": {"base_url": server.url, "poll_interval": 0.05},
        },
    }
    settings.BLOGIMAGES_DEFAULT_PROVIDER = "placeholder"
    return server


def test_paint_a_mask_and_refine(browser, live_server, live_worker, admin_user, make_post, a1111):
    pytest.importorskip("blogimages.refining")
    ARTIFACTS.mkdir(exist_ok=True)
    post = make_post(sections=1)
    (section,) = get_host().sections(post)
    source = services.upload(section, png((320, 200), (90, 140, 210)), user=admin_user)
    context, page = login(browser, live_server.url, "admin", "admin-pass")
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(review_url(post))
    page.click(f'[data-bi-open="{source.pk}"][data-bi-mode="refine"]')
    page.wait_for_selector(f"{VIEWER}[open] details[data-bi-refine-box][open]")
    wait_loaded(page)
    assert page.evaluate("document.activeElement.id") == "bi-refine-instruction"
    # An upload has no provider of its own: pick one that can refine.
    page.select_option(f"{VIEWER} select[name=provider]", "a1111")
    page.wait_for_function(
        "document.querySelector('#bi-viewer input[name=operation][value=refine]').disabled === false"
    )

    # Refine without an instruction: the service's sentence, next to the form; nothing queued.
    page.click(f"{VIEWER} [data-bi-refine-submit]")
    page.wait_for_function("document.querySelector('#bi-viewer [data-bi-refine-msg]').classList.contains('is-error')")
    assert "instruction" in page.inner_text(f"{VIEWER} [data-bi-refine-msg]").lower()
    assert ImageGenerationResult.objects.count() == 1

    # Paint the right half's middle, erase a bit of it, then send.
    page.fill("#bi-refine-instruction", "make the sky stormier")
    page.click(f'{VIEWER} [data-bi-act="paint"]')
    assert page.get_attribute(f'{VIEWER} [data-bi-act="paint"]', "aria-pressed") == "true"
    canvas = page.locator(f"{VIEWER} canvas").bounding_box()
    assert page.eval_on_selector(f"{VIEWER} canvas", "c => [c.width, c.height]") == [320, 200]

    def at(fx, fy):
        return canvas["x"] + canvas["width"] * fx, canvas["y"] + canvas["height"] * fy

    page.mouse.move(*at(0.6, 0.5))
    page.mouse.down()
    for fx in (0.65, 0.7, 0.75, 0.8, 0.85):
        page.mouse.move(*at(fx, 0.5))
    page.mouse.up()
    assert "Mask painted" in page.inner_text(f"{VIEWER} [data-bi-mask-state]")
    page.screenshot(path=str(ARTIFACTS / "viewer-mask.png"))
    with page.expect_navigation():
        page.click(f"{VIEWER} [data-bi-refine-submit]")
    page.wait_for_function("document.body.innerText.includes('Queued image #')")

    child = ImageGenerationResult.objects.get(parent=source)
    assert child.operation == "refine" and child.provider == "a1111" and child.review_id == source.review_id
    page.wait_for_selector(f'.bi-card[data-result="{child.pk}"][data-status="succeeded"]', timeout=TIMEOUT)
    child.refresh_from_db()
    assert child.status == ResultStatus.SUCCEEDED, child.error_message
    # The mask as sent: the source's size, white where painted, black elsewhere.
    with child.mask.open("rb") as handle:
        mask = Image.open(handle).convert("L")
        mask.load()
    assert mask.size == (320, 200)
    assert mask.getpixel((230, 100)) > 200  # painted
    assert mask.getpixel((40, 40)) < 30 and mask.getpixel((300, 190)) < 30  # kept
    (sent,) = a1111.img2img
    assert sent["json"].get("mask") and sent["json"]["init_images"]
    # The refined candidate shows where it came from.
    card = page.locator(f'.bi-card[data-result="{child.pk}"]')
    assert f"#{source.pk}" in card.inner_text()
    assert errors == []
    context.close()


def test_gallery_filters_and_viewer(browser, live_server, admin_user, uploads, reject):
    ARTIFACTS.mkdir(exist_ok=True)
    post, (a, b, c) = uploads
    reject(result=b, user=admin_user, comment="No")
    context, page = login(browser, live_server.url, "admin", "admin-pass")
    page.goto("/admin/blogimages/imagegenerationresult/")
    page.click(f'a[href="{GALLERY}"]')
    page.wait_for_url(f"**{GALLERY}")
    cards = page.locator(".bi-gallery__item")
    assert [int(x) for x in cards.evaluate_all("cs => cs.map(c => c.dataset.result)")] == [c.pk, b.pk, a.pk]
    # Thumbnails sit in fixed boxes whatever the image's shape.
    boxes = page.locator(".bi-gallery__box").evaluate_all("bs => bs.map(b => b.getBoundingClientRect().height)")
    assert len(set(round(h) for h in boxes)) == 1
    page.wait_for_function(
        "Array.from(document.querySelectorAll('.bi-gallery__box img')).every(i => i.naturalWidth > 0)"
    )
    page.screenshot(path=str(ARTIFACTS / "gallery.png"), full_page=True)

    # A filter applies when chosen.
    with page.expect_navigation():
        page.select_option("select[name=decision]", "rejected")
    assert "decision=rejected" in page.url and "provider=" not in page.url
    assert [int(x) for x in cards.evaluate_all("cs => cs.map(c => c.dataset.result)")] == [b.pk]
    with page.expect_navigation():
        page.select_option("select[name=decision]", "undecided")
    assert [int(x) for x in cards.evaluate_all("cs => cs.map(c => c.dataset.result)")] == [c.pk, a.pk]
    # The images open in the viewer; next goes to the gallery's next image.
    page.click(f'[data-bi-view="{c.pk}"]')
    page.wait_for_selector(f"{VIEWER}[open]")
    page.keyboard.press("ArrowRight")
    page.wait_for_function(f"document.getElementById('bi-viewer-title').textContent.includes('#{a.pk}')")
    page.keyboard.press("Escape")
    context.close()


def test_notice_when_a_batch_finishes(browser, live_server, live_worker, admin_user, make_post, placeholders):
    post = make_post(sections=2)
    context, page = login(browser, live_server.url, "admin", "admin-pass")
    page.goto(review_url(post))
    section = get_host().sections(post)[0]
    panel = page.locator(f"#bi-section-{section.key}")
    panel.locator("input[name=candidates]").fill("3")
    with page.expect_navigation():
        panel.locator("button[value=generate-section]").click()
    page.wait_for_selector(".bi-notice", timeout=TIMEOUT)
    assert "3 of 3 candidates finished for section “Section 1”." in page.inner_text(".bi-notice")
    assert ImageGenerationResult.objects.filter(status=ResultStatus.SUCCEEDED).count() == 3
    assert page.locator(".bi-notice").count() == 1

    # The playground says the same for a comparison.
    page.goto(PLAYGROUND)
    page.fill("#id_prompt", "A harbour at dawn")
    page.check("input[name=providers][value=sketch]")
    with page.expect_navigation():
        page.click("button[value=generate]")
    page.wait_for_selector(".bi-notice", timeout=TIMEOUT)
    assert "2 of 2 candidates finished for this comparison." in page.inner_text(".bi-notice")
    context.close()


def test_viewer_and_gallery_at_390_px(browser, live_server, live_worker, admin_user, uploads, placeholders):
    ARTIFACTS.mkdir(exist_ok=True)
    post, (a, b, c) = uploads
    context, page = login(browser, live_server.url, "admin", "admin-pass", viewport={"width": 390, "height": 844})

    def fits() -> bool:
        return page.evaluate(
            """() => Array.from(document.querySelectorAll('#bi-viewer button, #bi-viewer .bi-viewer__pane'))
                 .filter((el) => el.getClientRects().length && !el.closest('[hidden]'))
                 .every((el) => { const r = el.getBoundingClientRect(); return r.left >= -1 && r.right <= 391; })"""
        )

    page.goto(review_url(post))
    page.click(f'[data-bi-view="{a.pk}"]')
    page.wait_for_selector(f"{VIEWER}[open]")
    wait_loaded(page)
    frame = page.locator(f"{VIEWER} .bi-viewer__frame").bounding_box()
    assert 0 < frame["width"] <= 390
    assert fits()
    assert page.is_visible(f'{VIEWER} [data-bi-act="approve"]')
    page.keyboard.press("ArrowRight")
    page.wait_for_function(f"document.getElementById('bi-viewer-title').textContent.includes('#{b.pk}')")
    page.screenshot(path=str(ARTIFACTS / "viewer-390.png"))
    page.keyboard.press("Escape")

    # Compare at 390 px: stacked, still one scale.
    page.check(f'input[data-bi-compare][value="{a.pk}"]')
    page.check(f'input[data-bi-compare][value="{c.pk}"]')
    page.click('[data-bi-compare-bar] [data-bi-act="compare"]')
    wait_loaded(page)
    scales = pane_scales(page)
    assert scales[0] == pytest.approx(scales[1], rel=0.01)
    assert fits()
    page.keyboard.press("Escape")

    # The playground's viewer at 390 px.
    page.goto(PLAYGROUND)
    page.fill("#id_prompt", "Lanterns")
    with page.expect_navigation():
        page.click("button[value=generate]")
    page.wait_for_selector(".bi-grid .bi-card[data-status=succeeded] [data-bi-view]", timeout=TIMEOUT)
    page.click(".bi-grid [data-bi-view]")
    page.wait_for_selector(f"{VIEWER}[open]")
    wait_loaded(page)
    assert fits()
    page.keyboard.press("Escape")

    page.goto(GALLERY)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 392, width
    page.screenshot(path=str(ARTIFACTS / "gallery-390.png"), full_page=True)
    context.close()


def test_send_a_playground_result_to_a_section(browser, live_server, live_worker, admin_user, make_post, placeholders):
    post = make_post(sections=2, title="Cornish coast")
    make_post(sections=1, slug="other", title="Mountain huts")
    target = get_host().sections(post)[1]
    context, page = login(browser, live_server.url, "admin", "admin-pass")
    page.goto(PLAYGROUND)
    page.fill("#id_prompt", "Cliffs at dusk")
    with page.expect_navigation():
        page.click("button[value=generate]")
    page.wait_for_selector(".bi-grid .bi-card[data-status=succeeded] [data-bi-send]", timeout=TIMEOUT)
    result = ImageGenerationResult.objects.get()
    page.click(f'[data-bi-send="{result.pk}"]')
    page.wait_for_selector("dialog#bi-send[open]")
    assert page.evaluate("document.activeElement.id") == "bi-send-q"
    page.fill("#bi-send-q", "cornish")
    page.wait_for_function("document.querySelectorAll('#bi-send-post option').length === 2")
    page.select_option("#bi-send-post", label="Cornish coast")
    page.wait_for_function("!document.getElementById('bi-send-section').disabled")
    page.select_option("#bi-send-section", label=target.title)
    with page.expect_navigation():
        page.click("[data-bi-send-submit]")
    result.refresh_from_db()
    assert result.review.section_key == target.key
    page.goto(review_url(post))
    card = page.locator(f'#bi-section-{target.key} .bi-card[data-result="{result.pk}"]')
    assert card.count() == 1 and "placeholder" in card.inner_text()
    context.close()
