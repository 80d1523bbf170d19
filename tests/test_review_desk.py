"""The review desk (issue 11), below the browser: each candidate's own decision, several
decisions at once, feedback in the section acted on, what was sent, upload refusals in
sentences, going back to the review page after editing a section, a queue nobody works,
and the smaller labels. The browser side is tests/test_browser_review_desk.py."""

from __future__ import annotations

import io
import re

import pytest
from django.contrib.messages import get_messages
from django.core.exceptions import ValidationError
from django.utils import timezone
from PIL import Image

from blogimages import services
from blogimages.admin_views.common import aspect_label, error_text
from blogimages.exceptions import UploadRejected
from blogimages.models import ImageFormat, ImageGenerationResult, ReviewAction, ReviewEvent, ReviewStatus, SectionReview

pytestmark = pytest.mark.django_db

RESULTS = "/admin/blogimages/imagegenerationresult/"
REVIEWS = "/admin/blogimages/sectionreview/"


def review_url(post) -> str:
    return f"/admin/blog/post/{post.pk}/images/"


def texts(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def panel_html(html: str, key: str) -> str:
    """The HTML of one section's panel on the review page."""
    start = html.index(f'id="bi-section-{key}"')
    end = html.find('<section class="bi-panel', start)
    return html[start : end if end != -1 else len(html)]


@pytest.fixture
def two_sections(make_post, make_result):
    """A post with two sections; the first has three finished candidates, the second one."""
    post = make_post(sections=2)
    first, second = post.sections.order_by("position")
    a, b, c = (make_result(services.as_section(first), colour=(10 * i, 80, 40)) for i in range(3))
    d = make_result(services.as_section(second))
    return post, (first, second), (a, b, c, d)


# --- 2. each candidate carries its own decision -------------------------------------------------


def test_rejecting_a_candidate_marks_it_and_approving_it_clears_the_mark(two_sections, admin_user, approve, reject):
    _post, _sections, (a, b, _c, _d) = two_sections
    reject(result=a, user=admin_user, comment="Too dark")
    a.refresh_from_db()
    assert a.rejected_at is not None and a.rejected_by == admin_user and a.rejection_comment == "Too dark"
    b.refresh_from_db()
    assert b.rejected_at is None  # only the one rejected
    review = approve(a, user=admin_user)
    a.refresh_from_db()
    assert (a.rejected_at, a.rejected_by, a.rejection_comment) == (None, None, "")
    assert review.approved_result_id == a.pk
    # Rejecting the approved one marks it and clears the section's approval.
    review = reject(result=a, user=admin_user, comment="Changed my mind")
    a.refresh_from_db()
    assert a.rejection_comment == "Changed my mind" and review.status == ReviewStatus.REJECTED
    assert review.approved_result_id is None


def test_rejecting_a_section_does_not_mark_its_candidates(two_sections, admin_user, reject):
    _post, (first, _second), (a, _b, _c, _d) = two_sections
    reject(first, user=admin_user, comment="None of these")
    a.refresh_from_db()
    assert a.rejected_at is None


def test_the_card_shows_the_rejection_and_approve_is_no_longer_primary(client, two_sections, admin_user, reject):
    post, (first, _second), (a, b, _c, _d) = two_sections
    reject(result=a, user=admin_user, comment="Wrong lighthouse")
    client.force_login(admin_user)
    html = client.get(review_url(post)).content.decode()
    card = re.search(rf'<article [^>]*data-result="{a.pk}".*?</article>', html, re.S).group(0)
    assert "bi-card--rejected" in card and 'data-decision="rejected"' in card
    assert "Rejected: Wrong lighthouse — by admin" in card
    assert f'value="approve:{a.pk}" class="button bi-approve"' not in card  # not the primary action
    assert f'value="approve:{a.pk}" class="button bi-approve-anyway"' in card  # approve anyway
    assert f'value="reject:{a.pk}"' not in card  # already rejected
    other = re.search(rf'<article [^>]*data-result="{b.pk}".*?</article>', html, re.S).group(0)
    assert f'value="approve:{b.pk}" class="button bi-approve"' in other
    # The section says how many of its candidates are rejected and how many wait for a decision.
    panel = panel_html(html, str(first.pk))
    assert "1 candidate rejected" in panel and "2 to decide" in panel


def test_results_list_has_a_decision_filter_and_column(client, two_sections, admin_user, approve, reject):
    _post, _sections, (a, b, c, d) = two_sections
    reject(result=a, user=admin_user, comment="Blurry")
    approve(b, user=admin_user)
    client.force_login(admin_user)

    def listed(decision):
        html = client.get(RESULTS, {"decision": decision}).content.decode()
        return {int(pk) for pk in re.findall(r'name="_selected_action" value="(\d+)"', html)}

    assert listed("approved") == {b.pk}
    assert listed("rejected") == {a.pk}
    assert listed("undecided") == {c.pk, d.pk}
    html = client.get(RESULTS).content.decode()
    assert "column-decision" in html and 'title="Blurry"' in html
    assert "?decision=rejected" in html  # the filter is offered


# --- bulk ---------------------------------------------------------------------------------------


def test_decide_many_rejects_all_with_one_comment(two_sections, admin_user):
    _post, _sections, (a, b, _c, d) = two_sections
    with pytest.raises(ValidationError, match="one comment is required"):
        services.decide_many([a, d], decision="reject", user=admin_user, comment=" ")
    done = services.decide_many([a, b, d], decision="reject", user=admin_user, comment="Off brand")
    assert done.summary == f"Rejected 3 images (#{a.pk}, #{b.pk}, #{d.pk}): “Off brand”."
    assert set(ImageGenerationResult.objects.filter(rejection_comment="Off brand").values_list("pk", flat=True)) == {
        a.pk,
        b.pk,
        d.pk,
    }
    assert ReviewEvent.objects.filter(action=ReviewAction.REJECTED).count() == 3


def test_decide_many_approves_one_per_section_or_nothing(two_sections, admin_user, approve):
    _post, _sections, (a, b, c, d) = two_sections
    approve(c, user=admin_user)
    with pytest.raises(ValidationError, match=rf"#{a.pk} and #{b.pk} are both for “Section 1”.*nothing was approved"):
        services.decide_many([a, b, d], decision="approve", user=admin_user)
    assert not ImageGenerationResult.objects.filter(pk__in=[a.pk, b.pk, d.pk], approved_for__isnull=False).exists()
    done = services.decide_many([a, d], decision="approve", user=admin_user)
    assert done.replaced == {a.pk: c.pk}
    assert done.summary == f"Approved 2 images (#{a.pk}, #{d.pk}). #{a.pk} replaces #{c.pk}."
    assert set(SectionReview.objects.values_list("approved_result_id", flat=True)) == {a.pk, d.pk}


def test_decide_many_asks_before_publishing_without_alt_text(two_sections, admin_user):
    _post, (first, second), (a, _b, _c, d) = two_sections
    services.save_alt_text(a.review, "A lighthouse at dusk")
    with pytest.raises(services.MissingAltText) as refused:
        services.decide_many([a, d], decision="approve", user=admin_user, allow_missing_alt=False)
    assert refused.value.results == [d]
    assert str(d.pk) in refused.value.messages[0] and "“Section 2”" in refused.value.messages[0]
    assert not SectionReview.objects.filter(approved_result__isnull=False).exists()
    services.save_alt_text(d.review, "The harbour wall")
    done = services.decide_many([a, d], decision="approve", user=admin_user, allow_missing_alt=False)
    assert set(SectionReview.objects.values_list("approved_result_id", flat=True)) == {a.pk, d.pk}
    assert done.summary == f"Approved 2 images (#{a.pk}, #{d.pk})."


def test_decide_many_is_all_or_nothing(two_sections, admin_user, make_post):
    _post, _sections, (a, _b, _c, d) = two_sections
    queued = ImageGenerationResult.objects.create(
        review=d.review, prompt="p", final_prompt="p", provider="placeholder", params={}
    )
    with pytest.raises(Exception, match="Nothing was approved"):
        services.decide_many([a, queued], decision="approve", user=admin_user)
    assert not SectionReview.objects.filter(approved_result__isnull=False).exists()


def test_review_page_bulk_actions(client, two_sections, admin_user, django_capture_on_commit_callbacks):
    post, _sections, (a, b, _c, d) = two_sections
    client.force_login(admin_user)
    html = client.get(review_url(post)).content.decode()
    assert 'id="bi-bulk"' in html and html.count('class="bi-select"') == 4
    assert "Only one image per section can be approved." in html
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(review_url(post), {"do": "approve-selected", "ids": [a.pk, b.pk]}, follow=True)
    assert texts(response) == [
        f"Only one image per section can be approved: #{a.pk} and #{b.pk} are both for “Section 1”. "
        "Tick one of them; nothing was approved."
    ]
    # A page-wide action: its message is at the top of the page, not in a panel.
    page = response.content.decode()
    assert page.index("Only one image per section") < page.index('class="bi-panel ')
    services.save_alt_text(a.review, "A lighthouse at dusk")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            review_url(post), {"do": "approve-selected", "ids": [a.pk, d.pk], "comment": "Good pair"}, follow=True
        )
    # d's section has no alt text: asked first, nothing approved, the confirm keeps the ticks and the comment.
    asked = (
        f"Image #{d.pk} (“Section 2”) would be published without alt text; screen readers would say nothing. "
        "Nothing was approved: write its alt text, or approve anyway."
    )
    assert texts(response) == [asked]
    assert not SectionReview.objects.filter(approved_result__isnull=False).exists()
    page = response.content.decode()
    confirm = page[page.index('class="bi-bulk-confirm') : page.index('id="bi-bulk"')]
    assert asked in confirm and page.count(asked) == 1  # beside the bulk buttons, not also at the top
    assert re.findall(r'name="ids" value="(\d+)"', confirm) == [str(a.pk), str(d.pk)]
    assert 'name="comment" value="Good pair"' in confirm and 'name="publish_without_alt" value="1"' in confirm
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            review_url(post),
            {"do": "approve-selected", "ids": [a.pk, d.pk], "comment": "Good pair", "publish_without_alt": "1"},
            follow=True,
        )
    assert texts(response) == [f"Approved 2 images (#{a.pk}, #{d.pk})."]
    assert "bi-bulk-confirm" not in response.content.decode()
    response = client.post(review_url(post), {"do": "reject-selected", "ids": [b.pk], "comment": ""}, follow=True)
    assert texts(response) == ["Say why the images are rejected; one comment is required for all of them."]
    response = client.post(review_url(post), {"do": "reject-selected", "ids": ["x"], "comment": "no"}, follow=True)
    assert texts(response) == ["The selection is not a list of image ids; reload the page."]


