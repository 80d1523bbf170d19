"""The editors' workspace in a real browser: Playwright driving Debian's Chromium.

The live server runs in a thread and a real RQ worker runs in another, against the
test's real Redis; the tests are transactional so all three threads share the data
(SQLite's shared-cache in-memory database, or PostgreSQL with DATABASE_URL).
Screenshots of the review panel and the playground grid go to tests/artifacts/.
"""

from __future__ import annotations

import io
import os
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from blogimages.models import (
    ImageGenerationResult,
    ResultStatus,
    ReviewAction,
    ReviewEvent,
    ReviewStatus,
    SectionReview,
)

# Playwright's sync API runs an event loop in this thread; the ORM calls the tests make
# between browser steps are still plain synchronous calls.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).parent / "artifacts"
TIMEOUT = 30_000  # ms; generous for slow CI machines, never reached when things work
ACTIVE_CARDS = '.bi-card[data-status="queued"], .bi-card[data-status="running"]'


@pytest.fixture(scope="module")
def browser():
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def slow_placeholders(settings):
    """Two placeholder aliases slow enough that progress is visible while it runs."""
    base = "blogimages.providers.placeholder.PlaceholderProvider"
    settings.BLOGIMAGES_PROVIDERS = {
        "placeholder": {"BACKEND": base, "OPTIONS": {"delay": 1.6, "steps": 4}},
        "sketch": {"BACKEND": base, "OPTIONS": {"delay": 0.8, "steps": 2}},
    }
    settings.BLOGIMAGES_DEFAULT_PROVIDER = "placeholder"


@pytest.fixture
def sqlite_lock_retry(live_server):
    """Wait out SQLite's shared-cache table locks, as a busy timeout would on a database file.

    The live server, the worker thread and the test share one in-memory database through
    SQLite's shared cache, where a writer holding a table makes a second connection fail
    at once with "database table is locked" (busy_timeout does not apply to these locks).
    A loaded CI machine makes that collision likely; here each statement is retried for a
    while instead. PostgreSQL (DATABASE_URL) needs none of this.
    """
    from django.db import OperationalError, connections
    from django.db.backends.signals import connection_created

    def retry(execute, sql, params, many, context):
        deadline = time.monotonic() + 10
        while True:
            try:
                return execute(sql, params, many, context)
            except OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def install(sender, connection, **kwargs):
        if connection.vendor == "sqlite" and retry not in connection.execute_wrappers:
            connection.execute_wrappers.append(retry)

    shared = [connections["default"], *live_server.thread.connections_override.values()]
    for conn in shared:
        install(None, conn)
    connection_created.connect(install, weak=False, dispatch_uid="test-browser-sqlite-retry")
    yield
    connection_created.disconnect(dispatch_uid="test-browser-sqlite-retry")
    for conn in shared:
        if retry in conn.execute_wrappers:
            conn.execute_wrappers.remove(retry)


@pytest.fixture
def live_worker(rq_queue, sqlite_lock_retry):
    """A real RQ worker in a background thread, working the queue until the test ends."""
    from django.db import connections
    from rq import SimpleWorker
    from rq.timeouts import TimerDeathPenalty

    class ThreadWorker(SimpleWorker):
        # Signals and SIGALRM belong to the main thread; a timer thread enforces timeouts.
        death_penalty_class = TimerDeathPenalty

        def _install_signal_handlers(self) -> None:
            pass

    stop = threading.Event()
    errors: list[BaseException] = []

    def loop() -> None:
        try:
            while not stop.is_set():
                ThreadWorker([rq_queue], connection=rq_queue.connection).work(
                    burst=True, with_scheduler=False, logging_level="WARNING"
                )
                stop.wait(0.1)
        except BaseException as exc:  # noqa: BLE001 - surfaced by the fixture below
            errors.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=loop, name="rq-test-worker", daemon=True)
    thread.start()
    yield thread
    stop.set()
    thread.join(timeout=30)
    assert not thread.is_alive(), "the RQ worker thread did not stop"
    assert not errors, errors


def login(browser, base_url: str, username: str, password: str, **context_options):
    """A new browser context (``context_options`` as Playwright's new_context takes them) logged in to the admin."""
    options = {"viewport": {"width": 1400, "height": 1000}, **context_options}
    context = browser.new_context(base_url=base_url, **options)
    context.set_default_timeout(TIMEOUT)
    page = context.new_page()
    page.goto("/admin/login/?next=/admin/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/")
    return context, page


