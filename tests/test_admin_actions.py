"""Admin actions on the result and section review change lists, and the library ModelAdmins."""

from __future__ import annotations

import io

import pytest
from django.contrib.messages import get_messages
from PIL import Image

from blogimages import services
from blogimages.models import (
    ImageGenerationResult,
    ImageSetting,
    ResultStatus,
    ReviewAction,
    ReviewEvent,
    ReviewStatus,
    SectionReview,
)
from blogimages.storage import get_storage

pytestmark = pytest.mark.django_db

RESULTS = "/admin/blogimages/imagegenerationresult/"
REVIEWS = "/admin/blogimages/sectionreview/"


def texts(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def png(name="new.png") -> io.BytesIO:
    buffer = io.BytesIO()
    Image.new("RGB", (200, 120), (10, 160, 90)).save(buffer, format="PNG")
    buffer.seek(0)
    buffer.name = name
    return buffer


@pytest.fixture
def generated(make_post, admin_user, run_worker, django_capture_on_commit_callbacks):
    post = make_post(sections=2)
    with django_capture_on_commit_callbacks(execute=True):
        services.generate_for_post(post, user=admin_user)
    run_worker()
    return post, list(ImageGenerationResult.objects.order_by("id"))


@pytest.fixture
def run_action(client, django_capture_on_commit_callbacks):
    def run(url, action, ids, follow=True, **extra):
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(url, {"action": action, "_selected_action": ids, **extra}, follow=follow)

    return run


# --- results ------------------------------------------------------------------------------------


def test_result_list_shows_thumbnail_status_progress_provider_and_section(client, admin_user, generated):
    _post, (first, _second) = generated
    queued = ImageGenerationResult.objects.create(
        prompt="x",
        final_prompt="x",
        provider="auto",
        params={},
        status=ResultStatus.RUNNING,
        progress=35,
    )
    ImageGenerationResult.objects.filter(pk=first.pk).update(provider="auto", provider_used="placeholder")
    client.force_login(admin_user)
    html = client.get(RESULTS).content.decode()
    assert f'src="{first.thumbnail.url}"' in html
    assert '<progress max="100" value="35"></progress> 35%' in html
    assert "auto → placeholder" in html
    assert "Section 1" in html and "playground" in html  # a section, and a playground result
    assert f'href="/admin/blogimages/imagegenerationresult/{queued.pk}/change/"' in html
    assert 'href="/admin/blogimages/imagegenerationresult/add/"' not in html  # results are never typed in
    assert client.get(RESULTS + "add/").status_code == 403


def test_result_list_search_and_filters(client, admin_user, generated):
    _post, (first, second) = generated
    ImageGenerationResult.objects.filter(pk=second.pk).update(status=ResultStatus.FAILED, error_message="GPU melted")
    client.force_login(admin_user)
    html = client.get(RESULTS, {"status__exact": "failed"}).content.decode()
    assert f"/{second.pk}/change/" in html and f"/{first.pk}/change/" not in html
    html = client.get(RESULTS, {"q": "melted"}).content.decode()
    assert f"/{second.pk}/change/" in html and f"/{first.pk}/change/" not in html
    assert client.get(RESULTS, {"provider__exact": "placeholder", "approved": "0"}).status_code == 200


def test_result_change_page_is_a_read_only_snapshot(client, admin_user, generated):
    _post, (first, _second) = generated
    client.force_login(admin_user)
    response = client.get(f"{RESULTS}{first.pk}/change/")
    html = response.content.decode()
    assert response.status_code == 200
    assert 'name="prompt"' not in html and 'name="params"' not in html  # nothing editable
    assert first.final_prompt in html and str(first.seed) in html
    assert f"playground/?from={first.pk}" in html  # "use these settings again"
    before = first.prompt
    client.post(f"{RESULTS}{first.pk}/change/", {"prompt": "changed"})
    first.refresh_from_db()
    assert first.prompt == before


def test_approve_action(client, admin_user, generated, run_action):
    _post, (first, second) = generated
    client.force_login(admin_user)
    response = run_action(RESULTS, "approve_images", [first.pk, second.pk])
    assert texts(response) == ["Approved 2 images."]
    assert SectionReview.objects.filter(status=ReviewStatus.APPROVED).count() == 2


def test_approve_action_approves_one_image_per_section(
    client, admin_user, generated, run_action, run_worker, django_capture_on_commit_callbacks
):
    _post, (first, _second) = generated
    with django_capture_on_commit_callbacks(execute=True):
        newer = services.regenerate(first, user=admin_user)
    run_worker()
    client.force_login(admin_user)
    messages = texts(run_action(RESULTS, "approve_images", [first.pk, newer.pk]))
    assert messages[0] == "Approved 1 image."
    assert messages[1] == f"Skipped 1 (#{first.pk}: another selected image of the same section was approved)."
    assert list(ImageGenerationResult.objects.approved().values_list("pk", flat=True)) == [newer.pk]


def test_approve_action_skips_unfinished_images(client, admin_user, generated, run_action):
    _post, (first, _second) = generated
    queued = ImageGenerationResult.objects.create(
        review=first.review, prompt="x", final_prompt="x", provider="placeholder", params={}
    )
    client.force_login(admin_user)
    messages = texts(run_action(RESULTS, "approve_images", [queued.pk]))
    assert messages == [f"Skipped 1 (#{queued.pk}: Result #{queued.pk} has no finished image to approve.)."]


def test_reject_action_asks_for_a_comment_first(client, admin_user, generated, run_action):
    _post, (first, _second) = generated
    services.approve(first, user=admin_user)
    client.force_login(admin_user)
    step = run_action(RESULTS, "reject_images", [first.pk])
    html = step.content.decode()
    assert step.status_code == 200 and 'name="comment"' in html and 'value="reject_images"' in html
    assert SectionReview.objects.get(pk=first.review_id).status == ReviewStatus.APPROVED

    empty = run_action(RESULTS, "reject_images", [first.pk], apply="1", comment=" ")
    assert "the comment is required" in empty.content.decode()

    done = run_action(RESULTS, "reject_images", [first.pk], apply="1", comment="Wrong season")
    assert texts(done) == ["Rejected 1 image."]
    review = SectionReview.objects.get(pk=first.review_id)
    assert review.status == ReviewStatus.REJECTED and review.comment == "Wrong season"


def test_regenerate_actions(client, admin_user, generated, run_action, rq_queue):
    _post, (first, second) = generated
    client.force_login(admin_user)
    assert texts(run_action(RESULTS, "regenerate_images", [first.pk, second.pk])) == ["Queued 2 new images."]
    assert texts(run_action(RESULTS, "regenerate_images_same_seed", [first.pk])) == ["Queued 1 new image."]
    newest = ImageGenerationResult.objects.latest("id")
    assert newest.seed == first.seed and newest.seed_pinned
    assert rq_queue.count == 3


def test_cancel_and_requeue_actions(client, admin_user, generated, run_action, rq_queue):
    _post, (first, _second) = generated
    client.force_login(admin_user)
    run_action(RESULTS, "regenerate_images", [first.pk])
    queued = ImageGenerationResult.objects.latest("id")
    messages = texts(run_action(RESULTS, "cancel_jobs", [queued.pk, first.pk]))
    assert messages[0] == "Cancelled 1 job."
    assert messages[1].startswith(f"Skipped 1 (#{first.pk}: Result #{first.pk} is succeeded;")
    queued.refresh_from_db()
    assert queued.status == ResultStatus.CANCELLED

    messages = texts(run_action(RESULTS, "requeue_jobs", [queued.pk, first.pk]))
    assert messages == [
        "Re-queued 1 job.",
        f"Skipped 1 (#{first.pk}: Result #{first.pk} is succeeded; only failed or cancelled results can be re-queued; "
        "a running one is re-queued by itself if its worker stops reporting.).",
    ]
    queued.refresh_from_db()
    assert queued.status == ResultStatus.QUEUED


def test_comment_action_on_results(client, admin_user, generated, run_action):
    _post, (first, second) = generated
    client.force_login(admin_user)
    assert 'name="comment"' in run_action(RESULTS, "comment_on_sections", [first.pk]).content.decode()
    done = run_action(RESULTS, "comment_on_sections", [first.pk, second.pk], apply="1", comment="Brighter, please")
    assert texts(done) == ["Commented on 2 sections."]
    assert ReviewEvent.objects.filter(action=ReviewAction.COMMENTED, comment="Brighter, please").count() == 2


def test_upload_action_on_results(client, admin_user, generated, run_action):
    _post, (first, second) = generated
    client.force_login(admin_user)
    step = run_action(RESULTS, "upload_replacements", [first.pk, second.pk]).content.decode()
    assert 'enctype="multipart/form-data"' in step
    # One file input per section, named by the section's review.
    assert f'name="file-{first.review_id}"' in step and f'name="file-{second.review_id}"' in step
    bad = io.BytesIO(b"GIF89a" + b"\x00" * 20)
    bad.name = "broken.gif"
    done = run_action(
        RESULTS,
        "upload_replacements",
        [first.pk, second.pk],
        apply="1",
        approve_now="1",
        **{f"file-{first.review_id}": png(), f"file-{second.review_id}": bad},
    )
    messages = texts(done)
    assert messages[0] == "Uploaded 1 image."
    assert messages[1].startswith("Skipped 1 (“Section 2” (broken.gif): The file is not a complete, readable image")
    uploaded = ImageGenerationResult.objects.get(source="uploaded")
    assert uploaded.review_id == first.review_id and uploaded.is_approved


def test_actions_follow_permissions(client, make_editor, generated, run_action):
    _post, (first, _second) = generated
    client.force_login(make_editor("viewer"))
    html = client.get(RESULTS).content.decode()
    for action in ("approve_images", "reject_images", "regenerate_images", "cancel_jobs", "upload_replacements"):
        assert f'value="{action}"' not in html
    assert 'value="comment_on_sections"' in html
    assert 'value="delete_selected"' not in html
    run_action(RESULTS, "approve_images", [first.pk])
    first.refresh_from_db()
    assert not first.is_approved

    client.force_login(make_editor("reviewer", perms=["review_images"]))
    html = client.get(RESULTS).content.decode()
    assert 'value="approve_images"' in html and 'value="regenerate_images"' not in html


def test_deleting_a_result_removes_its_files_but_not_while_approved(
    client, admin_user, generated, django_capture_on_commit_callbacks
):
    _post, (first, second) = generated
    services.approve(first, user=admin_user)
    client.force_login(admin_user)
    assert client.get(f"{RESULTS}{first.pk}/delete/").status_code == 403
    names = [second.image.name, second.thumbnail.name]
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"{RESULTS}{second.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not ImageGenerationResult.objects.filter(pk=second.pk).exists()
    assert not any(get_storage().exists(name) for name in names)
    assert get_storage().exists(first.image.name)


# --- section reviews --------------------------------------------------------------------------------


def test_review_list_and_change_page(client, admin_user, generated):
    post, (first, _second) = generated
    services.approve(first, user=admin_user, comment="Lovely")
    review = SectionReview.objects.get(pk=first.review_id)
    client.force_login(admin_user)
    html = client.get(REVIEWS).content.decode()
    assert f'src="{first.thumbnail.url}"' in html and "Lovely" in html
    section_row = post.sections.order_by("position").first()  # the first result is the first section's
    assert f"/images/#bi-section-{section_row.pk}" in html
    # Search by the section's title (kept on the review; the section's text lives in the host only).
    found = client.get(REVIEWS, {"q": '"Section 1"'}).content.decode()
    other = SectionReview.objects.exclude(pk=review.pk).get()
    assert f"/{review.pk}/change/" in found and f"/{other.pk}/change/" not in found
    assert f"/{review.pk}/change/" not in client.get(REVIEWS, {"status__exact": "pending"}).content.decode()

    page = client.get(f"{REVIEWS}{review.pk}/change/").content.decode()
    assert "Approved" in page and "Generated" in page  # the read-only history inline
    assert 'name="events-0-comment"' not in page
    assert 'name="alt_text"' in page and 'name="prompt_override"' in page and 'name="status"' not in page
    response = client.post(
        f"{REVIEWS}{review.pk}/change/",
        {
            "prompt_example": "",
            "prompt_override": "A quiet harbour",
            "alt_text": "Boats at dawn",
            "events-TOTAL_FORMS": "0",
            "events-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302
    review.refresh_from_db()
    assert (review.prompt_override, review.alt_text, review.status) == (
        "A quiet harbour",
        "Boats at dawn",
        ReviewStatus.APPROVED,
    )
    assert client.get(f"{REVIEWS}{review.pk}/delete/").status_code == 403


def test_review_actions(client, admin_user, generated, run_action, run_worker, rq_queue):
    _post, (first, second) = generated
    reviews = [first.review_id, second.review_id]  # in section order
    client.force_login(admin_user)
    assert texts(run_action(REVIEWS, "approve_newest", reviews)) == ["Approved images for 2 sections."]
    messages = texts(run_action(REVIEWS, "approve_newest", reviews[:1]))
    assert messages == ["Skipped 1 (Section 1: its newest image is already approved)."]

    assert texts(run_action(REVIEWS, "generate_for_sections", reviews)) == ["Queued images for 2 sections."]
    assert texts(run_action(REVIEWS, "cancel_section_jobs", reviews)) == ["Cancelled 2 jobs."]
    assert texts(run_action(REVIEWS, "cancel_section_jobs", reviews)) == ["Nothing was queued or running."]
    assert texts(run_action(REVIEWS, "regenerate_newest", reviews[:1])) == ["Queued 1 new image."]

    done = run_action(REVIEWS, "reject_sections", reviews, apply="1", comment="Off brief")
    assert texts(done) == ["Rejected 2 sections."]
    assert set(SectionReview.objects.values_list("status", flat=True)) == {ReviewStatus.REJECTED}

    done = run_action(REVIEWS, "comment_on_sections", reviews[1:], apply="1", comment="Try again tomorrow")
    assert texts(done) == ["Commented on 1 section."]
    done = run_action(REVIEWS, "upload_replacements", reviews[:1], apply="1", **{f"file-{first.review_id}": png()})
    assert texts(done) == ["Uploaded 1 image."]
    assert not ImageGenerationResult.objects.get(source="uploaded").is_approved  # approve_now was not ticked


def test_review_actions_follow_permissions(client, make_editor, generated):
    client.force_login(make_editor("uploader", perms=["upload_images"]))
    html = client.get(REVIEWS).content.decode()
    assert 'value="upload_replacements"' in html and 'value="comment_on_sections"' in html
    for action in ("approve_newest", "reject_sections", "generate_for_sections", "cancel_section_jobs"):
        assert f'value="{action}"' not in html


# --- the library ---------------------------------------------------------------------------------------


def test_setting_shows_legacy_text_read_only_beside_structured_fields(client, admin_user):
    setting = ImageSetting.objects.create(
        name="Old look",
        steps=30,
        sampler="euler",
        legacy_text="Steps: 30, Sampler: Euler <b>bold</b>",
        legacy_warnings=["could not read 'bold'"],
    )
    client.force_login(admin_user)
    html = client.get(f"/admin/blogimages/imagesetting/{setting.pk}/change/").content.decode()
    side = html[html.index('<div class="bi-side-by-side">') :]
    assert side.index("Structured settings") < side.index("Legacy text (read-only)")
    assert '<pre class="bi-legacy-text">Steps: 30, Sampler: Euler &lt;b&gt;bold&lt;/b&gt;</pre>' in html
    assert "could not read &#x27;bold&#x27;" in html
    assert 'name="legacy_text"' not in html and 'name="steps"' in html

    listing = client.get("/admin/blogimages/imagesetting/", {"legacy": "warnings", "q": "Old"}).content.decode()
    assert "parsed, 1 warning" not in listing  # not parsed yet: the filter leaves it out
    listing = client.get("/admin/blogimages/imagesetting/", {"legacy": "unparsed"}).content.decode()
    assert "Old look" in listing and "not parsed" in listing


@pytest.mark.parametrize(
    "url, params",
    [
        ("/admin/blogimages/imagestyle/", {"q": "ink"}),
        ("/admin/blogimages/imageformat/", {"orientation": "landscape"}),
        ("/admin/blogimages/imagepromptexample/", {"q": "boat", "provider": "placeholder"}),
        ("/admin/blogimages/postimagesettings/", {"q": "x"}),
        ("/admin/blogimages/imagesetting/", {"provider": "placeholder", "legacy": "none"}),
    ],
)
def test_library_lists_search_and_filter(client, admin_user, url, params):
    client.force_login(admin_user)
    assert client.get(url, params).status_code == 200
    assert client.get(url + "add/").status_code == 200


def test_library_crud_through_admin(client, admin_user):
    from blogimages.models import ImageFormat, ImagePromptExample, ImageStyle

    client.force_login(admin_user)
    response = client.post(
        "/admin/blogimages/imagestyle/add/",
        {
            "name": "Ink",
            "prompt_template": "{prompt}, ink drawing",
            "negative_prompt": "",
            "loras": "[]",
            "description": "",
        },
    )
    assert response.status_code == 302
    bad = client.post(
        "/admin/blogimages/imagestyle/add/",
        {"name": "Broken", "prompt_template": "no placeholder", "loras": "[]"},
    )
    assert "The template must contain {prompt}." in bad.content.decode()
    client.post("/admin/blogimages/imageformat/add/", {"name": "Wide", "width": 1344, "height": 768})
    style, fmt = ImageStyle.objects.get(name="Ink"), ImageFormat.objects.get(name="Wide")
    client.post(
        "/admin/blogimages/imagepromptexample/add/",
        {
            "name": "Harbour",
            "prompt": "a harbour",
            "style": style.pk,
            "image_format": fmt.pk,
            "provider": "placeholder",
            "model": "",
            "notes": "",
        },
    )
    example = ImagePromptExample.objects.get(name="Harbour")
    assert example.created_by == admin_user
    listing = client.get("/admin/blogimages/imagepromptexample/").content.decode()
    assert f"playground/?example={example.pk}" in listing
    assert "16:9" in client.get("/admin/blogimages/imageformat/").content.decode()  # 1344x768, not 7:4