def test_bulk_needs_the_review_permission(client, two_sections, make_editor):
    post, _sections, (a, _b, _c, _d) = two_sections
    client.force_login(make_editor("gen", perms=["generate_images"]))
    assert 'id="bi-bulk"' not in client.get(review_url(post)).content.decode()
    response = client.post(review_url(post), {"do": "approve-selected", "ids": [a.pk]})
    assert response.status_code == 403
    assert not SectionReview.objects.filter(approved_result__isnull=False).exists()


# --- 1. messages in the section acted on --------------------------------------------------------


def test_a_sections_messages_render_in_its_panel(client, two_sections, admin_user):
    post, (first, second), (a, _b, _c, _d) = two_sections
    client.force_login(admin_user)
    garbage = io.BytesIO(b"\x00\x01 definitely not an image")
    garbage.name = "photo.png"
    response = client.post(review_url(post), {"do": "upload", "section": str(second.pk), "file": garbage}, follow=True)
    html = response.content.decode()
    panel = panel_html(html, str(second.pk))
    assert 'class="messagelist bi-messages"' in panel and "The upload was refused" in panel
    assert html.count("The upload was refused") == 1  # not at the top of the page as well
    assert "The upload was refused" not in panel_html(html, str(first.pk))
    # The next page view has no message left.
    assert "The upload was refused" not in client.get(review_url(post)).content.decode()


