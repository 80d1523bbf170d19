"""The post review page in admin: what it shows, every action on it, and who may do what."""

from __future__ import annotations

import io
import json
import re

import pytest
from django.contrib.messages import get_messages
from django.core.cache import cache
from django.utils import timezone
from PIL import Image

from blogimages import services
from blogimages.models import (
    ImageGenerationResult,
    ImagePromptExample,
    PostImageSettings,
    ResultStatus,
    ReviewAction,
    ReviewEvent,
    ReviewStatus,
    SectionReview,
)
from blogimages.storage import get_storage

pytestmark = pytest.mark.django_db

ALL_PERMS = ["generate_images", "review_images", "upload_images"]


def review_url(post) -> str:
    return f"/admin/blog/post/{post.pk}/images/"


def texts(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def upload_slot(html: str, key: str) -> str:
    """What a section's upload slot holds on the page: its link, or its open form."""
    return re.search(rf'<div class="bi-upload-slot" data-bi-upload="{re.escape(key)}">(.*?)</div>', html, re.S).group(1)


def png(size=(300, 200), colour=(200, 40, 40)) -> io.BytesIO:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    buffer.seek(0)
    buffer.name = "replacement.png"
    return buffer


def stored_files() -> set[str]:
    storage = get_storage()
    found = set()

    def walk(folder):
        if not storage.exists(folder):
            return
        dirs, files = storage.listdir(folder)
        found.update(f"{folder}/{name}" for name in files)
        for name in dirs:
            walk(f"{folder}/{name}")

    walk("blogimages")
    return found


@pytest.fixture
def generated(make_post, admin_user, run_worker, django_capture_on_commit_callbacks):
    """A post with two sections, one finished candidate each, made by a real worker."""
    post = make_post(sections=2)
    with django_capture_on_commit_callbacks(execute=True):
        services.generate_for_post(post, user=admin_user)
    assert run_worker() == 2
    results = list(ImageGenerationResult.objects.order_by("id"))
    assert {r.status for r in results} == {ResultStatus.SUCCEEDED}
    return post, results


@pytest.fixture
def act(client, django_capture_on_commit_callbacks):
    """POST one review-page action (jobs are enqueued when the request's transaction commits)."""

    def post(target, do, **data):
        if do.startswith("approve:") or do == "upload":  # alt text: tests/test_browser_review_desk_safety.py
            data.setdefault("publish_without_alt", "1")
        with django_capture_on_commit_callbacks(execute=True):
            # Following the redirect renders the messages, so each call reads only its own.
            return client.post(review_url(target), {"do": do, **data}, follow=True)

    return post


# --- what the page shows ------------------------------------------------------------------


def test_page_shows_text_prompt_candidates_decision_and_history(client, admin_user, generated):
    post, (first, second) = generated
    sections = list(post.sections.all())
    example = ImagePromptExample.objects.create(name="Seaside", prompt="An oil painting of the sea")
    PostImageSettings.objects.create(post=post, prompt_example=example)
    review = SectionReview.objects.for_post(post).get(section_key=str(sections[1].pk))
    review.prompt_override = "Gulls over a harbour wall"
    review.save()
    services.approve(first, user=admin_user)

    client.force_login(admin_user)
    response = client.get(review_url(post))
    assert response.status_code == 200
    html = response.content.decode()
    assert "A lighthouse on a cliff at dusk, view 1" in html  # section text
    assert "An oil painting of the sea" in html and "prompt example “Seaside”" in html
    assert "Gulls over a harbour wall" in html and "the section&#x27;s prompt override" in html
    for result in (first, second):
        assert f'src="{result.thumbnail.url}"' in html  # WebP thumbnails, not the full images
        assert f'src="{result.image.url}"' not in html
        assert result.thumbnail.name.endswith(".webp")
        assert f"<dd>{result.seed}</dd>" in html
    assert html.count('<article class="bi-card bi-card--succeeded') == 2
    assert 'bi-badge--approved" data-bi-decision>Approved' in html
    assert 'bi-badge--pending" data-bi-decision>Pending' in html
    assert "<strong>Approved</strong> by admin" in html and "<strong>Generated</strong> by admin" in html
    assert html.count('class="button bi-approve"') == 1  # the approved one has no approve button


def test_change_form_and_change_list_link_to_the_review_page(client, admin_user, make_post):
    post = make_post(sections=1)
    client.force_login(admin_user)
    change = client.get(f"/admin/blog/post/{post.pk}/change/").content.decode()
    assert f'href="{review_url(post)}" class="bi-review-link"' in change
    listing = client.get("/admin/blog/post/").content.decode()
    assert f'href="{review_url(post)}" class="bi-review-link"' in listing
    assert 'value="generate_images_for_sections"' in listing


def test_unknown_post_is_404_and_non_staff_are_sent_to_login(client, admin_user, make_post):
    post = make_post(sections=1)
    assert client.get(review_url(post)).status_code == 302  # the admin login
    client.force_login(admin_user)
    assert client.get("/admin/blog/post/999/images/").status_code == 404


def test_status_endpoint_reports_progress_and_only_reads(client, admin_user, make_post, settings, rq_queue):
    post = make_post(sections=2)
    sections = list(post.sections.all())
    running = ImageGenerationResult.objects.create(
        review=services.review_for(sections[0]),
        prompt="p",
        final_prompt="p",
        provider="placeholder",
        params={},
        status=ResultStatus.RUNNING,
        progress=40,
        progress_message="step 2/4",
        heartbeat_at=timezone.now(),
    )
    stuck = ImageGenerationResult.objects.create(
        review=services.review_for(sections[1]),
        prompt="p",
        final_prompt="p",
        provider="placeholder",
        params={},
        status=ResultStatus.RUNNING,
        progress=10,
        heartbeat_at=timezone.now() - timezone.timedelta(hours=1),
    )
    cache.clear()
    client.force_login(admin_user)
    response = client.get(review_url(post) + "status/")
    assert "no-store" in response["Cache-Control"]  # admin_view: never cached
    data = json.loads(response.content)
    by_id = {r["id"]: r for r in data["results"]}
    assert data["active"] is True
    assert by_id[running.pk] == {
        "id": running.pk,
        "section": str(sections[0].pk),
        "status": "running",
        "status_label": "Running",
        "active": True,
        "progress": 40,
        "message": "step 2/4",
        # The card's version (row and approval): the page refreshes a card when it changes.
        "version": by_id[running.pk]["version"],
    }
    running.refresh_from_db()
    assert by_id[running.pk]["version"] == f"{int(running.updated_at.timestamp() * 1_000_000)}|0"
    # Polling never writes: sweeping stuck results is the workers' job (test_queue).
    assert by_id[stuck.pk]["status"] == "running"
    stuck.refresh_from_db()
    assert stuck.status == "running" and stuck.progress == 10


def test_section_fragment_renders_one_panel(client, admin_user, generated):
    post, (first, _second) = generated
    client.force_login(admin_user)
    response = client.get(f"{review_url(post)}section/{first.review.section_key}/")
    html = response.content.decode()
    assert response.status_code == 200 and html.count('class="bi-panel ') == 1
    assert f'data-result="{first.pk}"' in html and "csrfmiddlewaretoken" in html
    assert client.get(f"{review_url(post)}section/99999/").status_code == 404


# --- actions ---------------------------------------------------------------------------------


def test_generate_for_all_sections_reports_counts_and_skips(client, admin_user, make_post, act, rq_queue):
    post = make_post(sections=3)
    empty = post.sections.last()
    empty.body = "   "
    empty.save()
    client.force_login(admin_user)
    response = act(post, "generate-post")
    assert response.redirect_chain == [(review_url(post), 302)]
    messages = texts(response)
    assert messages[0] == "Queued 2 images."
    assert messages[1].startswith("Skipped 1 section (“Section 3”: ")
    assert rq_queue.count == 2
    assert ImageGenerationResult.objects.filter(status=ResultStatus.QUEUED).count() == 2


def test_generate_only_missing_and_for_one_section(client, admin_user, generated, act, rq_queue):
    post, (first, _second) = generated
    services.approve(first, user=admin_user)
    client.force_login(admin_user)
    messages = texts(act(post, "generate-missing"))
    assert messages[0] == "Queued 1 image."
    assert "already has an approved image" in messages[1]
    response = act(post, "generate-section", section=first.review.section_key, provider="placeholder")
    assert response.redirect_chain[-1][0].endswith(f"#bi-section-{first.review.section_key}")
    assert texts(response) == ["Queued 1 image."]
    assert rq_queue.count == 2


def test_approve_then_reject_with_comment(client, admin_user, generated, act):
    post, (first, second) = generated
    client.force_login(admin_user)
    assert texts(act(post, f"approve:{first.pk}")) == [f"Approved image #{first.pk} for “Section 1”."]
    first.refresh_from_db()
    assert first.is_approved

    # A comment is required to reject; without one nothing changes.
    assert texts(act(post, f"reject:{first.pk}", comment="  ")) == [
        "Say why the image is rejected; the comment is required."
    ]
    assert SectionReview.objects.get(pk=first.review_id).status == ReviewStatus.APPROVED

    messages = texts(act(post, f"reject:{first.pk}", comment="The horizon is crooked"))
    assert messages == [f"Rejected image #{first.pk}; “Section 1” has no approved image now."]
    review = SectionReview.objects.get(pk=first.review_id)
    assert review.status == ReviewStatus.REJECTED and review.comment == "The horizon is crooked"
    event = review.events.last()
    assert (event.action, event.user, event.result_id) == (ReviewAction.REJECTED, admin_user, first.pk)

    texts(act(post, "reject-section", section=second.review.section_key, comment="Not on brand"))
    assert SectionReview.objects.get(pk=second.review_id).status == ReviewStatus.REJECTED


def test_approving_a_second_candidate_replaces_the_first(client, admin_user, generated, act, run_worker):
    post, (first, _second) = generated
    client.force_login(admin_user)
    act(post, f"approve:{first.pk}")
    texts(act(post, f"regenerate:{first.pk}"))
    run_worker()  # the new candidate (and the approved image's renditions)
    newer = ImageGenerationResult.objects.latest("id")
    assert newer.status == ResultStatus.SUCCEEDED
    act(post, f"approve:{newer.pk}")
    assert list(ImageGenerationResult.objects.approved().values_list("pk", flat=True)) == [newer.pk]
    assert SectionReview.objects.get(pk=first.review_id).approved_result_id == newer.pk


def test_regenerate_new_seed_and_same_seed(client, admin_user, generated, act, rq_queue):
    post, (first, _second) = generated
    client.force_login(admin_user)
    messages = texts(act(post, f"regenerate:{first.pk}"))
    new = ImageGenerationResult.objects.latest("id")
    assert messages == [f"Queued image #{new.pk} for “Section 1”, like image #{first.pk} with a new seed."]
    assert new.seed is None and new.status == ResultStatus.QUEUED
    act(post, f"regenerate-same-seed:{first.pk}")
    same = ImageGenerationResult.objects.latest("id")
    assert same.seed == first.seed and same.seed_pinned
    assert rq_queue.count == 2
    assert ReviewEvent.objects.filter(action=ReviewAction.REGENERATED).count() == 2


def test_cancel_then_requeue(client, admin_user, make_post, act, rq_queue):
    post = make_post(sections=1)
    client.force_login(admin_user)
    act(post, "generate-post")
    queued = ImageGenerationResult.objects.get()
    assert texts(act(post, f"cancel:{queued.pk}")) == [f"Cancelled image #{queued.pk}."]
    queued.refresh_from_db()
    assert queued.status == ResultStatus.CANCELLED
    # Cancelling twice is one clear sentence, not an error page.
    assert texts(act(post, f"cancel:{queued.pk}")) == [
        f"Result #{queued.pk} is cancelled; only queued or running results can be cancelled."
    ]
    assert texts(act(post, f"requeue:{queued.pk}")) == [f"Sent image #{queued.pk} to the queue again."]
    queued.refresh_from_db()
    assert queued.status == ResultStatus.QUEUED


def test_comment_lands_in_history(client, admin_user, generated, act):
    post, (first, _second) = generated
    client.force_login(admin_user)
    assert texts(act(post, "comment", section=first.review.section_key, comment="Try a wider shot")) == [
        "Comment added to “Section 1”."
    ]
    event = ReviewEvent.objects.get(action=ReviewAction.COMMENTED)
    assert event.comment == "Try a wider shot" and event.user == admin_user
    assert texts(act(post, "comment", section=first.review.section_key, comment="")) == ["The comment is empty."]


def test_upload_a_replacement_and_approve_it(client, admin_user, generated):
    post, (first, _second) = generated
    client.force_login(admin_user)
    response = client.post(
        review_url(post),
        {"do": "upload", "section": first.review.section_key, "approve_now": "1", "file": png(), "alt_text": "A chart"},
        follow=True,
    )
    uploaded = ImageGenerationResult.objects.get(source="uploaded")
    assert texts(response) == [f"Uploaded replacement.png as image #{uploaded.pk} for “Section 1” and approved it."]
    assert uploaded.is_approved and (uploaded.width, uploaded.height) == (300, 200)
    assert get_storage().exists(uploaded.image.name) and uploaded.thumbnail.name.endswith(".webp")
    assert SectionReview.objects.get(pk=first.review_id).approved_result_id == uploaded.pk


@pytest.mark.parametrize(
    "payload, reason",
    [
        (png().getvalue()[:300], "not a complete, readable image"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>", "SVG, HTML"),
        (b"", "empty"),
    ],
)
def test_a_bad_upload_is_refused_in_one_sentence_and_nothing_is_stored(client, admin_user, generated, payload, reason):
    post, (first, _second) = generated
    client.force_login(admin_user)
    before_files, before_rows = stored_files(), ImageGenerationResult.objects.count()
    upload = io.BytesIO(payload)
    upload.name = "photo.png"
    response = client.post(
        review_url(post), {"do": "upload", "section": first.review.section_key, "file": upload}, follow=True
    )
    (message,) = texts(response)
    assert message.startswith("The upload was refused: ") and reason in message
    assert stored_files() == before_files
    assert ImageGenerationResult.objects.count() == before_rows


def test_upload_without_a_file_says_so(client, admin_user, generated):
    post, (first, _second) = generated
    client.force_login(admin_user)
    response = client.post(review_url(post), {"do": "upload", "section": first.review.section_key}, follow=True)
    assert texts(response) == ["Choose an image file to upload."]


def test_without_script_a_sections_upload_link_opens_its_form_and_the_form_uploads(client, admin_user, generated):
    post, (first, second) = generated
    client.force_login(admin_user)
    page = client.get(review_url(post)).content.decode()
    links = {}
    for row in (first, second):
        key = row.review.section_key
        links[key] = upload_slot(page, key)
        assert "<form" not in links[key]  # the page stays light: a link, not a form, per section
    href = re.search(r'href="([^"]+)"', links[first.review.section_key]).group(1)
    assert href == f"{review_url(post)}?upload={first.review.section_key}#bi-section-{first.review.section_key}"

    opened = client.get(href.split("#")[0]).content.decode()
    form = upload_slot(opened, first.review.section_key)
    assert 'enctype="multipart/form-data"' in form and 'type="file" name="file"' in form
    assert f'name="section" value="{first.review.section_key}"' in form
    assert f'id="bi-upload-alt-{first.review.section_key}"' in form
    other = upload_slot(opened, second.review.section_key)
    assert "<form" not in other and "?upload=" in other

    # The form has no action: it posts to the page it is on, ?upload=KEY included.
    response = client.post(
        href.split("#")[0], {"do": "upload", "section": first.review.section_key, "file": png()}, follow=True
    )
    uploaded = ImageGenerationResult.objects.get(source="uploaded")
    assert texts(response) == [f"Uploaded replacement.png as image #{uploaded.pk} for “Section 1”."]
    assert uploaded.review_id == first.review_id and not uploaded.is_approved


def test_a_refused_upload_reopens_its_sections_form_with_the_reason(client, admin_user, generated):
    post, (first, second) = generated
    client.force_login(admin_user)
    key = first.review.section_key
    broken = io.BytesIO(png().getvalue()[:300])
    broken.name = "photo.png"
    response = client.post(review_url(post), {"do": "upload", "section": key, "file": broken})
    # Without script the editor would otherwise have to find the link again to try once more.
    assert response["Location"] == f"{review_url(post)}?upload={key}#bi-section-{key}"
    page = client.get(response["Location"].split("#")[0])
    (message,) = texts(page)
    assert message.startswith("The upload was refused: ") and "not a complete, readable image" in message
    html = page.content.decode()
    assert 'type="file" name="file"' in upload_slot(html, key)
    assert "<form" not in upload_slot(html, second.review.section_key)
    assert not ImageGenerationResult.objects.filter(source="uploaded").exists()

    # So does an upload without a file; the errors of other actions keep the plain page.
    response = client.post(review_url(post), {"do": "upload", "section": key})
    assert response["Location"] == f"{review_url(post)}?upload={key}#bi-section-{key}"
    response = client.post(review_url(post), {"do": "comment", "section": key, "comment": ""})
    assert "?upload=" not in response["Location"]


def test_without_script_an_upload_approved_without_alt_text_is_confirmed_in_the_reopened_form(
    client, admin_user, generated
):
    post, (first, _second) = generated
    client.force_login(admin_user)
    key = first.review.section_key
    response = client.post(review_url(post), {"do": "upload", "section": key, "file": png(), "approve_now": "1"})
    assert response["Location"] == f"{review_url(post)}?upload={key}&without_alt=1#bi-section-{key}"
    assert not ImageGenerationResult.objects.filter(source="uploaded").exists()
    page = client.get(response["Location"].split("#")[0])
    (message,) = texts(page)
    assert message.startswith("This image would be published without alt text")
    form = upload_slot(page.content.decode(), key)
    assert 'type="checkbox" name="publish_without_alt" value="1"' in form
    # The plain page never offers the box: it is the answer to that refusal.
    assert 'name="publish_without_alt"' not in client.get(f"{review_url(post)}?upload={key}").content.decode()

    # Ticked, the same upload goes through and is approved, without alt text.
    response = client.post(
        review_url(post),
        {"do": "upload", "section": key, "file": png(), "approve_now": "1", "publish_without_alt": "1"},
        follow=True,
    )
    uploaded = ImageGenerationResult.objects.get(source="uploaded")
    assert texts(response) == [f"Uploaded replacement.png as image #{uploaded.pk} for “Section 1” and approved it."]
    assert uploaded.is_approved and SectionReview.objects.get(pk=first.review_id).alt_text == ""


def test_actions_on_another_posts_image_are_404(client, admin_user, generated, make_post):
    _post, (first, _second) = generated
    other = make_post(sections=1, slug="other")
    client.force_login(admin_user)
    assert client.post(review_url(other), {"do": f"approve:{first.pk}"}).status_code == 404
    assert client.post(review_url(other), {"do": "comment", "section": first.review.section_key}).status_code == 404
    assert texts(client.post(review_url(other), {"do": "explode"}, follow=True)) == ["Unknown action “explode”."]


# Transactional: the jobs are enqueued when the request's own transaction commits, as in production,
# so the view can read the enqueue errors before it answers.
@pytest.mark.django_db(transaction=True)
def test_queue_unreachable_is_one_clear_error_and_rows_stay_queued(client, admin_user, make_post, settings):
    from tests.conftest import free_port

    settings.RQ_QUEUES = {"default": {"URL": f"redis://127.0.0.1:{free_port()}/0?socket_connect_timeout=1"}}
    post = make_post(sections=2)
    client.force_login(admin_user)
    (message,) = texts(client.post(review_url(post), {"do": "generate-post"}, follow=True))
    assert message.startswith("2 images could not be sent to the job queue. Could not reach the job queue (Redis: ")
    assert "re-queue it once Redis is back" in message
    rows = list(ImageGenerationResult.objects.all())
    assert len(rows) == 2 and all(r.status == ResultStatus.QUEUED and r.error_message for r in rows)


# --- permissions ---------------------------------------------------------------------------------


OP_PERMISSION = [
    ("generate-post", "generate_images"),
    ("generate-missing", "generate_images"),
    ("generate-section", "generate_images"),
    ("regenerate", "generate_images"),
    ("regenerate-same-seed", "generate_images"),
    ("cancel", "generate_images"),
    ("requeue", "generate_images"),
    ("approve", "review_images"),
    ("reject", "review_images"),
    ("reject-section", "review_images"),
    ("upload", "upload_images"),
]


@pytest.mark.parametrize("op, perm", OP_PERMISSION)
def test_each_action_needs_its_permission(client, make_editor, generated, act, op, perm):
    post, (first, _second) = generated
    others = [p for p in ALL_PERMS if p != perm]
    client.force_login(make_editor("limited", perms=others))
    target = (
        f"{op}:{first.pk}"
        if op in {"regenerate", "regenerate-same-seed", "cancel", "requeue", "approve", "reject"}
        else op
    )
    before = (ImageGenerationResult.objects.count(), ReviewEvent.objects.count())
    response = act(post, target, section=first.review.section_key, comment="why", file=png())
    assert response.status_code == 403
    assert (ImageGenerationResult.objects.count(), ReviewEvent.objects.count()) == before

    client.force_login(make_editor("allowed", perms=[perm]))
    assert act(post, target, section=first.review.section_key, comment="why", file=png()).redirect_chain


def test_buttons_follow_permissions(client, make_editor, generated):
    post, (first, _second) = generated
    client.force_login(make_editor("viewer"))
    html = client.get(review_url(post)).content.decode()
    for value in (
        "generate-post",
        "generate-section",
        f"approve:{first.pk}",
        f"reject:{first.pk}",
        f"regenerate:{first.pk}",
        'value="upload"',
    ):
        assert value not in html
    assert 'value="comment"' in html  # anyone who may see the page may comment

    client.force_login(make_editor("reviewer", perms=["review_images"]))
    html = client.get(review_url(post)).content.decode()
    assert f'value="approve:{first.pk}"' in html and f'value="reject:{first.pk}"' in html
    assert f'value="regenerate:{first.pk}"' not in html and "generate-post" not in html


def test_upload_and_approve_needs_both_permissions(client, make_editor, generated):
    post, (first, _second) = generated
    client.force_login(make_editor("uploader", perms=["upload_images"]))
    response = client.post(
        review_url(post), {"do": "upload", "section": first.review.section_key, "approve_now": "1", "file": png()}
    )
    assert response.status_code == 403
    assert not ImageGenerationResult.objects.filter(source="uploaded").exists()


def test_editors_without_view_permission_on_posts_get_403(client, generated, django_user_model):
    post, _results = generated
    user = django_user_model.objects.create_user("nobody", password="x", is_staff=True)
    client.force_login(user)
    assert client.get(review_url(post)).status_code == 403
    assert client.get(review_url(post) + "status/").status_code == 403


# --- the post change list's action ---------------------------------------------------------------------


def test_generate_action_for_several_posts(client, admin_user, make_post, rq_queue, django_capture_on_commit_callbacks):
    first = make_post(sections=2)
    second = make_post(sections=2, slug="second", title="Second")
    section = second.sections.last()
    section.body = ""
    section.save()
    client.force_login(admin_user)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/admin/blog/post/",
            {"action": "generate_images_for_sections", "_selected_action": [first.pk, second.pk]},
        )
    assert response.status_code == 302
    messages = texts(response)
    assert messages[0] == "Queued 3 images for 2 posts."
    assert messages[1].startswith("Skipped 1 section (“Section 2”: ")
    assert rq_queue.count == 3


def test_generate_action_needs_the_permission(client, make_editor, make_post):
    post = make_post(sections=1)
    client.force_login(make_editor("noperm"))
    listing = client.get("/admin/blog/post/").content.decode()
    assert "generate_images_for_sections" not in listing
    client.post("/admin/blog/post/", {"action": "generate_images_for_sections", "_selected_action": [post.pk]})
    assert not ImageGenerationResult.objects.exists()

    client.force_login(make_editor("gen", perms=["generate_images"]))
    assert "generate_images_for_sections" in client.get("/admin/blog/post/").content.decode()


@pytest.mark.django_db(transaction=True)
def test_generate_action_when_the_queue_is_down(client, admin_user, make_post, settings):
    from tests.conftest import free_port

    settings.RQ_QUEUES = {"default": {"URL": f"redis://127.0.0.1:{free_port()}/0?socket_connect_timeout=1"}}
    post = make_post(sections=1)
    client.force_login(admin_user)
    response = client.post(
        "/admin/blog/post/", {"action": "generate_images_for_sections", "_selected_action": [post.pk]}, follow=True
    )
    (message,) = texts(response)
    assert message.startswith("1 image could not be sent to the job queue.")
    assert ImageGenerationResult.objects.get().status == ResultStatus.QUEUED


@pytest.mark.django_db(transaction=True)
def test_a_job_redis_refused_can_be_retried_from_the_page(client, admin_user, make_post, settings, rq_queue):
    from tests.conftest import free_port

    working = settings.RQ_QUEUES
    settings.RQ_QUEUES = {"default": {"URL": f"redis://127.0.0.1:{free_port()}/0?socket_connect_timeout=1"}}
    post = make_post(sections=1)
    client.force_login(admin_user)
    client.post(review_url(post), {"do": "generate-post"})
    waiting = ImageGenerationResult.objects.get()
    html = client.get(review_url(post)).content.decode()
    assert "Could not reach the job queue" in html and f'value="requeue:{waiting.pk}"' in html

    settings.RQ_QUEUES = working  # Redis is back
    response = client.post(review_url(post), {"do": f"requeue:{waiting.pk}"}, follow=True)
    assert texts(response) == [f"Sent image #{waiting.pk} to the queue again."]
    waiting.refresh_from_db()
    assert waiting.status == ResultStatus.QUEUED and waiting.error_message == "" and waiting.job_id
    assert rq_queue.count == 1


def test_long_histories_show_the_newest_events(client, admin_user, generated):
    post, (first, _second) = generated
    section = post.sections.order_by("position").first()  # the first result is this section's
    for n in range(25):
        services.add_comment(section, user=admin_user, text=f"note {n}")
    client.force_login(admin_user)
    html = client.get(review_url(post)).content.decode()
    panel = html[
        html.index(f'id="bi-section-{section.pk}"') : html.index(f'id="bi-section-{_second.review.section_key}"')
    ]
    assert "History (26 events)" in panel  # 25 comments and the generation
    assert "note 24" in panel and "note 5" in panel and "note 4" not in panel
    assert "and 6 earlier events, on the section review page." in panel


def test_a_running_result_is_not_requeued_from_any_entry_point(client, admin_user, make_post, act, rq_queue):
    """The review page, the admin action and the service agree: an editor re-queues failed
    or cancelled results; a running one goes back by itself if its worker stops."""
    post = make_post(sections=1)
    client.force_login(admin_user)
    running = ImageGenerationResult.objects.create(
        review=services.review_for(post.sections.get()),
        prompt="p",
        final_prompt="p",
        provider="placeholder",
        params={},
        status=ResultStatus.RUNNING,
        heartbeat_at=timezone.now(),
    )
    html = client.get(review_url(post)).content.decode()
    card = html[html.index(f'data-result="{running.pk}"') :]
    card = card[: card.index("</article>")]
    assert f"cancel:{running.pk}" in card and f"requeue:{running.pk}" not in card
    assert texts(act(post, f"requeue:{running.pk}")) == [
        f"Result #{running.pk} is running; only failed or cancelled results can be re-queued; a running one is "
        "re-queued by itself if its worker stops reporting."
    ]
    response = client.post(
        "/admin/blogimages/imagegenerationresult/",
        {"action": "requeue_jobs", "_selected_action": [running.pk]},
        follow=True,
    )
    assert any("only failed or cancelled results can be re-queued" in m for m in texts(response))
    running.refresh_from_db()
    assert running.status == ResultStatus.RUNNING and running.enqueue_count == 0


@pytest.mark.parametrize(
    ("status", "source", "extra", "perms", "expected"),
    [
        (
            "succeeded",
            "generated",
            {"seed": 7},
            {"review": True, "generate": True},
            {"approve", "reject", "regenerate", "regenerate-same-seed"},
        ),
        ("succeeded", "uploaded", {}, {"review": True, "generate": True}, {"approve", "reject"}),
        ("succeeded", "generated", {"seed": None}, {"generate": True}, {"regenerate"}),
        ("running", "generated", {}, {"review": True, "generate": True}, {"cancel"}),
        ("queued", "generated", {"error_message": "Redis down"}, {"generate": True}, {"cancel", "requeue"}),
        ("failed", "generated", {"seed": 1}, {"generate": True}, {"requeue", "regenerate", "regenerate-same-seed"}),
        ("failed", "generated", {}, {"review": True}, set()),
    ],
)
def test_result_actions_follow_the_named_moves_and_permissions(make_post, status, source, extra, perms, expected):
    post = make_post(sections=1)
    result = ImageGenerationResult(
        review=services.review_for(post.sections.get()), status=status, source=source, **extra
    )
    assert services.result_actions(result, perms) == expected