def png_bytes(colour=(30, 120, 200), size=(640, 400)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def csrf_token(context) -> str:
    return next(c["value"] for c in context.cookies() if c["name"] == "csrftoken")


def card_for(page, section_id: int, nth: int = 0):
    return page.locator(f"#bi-section-{section_id} .bi-card").nth(nth)


def wait_for_progress_in_place(page, images: int, timeout: float = TIMEOUT) -> None:
    """After a "generate" click: no card is queued or running any more and ``images`` cards
    succeeded with an image; running cards showed their progress and the page never reloaded."""
    page.evaluate(
        """() => {
            window.__biSameDocument = true;
            window.__biSeen = [];
            new MutationObserver(() => {
                document.querySelectorAll('.bi-card[data-status="running"] [data-bi-progress-text]')
                    .forEach((el) => window.__biSeen.push(el.textContent));
            }).observe(document.body, {subtree: true, childList: true, characterData: true, attributes: true});
        }"""
    )
    page.wait_for_function(
        f"""() => document.querySelectorAll('{ACTIVE_CARDS}').length === 0
               && document.querySelectorAll('.bi-card[data-status="succeeded"] img').length === {images}""",
        timeout=timeout,
    )
    assert page.evaluate("window.__biSameDocument") is True, "the page reloaded"
    assert any("%" in text for text in page.evaluate("window.__biSeen")), "no running progress was shown"


def test_editor_generates_reviews_uploads_and_publishes(
    browser, live_server, live_worker, admin_user, make_post, slow_placeholders
):
    ARTIFACTS.mkdir(exist_ok=True)
    post = make_post(sections=3)
    sections = list(post.sections.all())
    context, page = login(browser, live_server.url, "admin", "admin-pass")
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    # The change form links to the review page.
    page.goto(f"/admin/blog/post/{post.pk}/change/")
    page.click("a.bi-review-link")
    page.wait_for_url(f"**/admin/blog/post/{post.pk}/images/")
    assert page.locator(".bi-panel").count() == 3
    assert "No images yet." in page.locator(f"#bi-section-{sections[0].pk}").inner_text()

    # Generate for all sections: one job per section, progress shown without reloading.
    page.click("button[value=generate-post]")
    page.wait_for_selector(".messagelist .success")
    assert "Queued 3 images." in page.locator(".messagelist").inner_text()
    assert page.locator(ACTIVE_CARDS).count() >= 1
    wait_for_progress_in_place(page, images=3)
    page.wait_for_function("Array.from(document.querySelectorAll('.bi-card img')).every(i => i.naturalWidth > 0)")
    for section in sections:
        labels = card_for(page, section.pk).locator(".bi-card__labels").inner_text()
        assert "placeholder" in labels and "seed" in labels and "Succeeded" in labels

    # Approve the first section's candidate.
    first = card_for(page, sections[0].pk)
    page.fill(f"#bi-alt-{sections[0].pk}", "A lighthouse on a cliff")  # else the page asks first
    first.locator("button.bi-approve").click()
    page.wait_for_selector(".messagelist .success")
    assert "Approved image #" in page.locator(".messagelist").inner_text()
    assert card_for(page, sections[0].pk).locator(".bi-badge--approved").count() == 1

    # Reject the second section's candidate: the comment is required, then it goes through.
    second = card_for(page, sections[1].pk)
    second.locator("button.bi-reject").click()
    # The browser held the empty comment back and said why.
    assert "Rejected" not in page.locator(".messagelist").inner_text()
    assert "comment is required" in page.eval_on_selector(f"#bi-comment-{sections[1].pk}", "e => e.validationMessage")
    page.fill(f"#bi-comment-{sections[1].pk}", "Too dark for a summer post")
    card_for(page, sections[1].pk).locator("button.bi-reject").click()
    page.wait_for_selector(".messagelist .success")
    assert "Rejected image #" in page.locator(".messagelist").inner_text()
    rejected = ReviewEvent.objects.get(action=ReviewAction.REJECTED)
    assert rejected.comment == "Too dark for a summer post" and rejected.user == admin_user

    # Upload a replacement for the third section and approve it at once.
    panel = page.locator(f"#bi-section-{sections[2].pk}")
    panel.locator("input[type=file]").set_input_files(
        {"name": "harbour.png", "mimeType": "image/png", "buffer": png_bytes()}
    )
    panel.locator("input[name=approve_now]").check()
    page.fill(f"#bi-upload-alt-{sections[2].pk}", "A harbour")
    panel.locator("button[value=upload]").click()
    page.wait_for_selector(".messagelist .success")
    assert "Uploaded harbour.png" in page.locator(".messagelist").inner_text()
    uploaded = ImageGenerationResult.objects.get(source="uploaded")
    assert uploaded.is_approved and (uploaded.width, uploaded.height) == (640, 400)

    # A bad upload is refused in one sentence, and nothing is stored.
    panel = page.locator(f"#bi-section-{sections[1].pk}")
    panel.locator("input[type=file]").set_input_files(
        {"name": "notes.png", "mimeType": "image/png", "buffer": b"<svg onload=alert(1)></svg>"}
    )
    panel.locator("button[value=upload]").click()
    page.wait_for_selector(".messagelist .error")
    assert "The upload was refused" in page.locator(".messagelist").inner_text()
    assert ImageGenerationResult.objects.filter(source="uploaded").count() == 1

    page.locator(f"#bi-section-{sections[0].pk}").scroll_into_view_if_needed()
    page.locator(f"#bi-section-{sections[0].pk} details.bi-history summary").click()
    page.locator(f"#bi-section-{sections[0].pk}").screenshot(path=str(ARTIFACTS / "review-panel.png"))
    page.screenshot(path=str(ARTIFACTS / "review-page.png"), full_page=True)

    reviews = {r.section_key: r for r in SectionReview.objects.for_post(post)}
    assert reviews[str(sections[0].pk)].status == ReviewStatus.APPROVED
    assert reviews[str(sections[2].pk)].approved_result_id == uploaded.pk

    # The public page shows the two approved images, and only those.
    public = context.new_page()
    public.goto(f"/blog/{post.slug}/")
    images = public.locator("article img")
    assert images.count() == 2
    public.wait_for_function("Array.from(document.querySelectorAll('article img')).every(i => i.naturalWidth > 0)")
    assert public.locator(f"#section-{sections[1].pk} img").count() == 0
    public.screenshot(path=str(ARTIFACTS / "public-page.png"), full_page=True)
    assert errors == []
    context.close()


def test_playground_compares_providers_side_by_side(browser, live_server, live_worker, admin_user, slow_placeholders):
    from blogimages.models import ImageFormat, ImagePromptExample, ImageStyle

    ARTIFACTS.mkdir(exist_ok=True)
    ImageStyle.objects.create(name="Watercolour", prompt_template="{prompt}, watercolour, soft light")
    ImageFormat.objects.create(name="Wide", width=768, height=432)
    context, page = login(browser, live_server.url, "admin", "admin-pass")
    page.goto("/admin/blogimages/imagegenerationresult/playground/")
    page.fill("#id_prompt", "A harbour at dawn with fishing boats")
    page.select_option("#id_style", label="Watercolour")
    page.select_option("#id_image_format", label="Wide (768x432)")
    page.check("input[name=providers][value=sketch]")
    page.click("button[value=generate]")
    page.wait_for_selector(".messagelist .success")
    assert page.locator(".bi-grid .bi-card").count() == 2
    page.wait_for_function(
        "document.querySelectorAll('.bi-grid .bi-card[data-status=\"succeeded\"] img').length === 2",
        timeout=TIMEOUT,
    )
    page.wait_for_function("Array.from(document.querySelectorAll('.bi-grid img')).every(i => i.naturalWidth > 0)")
    titles = page.locator(".bi-grid .bi-card__title").all_inner_texts()
    assert sorted(t.split()[0] for t in titles) == ["placeholder", "sketch"]
    assert "768×432" in page.locator(".bi-grid").inner_text()
    page.locator(".bi-compare").screenshot(path=str(ARTIFACTS / "playground-grid.png"))

    # Save the combination, then reopen a result's exact settings.
    page.fill("#id_example_name", "Harbour watercolour")
    page.click("button[value=save]")
    page.wait_for_selector(".messagelist .success")
    example = ImagePromptExample.objects.get(name="Harbour watercolour")
    assert example.style.name == "Watercolour" and example.image_format.width == 768
    assert example.created_by == admin_user

    sketch = ImageGenerationResult.objects.get(provider="sketch")
    page.click(f'.bi-card[data-result="{sketch.pk}"] >> text=Use these settings again')
    page.wait_for_url(f"**/playground/?from={sketch.pk}")
    assert page.input_value("#id_prompt") == "A harbour at dawn with fishing boats"
    assert page.input_value("#id_seed") == str(sketch.seed)
    assert page.is_checked("input[name=providers][value=sketch]")
    assert not page.is_checked("input[name=providers][value=placeholder]")
    context.close()


def test_editor_without_review_permission_cannot_approve(
    browser, live_server, live_worker, make_editor, make_post, admin_user, slow_placeholders
):
    from blogimages import services

    post = make_post(sections=1)
    section = post.sections.get()
    make_editor("gen", perms=["generate_images", "upload_images"])
    # The worker thread picks the job up as soon as it commits.
    services.generate_for_post(post, user=admin_user)
    result = ImageGenerationResult.objects.get()

    context, page = login(browser, live_server.url, "gen", "editor-pass")
    page.goto(f"/admin/blog/post/{post.pk}/images/")
    page.wait_for_selector(f'.bi-card[data-result="{result.pk}"][data-status="succeeded"]', timeout=TIMEOUT)
    card = page.locator(f'.bi-card[data-result="{result.pk}"]')
    assert card.locator("button.bi-approve").count() == 0
    assert card.locator("button.bi-reject").count() == 0
    assert card.locator("button[value^=regenerate]").count() == 2  # what they may do is there

    url = f"{live_server.url}/admin/blog/post/{post.pk}/images/"
    token = csrf_token(context)
    forged = page.request.post(
        url,
        form={"csrfmiddlewaretoken": token, "do": f"approve:{result.pk}", "section": str(section.pk)},
        max_redirects=0,
    )
    assert forged.status == 403
    result.refresh_from_db()
    assert not result.is_approved
    # The same request shape with an allowed action goes through, so the 403 was the permission.
    allowed = page.request.post(
        url,
        form={"csrfmiddlewaretoken": token, "do": "comment", "section": str(section.pk), "comment": "ok"},
        max_redirects=0,
    )
    assert allowed.status == 302
    assert ReviewEvent.objects.filter(action=ReviewAction.COMMENTED, comment="ok").exists()
    assert ImageGenerationResult.objects.filter(status=ResultStatus.SUCCEEDED).count() == 1
    context.close()