# --- 4. what was sent ---------------------------------------------------------------------------


def test_cards_and_sections_show_the_prompt_and_settings_sent(client, two_sections, admin_user):
    from blogimages.models import ImageStyle

    post, (first, _second), (a, _b, c, _d) = two_sections
    style = ImageStyle.objects.create(name="Ink", prompt_template="{prompt}, ink drawing")
    ImageGenerationResult.objects.filter(pk=c.pk).update(
        style=style,
        final_prompt="A lighthouse, ink drawing",
        negative_prompt="blurry, text",
        model="sdxl-base-1.0",
        seed=77,
        params={"width": 1344, "height": 768, "steps": 30, "guidance_scale": 6.5, "sampler": "euler", "seed": 77},
        width=1344,
        height=768,
    )
    client.force_login(admin_user)
    html = client.get(review_url(post)).content.decode()
    card = re.search(rf'<article [^>]*data-result="{c.pk}".*?</article>', html, re.S).group(0)
    sent = re.search(r'<details class="bi-sent".*?</details>', card, re.S).group(0)
    for shown in ("A lighthouse, ink drawing", "blurry, text", "Ink", "<dd>30</dd>", "<dd>6.5</dd>", "euler"):
        assert shown in sent, shown
    assert "sdxl-base-1.0" in card and "<dd>77</dd>" in card and "1344×768 (16:9)" in card
    panel = panel_html(html, str(first.pk))
    assert 'class="bi-sent bi-sent--section"' in panel and "blurry, text" in panel


