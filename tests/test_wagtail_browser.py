# ruff: noqa: F811 - the fixtures are imported from the Django-admin browser tests
"""blogimages inside Wagtail's admin in a real browser: Playwright driving Debian's Chromium.

The same setup as tests/test_browser.py (live server thread, a real RQ worker thread on
the test's Redis, transactional database), with the Wagtail host adapter and the Wagtail
example site's URLs. The editor is no superuser: page edit and publish permission on the
site, "add image" and "choose image" on the root collection, and blogimages' permissions.
"""

from __future__ import annotations

import os
from html import escape

import pytest
from django.core.management import call_command
from django.urls import reverse

from blogimages.models import ImageGenerationResult, ResultStatus

from .test_browser import (  # noqa: F401 - fixtures
    ARTIFACTS,
    TIMEOUT,
    browser,
    live_worker,
    slow_placeholders,
    sqlite_lock_retry,
    wait_for_progress_in_place,
)
from .test_wagtail_admin import make_wagtail_editor, wagtail_host  # noqa: F401 - fixtures

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

EDITOR_PAGE_PERMS = ("change_page", "publish_page")
EDITOR_IMAGE_PERMS = ("add_image", "choose_image")


@pytest.fixture
def demo_page(db):
    """The Wagtail demo's blog page (4 sections) and its library, as ``make demo-wagtail`` loads them."""
    from project.wagtailblog.models import BlogPage

    ensure_wagtail_tree()
    call_command("wagtailblog_demo", stdout=open(os.devnull, "w"))  # noqa: SIM115
    return BlogPage.objects.get(slug="cornish-coast")


def ensure_wagtail_tree() -> None:
    """Wagtail's root page, default site, locale and root collection, which its migrations make
    and an earlier transactional test's flush removed."""
    from wagtail.models import Collection, Locale, Page, Site

    Locale.objects.get_or_create(language_code="en")
    if not Collection.objects.exists():
        Collection.add_root(name="Root")
    if not Site.objects.exists():
        root = Page.get_first_root_node() or Page.add_root(instance=Page(title="Root", slug="root"))
        home = root.add_child(instance=Page(title="Welcome", slug="home"))
        Site.objects.create(hostname="localhost", port=80, root_page=home, is_default_site=True)


def wagtail_login(browser, base_url: str, username: str, password: str = "editor-pass"):
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, base_url=base_url)
    context.set_default_timeout(TIMEOUT)
    page = context.new_page()
    page.goto("/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_url("**/admin/")
    return context, page


def test_editor_generates_approves_chooses_and_publishes_in_wagtail(
    browser, live_server, live_worker, demo_page, make_wagtail_editor, slow_placeholders
):
    ARTIFACTS.mkdir(exist_ok=True)
    make_wagtail_editor("editor", page_perms=EDITOR_PAGE_PERMS, image_perms=EDITOR_IMAGE_PERMS)
    context, page = wagtail_login(browser, live_server.url, "editor")
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    review_path = reverse("blogimages_wagtail:review", args=[demo_page.pk])

    # The page editor's header "…" menu has "Images".
    page.goto(f"/admin/pages/{demo_page.pk}/edit/")
    page.locator("header [aria-label='Actions']").first.click()
    page.locator("a[data-blogimages-review=header]").click()
    page.wait_for_url(f"**{review_path}")
    assert page.locator(".bi-panel").count() == 4
    assert page.locator("#wagtail-sidebar").count() == 1
    assert "Images" in page.locator(".w-breadcrumbs").inner_text()

    # Generate for all sections; progress shows without reloading.
    page.select_option("select[name=provider]", "placeholder")
    page.click("button[value=generate-post]")
    page.wait_for_selector(".messages .success")
    assert "Queued 4 images." in page.locator(".messages").inner_text()
    page.screenshot(path=str(ARTIFACTS / "wagtail-review-top.png"))
    wait_for_progress_in_place(page, images=4, timeout=TIMEOUT * 2)
    # Thumbnails load lazily: scroll the last panel into view first.
    page.locator(".bi-panel").last.scroll_into_view_if_needed()
    page.wait_for_function("Array.from(document.querySelectorAll('.bi-card img')).every(i => i.naturalWidth > 0)")
    page.screenshot(path=str(ARTIFACTS / "wagtail-review-page.png"), full_page=True)

    # Approve two.
    for index in (0, 1):
        # Alt text first: approving without it asks for a confirmation (issue 11, point 8).
        page.locator(".bi-panel").nth(index).locator("input[id^=bi-alt-]").fill(f"A lighthouse, view {index + 1}")
        page.locator(".bi-panel").nth(index).locator("button.bi-approve").click()
        # A section's message shows in its panel, where the editor acted (issue 11).
        page.locator(".bi-panel").nth(index).locator(".bi-messages .success").wait_for()
        assert "Approved image #" in page.locator(".bi-panel").nth(index).locator(".bi-messages").inner_text()
    assert page.locator(".bi-panel--approved").count() == 2
    approved = ImageGenerationResult.objects.approved()
    assert approved.count() == 2
    page.locator(".bi-panel").first.screenshot(path=str(ARTIFACTS / "wagtail-review-panel.png"))

    # Wagtail's image chooser offers both approved images.
    from wagtail.images import get_image_model

    images = list(get_image_model().objects.order_by("pk"))
    assert len(images) == 2
    chooser = context.request.get("/admin/images/chooser/")
    assert chooser.ok
    chooser_html = chooser.json()["html"]
    for image in images:
        assert escape(image.title) in chooser_html

    # Publish the page from its editor (the footer's action menu).
    page.goto(f"/admin/pages/{demo_page.pk}/edit/")
    page.locator("footer .w-dropdown__toggle").first.click()
    page.locator("button[name=action-publish]").click()
    page.wait_for_selector(".messages .success")
    demo_page.refresh_from_db()
    assert demo_page.live and not demo_page.has_unpublished_changes

    # The public page shows the two approved images through {% image %} renditions.
    public = context.new_page()
    public.goto(demo_page.url)
    rendered = public.locator("article figure.section-image img")
    assert rendered.count() == 2
    sources = rendered.evaluate_all("els => els.map(e => e.getAttribute('src'))")
    assert all("/images/" in src and ".width-960" in src for src in sources), sources
    public.screenshot(path=str(ARTIFACTS / "wagtail-public-page.png"), full_page=True)
    assert errors == []
    assert ImageGenerationResult.objects.filter(status=ResultStatus.SUCCEEDED).count() == 4
    context.close()


def test_editor_without_page_permission_has_no_images(browser, live_server, demo_page, make_wagtail_editor):
    make_wagtail_editor("outsider", page_perms=(), image_perms=EDITOR_IMAGE_PERMS)
    context, page = wagtail_login(browser, live_server.url, "outsider")
    page.goto(f"/admin/pages/{demo_page.get_parent().pk}/")
    assert page.locator("a[data-blogimages-review]").count() == 0
    page.goto(reverse("blogimages_wagtail:review", args=[demo_page.pk]))
    page.wait_for_url("**/admin/")
    assert "do not have permission" in page.locator(".messages").inner_text()
    status = context.request.get(
        reverse("blogimages_wagtail:review_status", args=[demo_page.pk]), headers={"X-Requested-With": "XMLHttpRequest"}
    )
    assert status.status == 403
    context.close()
