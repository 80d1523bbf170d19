# ruff: noqa: F811 - the fixtures imported from tests.test_browser are the tests' arguments
"""Live previews in a real browser (issue 15): a running OpenAI edit streams partial images
(the real ``openai`` client against tests/servers/openai_server.py); the job keeps the newest
(blogimages.refining), the review page's status answer names it, and live.js shows it on the
running card before the edit finishes.

The provider is the real OpenAI provider, configured under a test class that holds the job
after its first partial image until the test has seen it on the page (the local server sends
the partial images and the final one in one response, faster than a page polls).
"""

from __future__ import annotations

import os
import threading

import pytest

from blogimages import refining
from blogimages.contract import ForwardingReporter
from blogimages.models import ImageGenerationResult, ResultStatus
from blogimages.providers.openai import OpenAIImagesProvider
from tests.conftest import generated_result
from tests.servers.openai_server import OpenAIImagesServer
from tests.test_browser import (  # noqa: F401 - fixtures
    ARTIFACTS,
    TIMEOUT,
    browser,
    live_worker,
    login,
    sqlite_lock_retry,
)

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

#: Set by the test once the page showed the preview: the held edit may finish.
RELEASE = threading.Event()
#: Set by the provider when its first partial image has been handed to the job.
PREVIEWED = threading.Event()


class _HoldAfterPreview(ForwardingReporter):
    def preview(self, content: bytes) -> None:
        super().preview(content)
        if not PREVIEWED.is_set():
            PREVIEWED.set()
            RELEASE.wait(60)


class HeldOpenAI(OpenAIImagesProvider):
    """The OpenAI provider, holding the job after its first partial image (see the module doc)."""

    def generate(self, request, reporter):
        return super().generate(request, _HoldAfterPreview(reporter))


@pytest.fixture
def openai_edit(settings, thread_server):
    RELEASE.clear()
    PREVIEWED.clear()
    server = thread_server(OpenAIImagesServer(api_key="sk-test"))
    settings.BLOGIMAGES_PROVIDERS = {
        "placeholder": {"BACKEND": "blogimages.providers.placeholder.PlaceholderProvider", "OPTIONS": {}},
        "openai": {
            "BACKEND": f"{__name__}.HeldOpenAI",
            "OPTIONS": {"api_key": "sk-test", "base_url": server.url, "partial_images": 2},
        },
    }
    redis = refining._redis()
    for key in redis.scan_iter("blogimages:preview:*"):
        redis.delete(key)
    yield server
    RELEASE.set()  # never leave the worker thread waiting
    for key in redis.scan_iter("blogimages:preview:*"):
        redis.delete(key)


def test_a_running_openai_edit_shows_its_partial_image_on_the_card(
    browser, live_server, live_worker, admin_user, make_post, openai_edit
):
    section = make_post(sections=1).sections.get()
    parent = generated_result(section, prompt="A lighthouse at dusk", width=1024, height=768, colour=(20, 60, 120))
    ImageGenerationResult.objects.filter(pk=parent.pk).update(provider="openai", provider_used="openai")
    parent.refresh_from_db()
    [child] = refining.refine(parent, operation="refine", instruction="make the sky stormier")
    assert PREVIEWED.wait(30), "the edit sent no partial image"

    context, page = login(browser, live_server.url, "admin", "admin-pass")
    page.goto(f"/admin/blog/post/{section.post_id}/images/")
    card = page.locator(f'.bi-card[data-result="{child.pk}"]')
    page.evaluate(f"window.__card = document.querySelector('.bi-card[data-result=\"{child.pk}\"]')")
    preview = card.locator("img.bi-live-preview")
    preview.wait_for(timeout=TIMEOUT)
    page.wait_for_function(
        f"document.querySelector('.bi-card[data-result=\"{child.pk}\"] img.bi-live-preview').naturalWidth > 0",
        timeout=TIMEOUT,
    )
    # Shown while the edit still runs: the job is held until the test says so.
    child.refresh_from_db()
    assert child.status == ResultStatus.RUNNING
    assert card.get_attribute("data-status") == "running" and card.get_attribute("data-preview") == "1"
    assert f"/api/v1/images/results/{child.pk}/preview?n=1" in preview.get_attribute("src")
    # Only the image was added: the same card element, its progress bar and buttons still there.
    assert page.evaluate(f"window.__card === document.querySelector('.bi-card[data-result=\"{child.pk}\"]')")
    assert card.locator(".bi-progress").count() == 1
    width = page.evaluate(
        f"document.querySelector('.bi-card[data-result=\"{child.pk}\"] img.bi-live-preview').naturalWidth"
    )
    assert 0 < width <= refining.PREVIEW_SIDE
    ARTIFACTS.mkdir(exist_ok=True)
    card.screenshot(path=str(ARTIFACTS / "review-live-preview.png"))

    RELEASE.set()
    page.wait_for_selector(
        f'.bi-card[data-result="{child.pk}"][data-status="succeeded"] img:not(.bi-live-preview)', timeout=TIMEOUT
    )
    child.refresh_from_db()
    assert child.status == ResultStatus.SUCCEEDED, child.error_message
    assert page.locator(f'.bi-card[data-result="{child.pk}"] img.bi-live-preview').count() == 0
    context.close()