# --- 7. upload refusals are sentences -----------------------------------------------------------


def _png(size=(64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (1, 2, 3)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    "payload, reason",
    [
        (b"\x8f\x12garbage bytes \x00\x01\x02" * 20, "not a complete, readable image"),
        (b"Dear editor,\nthis is a text file renamed to .png\n", "not a complete, readable image"),
        (_png()[:70], "not a complete, readable image"),
    ],
    ids=["garbage", "text-renamed-png", "truncated-png"],
)
def test_upload_refusals_are_sentences_without_python_internals(two_sections, payload, reason):
    _post, (first, _second), _results = two_sections
    upload = io.BytesIO(payload)
    upload.name = "photo.png"
    with pytest.raises(UploadRejected) as caught:
        services.upload(first, upload)
    message = str(caught.value)
    assert reason in message and message.endswith(".")
    assert "<_io" not in message and " at 0x" not in message and "BytesIO" not in message


def test_an_over_large_upload_is_refused_in_a_sentence(two_sections, settings):
    _post, (first, _second), _results = two_sections
    settings.BLOGIMAGES_UPLOAD_MAX_PIXELS = 100 * 100
    upload = io.BytesIO(_png((400, 300)))
    upload.name = "big.png"
    with pytest.raises(UploadRejected, match=r"The image is 400x300 pixels; the limit is 10,000 pixels in all\."):
        services.upload(first, upload)
    settings.BLOGIMAGES_UPLOAD_MAX_BYTES = 50
    upload = io.BytesIO(_png((400, 300)))
    upload.name = "big.png"
    with pytest.raises(UploadRejected, match=r"The file is larger than the 0 MB limit|the limit is"):
        services.upload(first, upload)


def test_error_text_never_shows_object_names():
    raw = ValueError("cannot identify image file <_io.BytesIO object at 0x7f3a2c1d0e50>")
    assert error_text(raw) == "cannot identify image file"
    assert error_text(ValidationError("Bad <object at 0xdeadbeef> thing.")) == "Bad thing."


# --- 9. back to the review page after editing a section -------------------------------------------


def test_editing_a_section_goes_back_to_the_review_page_at_that_section(client, two_sections, admin_user):
    post, (first, _second), _results = two_sections
    review = SectionReview.objects.get(section_key=str(first.pk))
    client.force_login(admin_user)
    page = client.get(review_url(post)).content.decode()
    back = f"{review_url(post)}#bi-section-{first.pk}"
    link = f"{REVIEWS}{review.pk}/change/?next=%2Fadmin%2Fblog%2Fpost%2F{post.pk}%2Fimages%2F%23bi-section-{first.pk}"
    assert link in page.replace("&amp;", "&")
    form = {"prompt_override": "Gulls", "alt_text": "A lighthouse", "events-TOTAL_FORMS": "0"}
    form.update({"events-INITIAL_FORMS": "0", "events-MIN_NUM_FORMS": "0", "events-MAX_NUM_FORMS": "0"})
    change = f"{REVIEWS}{review.pk}/change/"
    inline = client.get(change).content.decode()
    prefix = re.search(r'name="([\w-]+)-TOTAL_FORMS"', inline).group(1)
    form = {k.replace("events", prefix): v for k, v in form.items()}
    response = client.post(f"{change}?next={back.replace('#', '%23')}", form)
    assert response.status_code == 302 and response["Location"] == back
    review.refresh_from_db()
    assert review.prompt_override == "Gulls"
    # Without ?next= it goes back there too; a ?next= to another site is ignored.
    assert client.post(change, form)["Location"] == back
    assert client.post(f"{change}?next=https://evil.example/", form)["Location"] == back
    # "Save and continue editing" stays on the form.
    assert client.post(change, {**form, "_continue": "1"})["Location"].startswith(change)


# --- 12. a queue nobody works ---------------------------------------------------------------------


def test_a_queued_card_says_when_no_worker_takes_jobs(client, make_post, admin_user, rq_queue, settings):
    import json

    post = make_post(sections=1)
    (queued,) = services.generate_for_section(post.sections.get(), user=admin_user)
    client.force_login(admin_user)
    html = client.get(review_url(post)).content.decode()
    from blogimages.conf import app_settings

    queue = app_settings.QUEUE
    assert f"No worker is taking jobs from queue “{queue}”" in html
    data = json.loads(client.get(review_url(post) + "status/").content)
    (row,) = data["results"]
    assert row["id"] == queued.pk and row["note"].startswith(f"No worker is taking jobs from queue “{queue}”")


def test_a_dead_worker_is_listed_as_dead_and_a_live_one_clears_the_note(client, admin_user, rq_queue):
    from rq import Worker

    from blogimages import status

    assert status.queue_note(rq_queue.name).startswith("No worker is taking jobs")
    dead = Worker([rq_queue], connection=rq_queue.connection, name="gone-worker")
    dead.register_birth()
    try:
        rq_queue.connection.hset(dead.key, "pid", 2**22 + 12345)  # no such process on this host
        (listed,) = [w for w in status.queue_status(only_ours=True).ours.workers if w.name == "gone-worker"]
        assert listed.dead and listed.shown_state == "dead"
        assert "its 1 worker(s) are dead" in status.queue_note(rq_queue.name)
        client.force_login(admin_user)
        page = client.get("/admin/blogimages/imagegenerationresult/status/").content.decode()
        assert 'data-worker-state="dead"' in page and "No worker is taking jobs from queue" in page
        # A worker that beats (this process) takes jobs: no note.
        live = Worker([rq_queue], connection=rq_queue.connection, name="live-worker")
        live.register_birth()
        live.heartbeat()
        try:
            assert status.queue_note(rq_queue.name) == ""
        finally:
            live.register_death()
    finally:
        dead.register_death()


def test_a_silent_worker_is_dead(rq_queue):
    from rq import Worker

    from blogimages.status import worker_is_dead

    worker = Worker([rq_queue], connection=rq_queue.connection, name="silent")
    worker.last_heartbeat = timezone.now() - timezone.timedelta(minutes=20)
    worker.hostname = "elsewhere"
    assert worker_is_dead(worker)
    worker.last_heartbeat = timezone.now() - timezone.timedelta(minutes=2)
    assert not worker_is_dead(worker)


# --- 13. smaller ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "size, label",
    [
        ((1344, 768), "16:9"),
        ((1920, 1080), "16:9"),
        ((768, 1344), "9:16"),
        ((1024, 1024), "1:1"),
        ((1152, 896), "9:7"),
        ((1000, 300), "10:3"),
        ((65, 4096), "≈1:63"),
        ((4096, 65), "≈63:1"),
        ((1001, 703), "≈37:26"),
        ((0, 10), ""),
    ],
)
def test_aspect_labels(size, label):
    assert aspect_label(*size) == label


