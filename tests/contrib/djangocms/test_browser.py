"""django CMS's edit mode in a real browser (Playwright, Debian's Chromium): open a post, open
"Images" in the toolbar, generate in the sideframe with a real RQ worker, approve, publish, and
see the image on the public page. A screenshot of the sideframe goes to tests/artifacts/."""

from __future__ import annotations

import os
import re

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from blogimages.hosts import get_host
from tests.test_browser import (  # noqa: F401 - fixtures
    ARTIFACTS,
    TIMEOUT,
    browser,
    live_worker,
    login,
    sqlite_lock_retry,
)

from .conftest import LANGUAGE, reload_urls

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_editor_generates_approves_and_publishes_in_edit_mode(browser, live_server, live_worker):  # noqa: F811
    import io

    from cms.toolbar.utils import get_object_edit_url
    from djangocms_stories.models import Post, PostContent
    from filer.models import Image

    ARTIFACTS.mkdir(exist_ok=True)
    call_command("cmsblog_demo", stdout=io.StringIO())
    reload_urls()
    post = Post.objects.get()
    public_url = get_host().post_public_url(post)
    sections = get_host().sections(post)
    context, page = login(browser, live_server.url, "admin", "blogimages-demo")
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    # The published post in the CMS: "New Draft" makes a draft (djangocms-versioning).
    published = PostContent.admin_manager.filter(post=post, language=LANGUAGE).get()
    page.goto(get_object_edit_url(published, language=LANGUAGE))
    page.locator(".cms-toolbar a.cms-versioning-js-edit-btn").click()
    page.wait_for_url(re.compile(r".*/edit/.*"))

    # Images › Review images opens the review page in the sideframe.
    page.locator(".cms-toolbar-item-navigation > li > a", has_text="Images").click()
    page.locator(".cms-toolbar-item-navigation a", has_text="Review images").click()
    frame = page.frame_locator(".cms-sideframe-frame iframe")
    frame.locator(".bi-panel").first.wait_for()
    assert frame.locator(".bi-panel").count() == 4
    with page.expect_navigation():  # after a change the page behind reloads, the sideframe stays open
        frame.locator("button[value=generate-post]").click()
    frame = page.frame_locator(".cms-sideframe-frame iframe")
    expect(frame.locator('.bi-card[data-status="succeeded"] img')).to_have_count(4, timeout=TIMEOUT)
    page.wait_for_timeout(300)
    page.screenshot(path=str(ARTIFACTS / "djangocms-edit-mode-images.png"))

    # Approve the first section's candidate: a filer image, and a plugin after the section in the draft.
    # The page behind reloads after the change, with the sideframe open again.
    # Alt text first: approving without it asks for a confirmation (issue 11, point 8).
    frame.locator(f"#bi-section-{sections[0].key} input[id^=bi-alt-]").fill("A lighthouse on a cliff & more")
    with page.expect_navigation():
        frame.locator(f"#bi-section-{sections[0].key} button.bi-approve").first.click()
    assert Image.objects.count() == 1
    page.locator(".blogimages-section-image img").wait_for()
    expect(page.frame_locator(".cms-sideframe-frame iframe").locator(".bi-card--approved")).to_have_count(1)
    page.screenshot(path=str(ARTIFACTS / "djangocms-edit-mode-approved.png"))
    page.locator(".cms-sideframe .cms-sideframe-close").first.click()

    # Publish the draft; the public page shows the image.
    page.locator(".cms-toolbar a.cms-btn", has_text=re.compile(r"^\s*Publish\s*$")).first.click()
    page.wait_for_load_state()
    reader = browser.new_context(base_url=live_server.url)
    public = reader.new_page()
    public.goto(public_url)
    image = public.locator(".blogimages-section-image img")
    image.wait_for()
    assert image.get_attribute("alt") and "<" not in image.get_attribute("alt")
    assert "/filer_public" in image.get_attribute("src")
    public.wait_for_function("document.querySelector('.blogimages-section-image img').naturalWidth > 0")
    reader.close()
    context.close()
    assert errors == []