def test_format_list_says_16_9_for_1344x768(client, admin_user):
    ImageFormat.objects.create(name="Blog hero", width=1344, height=768)
    client.force_login(admin_user)
    html = client.get("/admin/blogimages/imageformat/").content.decode()
    assert '<td class="field-aspect">16:9</td>' in html and "7:4" not in html


def test_header_shows_the_user_not_the_first_name(client, two_sections, django_user_model):
    post, _sections, _results = two_sections
    user = django_user_model.objects.create_superuser("mlopez", "m@example.com", "pw")
    user.first_name, user.last_name = "Maria", "Lopez"
    user.save()
    client.force_login(user)
    html = client.get(review_url(post)).content.decode()
    assert '<strong class="bi-user">Maria Lopez</strong> <span class="bi-muted">(mlopez)</span>' in html


def test_reject_label_only_for_those_who_may_reject(client, two_sections, make_editor):
    post, _sections, _results = two_sections
    client.force_login(make_editor("gen", perms=["generate_images"]))
    html = client.get(review_url(post)).content.decode()
    assert "required to reject" not in html and ">Comment</label>" in html
    client.force_login(make_editor("rev", perms=["review_images"]))
    assert "Comment (required to reject)" in client.get(review_url(post)).content.decode()


def test_latest_comment_is_the_newest_event(client, two_sections, admin_user, approve, reject):
    post, (first, _second), (a, b, _c, _d) = two_sections
    reject(result=a, user=admin_user, comment="Too dark")
    approve(b, user=admin_user)  # no comment: the review's stored comment stays "Too dark"
    services.add_comment(first, user=admin_user, text="Crop the left edge")
    upload = io.BytesIO(_png())
    upload.name = "later-upload.png"
    services.upload(first, upload, user=admin_user)  # its event's "comment" is the file name
    client.force_login(admin_user)
    panel = panel_html(client.get(review_url(post)).content.decode(), str(first.pk))
    latest = re.search(r'<p class="bi-comment">.*?</p>', panel, re.S).group(0)
    assert "Crop the left edge" in latest and "Too dark" not in latest and "admin" in latest
    assert "later-upload.png" not in latest


def test_model_names_are_clipped_with_their_full_name_as_title(client, two_sections, admin_user):
    post, _sections, (a, _b, _c, _d) = two_sections
    name = "stabilityai/stable-diffusion-xl-base-1.0-with-a-very-long-suffix"
    ImageGenerationResult.objects.filter(pk=a.pk).update(model=name)
    client.force_login(admin_user)
    html = client.get(review_url(post)).content.decode()
    assert f'<dd class="bi-clip" title="{name}">{name}</dd>' in html


# --- lineage ------------------------------------------------------------------------------------------


def test_a_refined_results_chain_is_on_its_card_and_its_page(client, two_sections, admin_user):
    post, (first, _second), (a, b, c, _d) = two_sections
    ImageGenerationResult.objects.filter(pk=b.pk).update(parent=a, operation="refine")
    ImageGenerationResult.objects.filter(pk=c.pk).update(parent=b, operation="upscale")
    client.force_login(admin_user)
    html = client.get(review_url(post)).content.decode()
    card = re.search(rf'<article [^>]*data-result="{c.pk}".*?</article>', html, re.S).group(0)
    lineage = re.search(r'<details class="bi-lineage".*?</details>', card, re.S).group(0)
    assert f"Upscaled from #{b.pk}" in lineage
    assert lineage.index(f'href="#bi-card-{a.pk}"') < lineage.index(f'href="#bi-card-{b.pk}"')
    page = client.get(f"{RESULTS}{c.pk}/change/").content.decode()
    chain = re.search(r"data-bi-lineage>.*?</fieldset>", page, re.S).group(0)
    assert chain.index(f"#{a.pk}</a>") < chain.index(f"#{b.pk}</a>") < chain.index(f"#{c.pk}</a>")
    assert "Refined" in chain and "Upscaled" in chain
    assert f"{review_url(post)}#bi-card-{a.pk}" in chain  # approve / refine / regenerate from there


def test_a_job_waiting_long_for_busy_workers_says_so(client, make_post, admin_user, rq_queue):
    import json

    from rq import Worker

    post = make_post(sections=1)
    (queued,) = services.generate_for_section(post.sections.get(), user=admin_user)
    busy = Worker([rq_queue], connection=rq_queue.connection, name="busy-worker")
    busy.register_birth()
    busy.heartbeat()
    try:
        client.force_login(admin_user)
        assert "Waiting for" not in client.get(review_url(post)).content.decode()  # just queued
        ImageGenerationResult.objects.filter(pk=queued.pk).update(
            queued_at=timezone.now() - timezone.timedelta(minutes=5)
        )
        html = client.get(review_url(post)).content.decode()
        assert "Waiting for 5 min: the workers of queue" in html and "No worker is taking" not in html
        (row,) = json.loads(client.get(review_url(post) + "status/").content)["results"]
        assert row["note"].startswith("Waiting for 5 min")
    finally:
        busy.register_death()
