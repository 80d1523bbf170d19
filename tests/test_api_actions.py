"""The review page's actions through the JSON API: approve (alt text, replaces), reject,
cancel, requeue, regenerate, comment, section reject, prompt and alt text, upload (multipart,
approve now), each with the review page's permissions (blogimages' and the host's) and
idempotency where the page has request keys. Every answer is checked against the OpenAPI
document (tests.test_api.Api). Jobs go to a real Redis."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from blogimages import services
from blogimages.hosts import get_host
from blogimages.hosts.rows import ModelSectionsAdapter
from blogimages.models import ImageGenerationResult, ResultSource, ResultStatus, SectionReview
from tests.conftest import png_bytes
from tests.test_api import Api

pytestmark = pytest.mark.django_db

RESULTS = "/api/v1/images/results"
REVIEW_PERMS = ["review_images"]
ALL_PERMS = ["generate_images", "review_images", "upload_images"]


class LockedPosts(ModelSectionsAdapter):
    """The host says no to everything but looking for the post whose slug is "locked"."""

    def has_permission(self, user, post, action):
        return action == "view" or post.slug != "locked"


@pytest.fixture
def post(make_post):
    return make_post(sections=2)


@pytest.fixture
def sections(post):
    return get_host().sections(post)


@pytest.fixture
def api(admin_user, rq_queue, django_capture_on_commit_callbacks):
    return Api(admin_user)


def section_path(post, section) -> str:
    return f"/api/v1/posts/{post.pk}/sections/{section.key}"


def png_file(name="photo.png", **kwargs) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, png_bytes(**kwargs), content_type="image/png")


# --- approve ------------------------------------------------------------------------------------


def test_approve_with_alt_text_and_replaces(api, sections, make_result, django_capture_on_commit_callbacks):
    first, second = make_result(sections[0]), make_result(sections[0])
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(f"{RESULTS}/{first.pk}/approve", {"alt_text": "A  lighthouse\nat dusk", "replaces": None})
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["message"] == f"Approved image #{first.pk}."
    assert body["replaced"] is None and body["unchanged"] is False and body["warnings"] == []
    assert body["result"]["decision"] == "approved" and body["result"]["is_approved"] is True
    review = SectionReview.objects.get(pk=first.review_id)
    assert review.approved_result_id == first.pk and review.alt_text == "A lighthouse at dusk"

    # The client still thinks nothing is approved: refused, naming who approved what.
    stale = api.post(f"{RESULTS}/{second.pk}/approve", {"replaces": None})
    assert stale.status_code == 409 and f"#{first.pk} was approved by admin" in stale.json()["error"]
    assert SectionReview.objects.get(pk=first.review_id).approved_result_id == first.pk

    with django_capture_on_commit_callbacks(execute=True):
        replacing = api.post(f"{RESULTS}/{second.pk}/approve", {"replaces": first.pk})
    assert replacing.status_code == 200
    assert replacing.json()["replaced"] == first.pk
    assert replacing.json()["message"] == f"Approved image #{second.pk}; it replaces image #{first.pk}."
    again = api.post(f"{RESULTS}/{second.pk}/approve", {"replaces": second.pk})
    assert again.json()["unchanged"] is True and "already approved" in again.json()["message"]


def test_approve_without_alt_text_warns(api, sections, make_result, django_capture_on_commit_callbacks):
    result = make_result(sections[1])
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(f"{RESULTS}/{result.pk}/approve")
    assert response.status_code == 200
    assert response.json()["warnings"] == [
        f"Image #{result.pk} is published without alt text; set it with PATCH on its section."
    ]


def test_approve_refusals(api, sections, make_result):
    result = make_result(sections[0])
    running = ImageGenerationResult.objects.create(
        review=result.review, prompt="p", final_prompt="p", provider="placeholder", params={}, status="running"
    )
    bad = api.post(f"{RESULTS}/{result.pk}/approve", {"replaces": "seven", "colour": "red"})
    assert bad.status_code == 400 and set(bad.json()["errors"]) == {"replaces", "colour"}
    assert api.post(f"{RESULTS}/{running.pk}/approve").status_code == 409
    assert api.post(f"{RESULTS}/999999/approve").status_code == 404
    too_long = api.post(f"{RESULTS}/{result.pk}/approve", {"alt_text": "x" * 301})
    assert too_long.status_code == 400 and "alt_text" in too_long.json()["errors"]
    assert not SectionReview.objects.filter(approved_result__isnull=False).exists()


def test_a_removed_sections_image_is_not_approved(api, post, sections, make_result):
    result = make_result(sections[1])
    post.sections.filter(pk=sections[1].key).delete()
    response = api.post(f"{RESULTS}/{result.pk}/approve")
    assert response.status_code == 409 and "was removed from the post" in response.json()["error"]
    # It still takes a rejection and comments, as on the review page.
    assert api.post(f"{RESULTS}/{result.pk}/reject", {"comment": "gone"}).status_code == 200
    path = f"/api/v1/posts/{post.pk}/sections/{sections[1].key}"
    assert api.get(path).json()["removed"] is True
    assert api.post(f"{path}/comments", {"comment": "kept for the record"}).status_code == 201
    assert api.call("PATCH", path, {"prompt": "new"}).status_code == 409


# --- reject -------------------------------------------------------------------------------------


def test_reject_needs_a_comment_and_marks_the_candidate(api, admin_user, sections, make_result, approve):
    kept, dropped = make_result(sections[0]), make_result(sections[0])
    approve(kept, user=admin_user)
    missing = api.post(f"{RESULTS}/{dropped.pk}/reject", {"comment": "  "})
    assert missing.status_code == 400 and list(missing.json()["errors"]) == ["comment"]
    assert api.post(f"{RESULTS}/{dropped.pk}/reject", {}).status_code == 400

    response = api.post(f"{RESULTS}/{dropped.pk}/reject", {"comment": "Too dark"})
    assert response.status_code == 200
    result = response.json()["result"]
    assert result["decision"] == "rejected" and result["rejection_comment"] == "Too dark"
    assert result["rejected_by"] == "admin" and result["rejected_at"]
    # The other candidate stays approved: rejecting one candidate is not rejecting the section.
    assert SectionReview.objects.get(pk=kept.review_id).approved_result_id == kept.pk

    decided = {r["id"]: r["decision"] for r in api.get(RESULTS).json()["results"]}
    assert decided == {kept.pk: "approved", dropped.pk: "rejected"}
    assert [r["id"] for r in api.get(RESULTS, decision="rejected").json()["results"]] == [dropped.pk]
    assert [r["id"] for r in api.get(RESULTS, decision="approved").json()["results"]] == [kept.pk]
    assert api.get(RESULTS, decision="undecided").json()["count"] == 0
    assert "decision" in api.get(RESULTS, decision="maybe").json()["errors"]


# --- cancel, requeue, regenerate ------------------------------------------------------------------


def queued(section, seed=None):
    """A queued result for ``section`` as the service makes it (its job not sent)."""
    spec = services.GenerationSpec(prompt="a lighthouse", providers=["placeholder"], overrides={"seed": seed})
    return services.request_generation(spec, section=section)[0]


def test_cancel_and_requeue(api, sections, rq_queue, django_capture_on_commit_callbacks):
    result = queued(sections[0])
    response = api.post(f"{RESULTS}/{result.pk}/cancel")
    assert response.status_code == 200 and response.json()["result"]["status"] == "cancelled"
    assert "requeue" in response.json()["result"]["actions"]
    assert api.post(f"{RESULTS}/{result.pk}/cancel").status_code == 409
    assert api.post(f"{RESULTS}/{result.pk}/cancel", {"now": True}).status_code == 400

    with django_capture_on_commit_callbacks(execute=True):
        requeued = api.post(f"{RESULTS}/{result.pk}/requeue")
    assert requeued.status_code == 202 and requeued.json()["result"]["status"] == "queued"
    assert len(rq_queue) == 1
    result.refresh_from_db()
    assert result.status == ResultStatus.QUEUED and result.job_id


def test_regenerate_is_idempotent_with_a_key(api, sections, rq_queue, run_worker, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        result = queued(sections[0], seed=7)
    run_worker()
    result.refresh_from_db()
    assert result.status == ResultStatus.SUCCEEDED
    path = f"{RESULTS}/{result.pk}/regenerate"
    with django_capture_on_commit_callbacks(execute=True):
        first = api.post(path, {"same_seed": True}, HTTP_IDEMPOTENCY_KEY="regen-1")
    with django_capture_on_commit_callbacks(execute=True):
        repeat = api.post(path, {"same_seed": True}, HTTP_IDEMPOTENCY_KEY="regen-1")
    assert first.status_code == repeat.status_code == 202
    new_id = first.json()["result"]["id"]
    assert repeat.json()["result"]["id"] == new_id and repeat["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first
    assert first.json()["regenerated_from"] == result.pk and first["Location"].endswith(f"{RESULTS}/{new_id}")
    assert ImageGenerationResult.objects.get(pk=new_id).params["seed"] == 7
    assert len(rq_queue) == 1  # the repeat queued nothing
    with django_capture_on_commit_callbacks(execute=True):
        other = api.post(path, {}, HTTP_IDEMPOTENCY_KEY="regen-2")
    assert other.json()["result"]["id"] not in (new_id, result.pk)
    assert api.post(path, {"same_seed": "yes"}).status_code == 400
    assert api.post(path, HTTP_IDEMPOTENCY_KEY="k" * 65).status_code == 400


def test_an_upload_is_not_regenerated(api, sections, make_result):
    result = make_result(sections[0])
    ImageGenerationResult.objects.filter(pk=result.pk).update(source=ResultSource.UPLOADED)
    response = api.post(f"{RESULTS}/{result.pk}/regenerate")
    assert response.status_code == 409 and "uploaded image cannot be regenerated" in response.json()["error"]


# --- permissions ------------------------------------------------------------------------------------


def test_each_action_needs_the_review_pages_permission(make_editor, sections, make_result):
    result = make_result(sections[0])
    viewer = Api(make_editor("viewer"))
    for action, body in (("approve", {}), ("reject", {"comment": "no"})):
        response = viewer.post(f"{RESULTS}/{result.pk}/{action}", body)
        assert response.status_code == 403 and "blogimages.review_images" in response.json()["error"]
    for action in ("cancel", "requeue", "regenerate"):
        response = viewer.post(f"{RESULTS}/{result.pk}/{action}")
        assert response.status_code == 403 and "blogimages.generate_images" in response.json()["error"]
    reviewer = Api(make_editor("reviewer", perms=REVIEW_PERMS))
    assert reviewer.post(f"{RESULTS}/{result.pk}/regenerate").status_code == 403
    path = f"/api/v1/posts/{sections[0].post.pk}/sections/{sections[0].key}"
    assert viewer.call("PATCH", path, {"alt_text": "x"}).status_code == 403
    assert viewer.call("PATCH", path, {"prompt": "x"}).status_code == 403
    upload = viewer.upload(f"{path}/upload", {"file": png_file()})
    assert upload.status_code == 403 and "blogimages.upload_images" in upload.json()["error"]
    uploader = Api(make_editor("uploader", perms=["upload_images"]))
    refused = uploader.upload(f"{path}/upload", {"file": png_file(), "approve_now": "true"})
    assert refused.status_code == 403
    assert not ImageGenerationResult.objects.filter(source=ResultSource.UPLOADED).exists()
    assert viewer.post(f"{path}/comments", {"comment": "Looks fine"}).status_code == 201  # anyone who sees it
    assert not SectionReview.objects.filter(approved_result__isnull=False).exists()


def test_the_host_has_its_say(settings, make_post, make_editor, make_result):
    settings.BLOGIMAGES_HOST_ADAPTER = "tests.test_api_actions.LockedPosts"
    locked = make_post(sections=1, slug="locked")
    result = make_result(get_host().sections(locked)[0])
    editor = Api(make_editor("editor", perms=ALL_PERMS))
    response = editor.post(f"{RESULTS}/{result.pk}/approve")
    assert response.status_code == 403 and "You may not review images" in response.json()["error"]
    assert editor.post(f"{RESULTS}/{result.pk}/regenerate").status_code == 403
    generate = editor.post(
        "/api/v1/images/generate", {"prompt": "x", "post": locked.pk, "section": result.review.section_key}
    )
    assert generate.status_code == 403
    assert editor.post(f"/api/v1/posts/{locked.pk}/generate").status_code == 403
    assert editor.get(f"{RESULTS}/{result.pk}").json()["actions"] == []
    assert ImageGenerationResult.objects.count() == 1
    assert not SectionReview.objects.filter(approved_result__isnull=False).exists()


# --- sections --------------------------------------------------------------------------------------


def test_section_detail_comment_and_reject(api, post, sections, make_result, approve, admin_user):
    result = make_result(sections[0])
    approve(result, user=admin_user)
    path = section_path(post, sections[0])
    listed = api.get(f"/api/v1/posts/{post.pk}/sections").json()
    assert [s["section"] for s in listed["sections"]] == [s.key for s in sections]
    detail = api.get(path).json()
    assert detail["approved_result"] == result.pk and detail["status"] == "approved"
    assert detail["prompt"] == sections[0].text and detail["history"][0]["action"] == "approved"
    assert api.get(f"/api/v1/posts/{post.pk}/sections/999999").status_code == 404

    empty = api.post(f"{path}/comments", {"comment": " "})
    assert empty.status_code == 400 and list(empty.json()["errors"]) == ["comment"]
    comment = api.post(f"{path}/comments", {"comment": "Needs more sky"})
    assert comment.status_code == 201 and comment.json()["event"]["comment"] == "Needs more sky"
    assert comment.json()["section"]["history"][0]["action"] == "commented"

    assert api.post(f"{path}/reject", {}).status_code == 400
    rejected = api.post(f"{path}/reject", {"comment": "None of these"})
    assert rejected.status_code == 200
    assert rejected.json()["section"]["status"] == "rejected"
    assert rejected.json()["section"]["approved_result"] is None


def test_section_prompt_and_alt_text(api, post, sections, make_result, approve, admin_user):
    path = section_path(post, sections[0])
    no_image = api.call("PATCH", path, {"alt_text": "A cliff"})
    assert no_image.status_code == 400 and "no approved image" in no_image.json()["errors"]["alt_text"][0]
    saved = api.call("PATCH", path, {"prompt": "  A red lighthouse  "})
    assert saved.status_code == 200
    assert saved.json()["prompt"] == "A red lighthouse" and saved.json()["prompt_source"].startswith("the section's")
    result = make_result(sections[0])
    approve(result, user=admin_user)
    alt = api.call("PATCH", path, {"alt_text": "A red lighthouse on a cliff"})
    assert alt.status_code == 200 and alt.json()["alt_text"] == "A red lighthouse on a cliff"
    assert api.call("PATCH", path, {}).status_code == 400
    assert api.call("PATCH", path, {"prompt": 5}).json()["errors"] == {"prompt": ["prompt must be a string, not 5."]}


# --- upload ------------------------------------------------------------------------------------------


def test_upload_and_approve_now_with_alt_text(api, post, sections, media_root):
    path = f"{section_path(post, sections[0])}/upload"
    response = api.upload(path, {"file": png_file(width=120, height=80), "approve_now": "true", "alt_text": "A dog"})
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["result"]["source"] == "uploaded" and body["result"]["decision"] == "approved"
    assert (body["result"]["width"], body["result"]["height"]) == (120, 80)
    assert body["section"]["alt_text"] == "A dog" and body["warnings"] == []
    assert response["Location"].endswith(f"{RESULTS}/{body['result']['id']}")


def test_upload_is_idempotent_with_a_key(api, post, sections, media_root):
    path = f"{section_path(post, sections[1])}/upload"
    first = api.upload(path, {"file": png_file()}, HTTP_IDEMPOTENCY_KEY="up-1")
    files_after_first = sorted(p.name for p in media_root.rglob("*") if p.is_file())
    repeat = api.upload(path, {"file": png_file()}, HTTP_IDEMPOTENCY_KEY="up-1")
    assert (first.status_code, repeat.status_code) == (201, 200)
    assert repeat.json()["result"]["id"] == first.json()["result"]["id"] and repeat["Idempotent-Replayed"] == "true"
    assert ImageGenerationResult.objects.filter(source=ResultSource.UPLOADED).count() == 1
    assert sorted(p.name for p in media_root.rglob("*") if p.is_file()) == files_after_first
    assert api.upload(path, {"file": png_file()}).status_code == 201  # no key: a second upload


def test_a_bad_upload_names_the_field_and_stores_nothing(api, post, sections, media_root):
    path = f"{section_path(post, sections[0])}/upload"
    junk = SimpleUploadedFile("notes.png", b"not an image at all", content_type="image/png")
    refused = api.upload(path, {"file": junk})
    assert refused.status_code == 400 and list(refused.json()["errors"]) == ["file"]
    assert "BytesIO" not in refused.json()["error"]
    assert api.upload(path, {}).json()["errors"]["file"][0].startswith("Choose an image file")
    flag = api.upload(path, {"file": png_file(), "approve_now": "perhaps"})
    assert flag.status_code == 400 and list(flag.json()["errors"]) == ["approve_now"]
    as_json = api.post(path, {"file": "x"})
    assert as_json.status_code == 400 and "multipart/form-data" in as_json.json()["error"]
    assert not ImageGenerationResult.objects.exists()
    assert not [p for p in media_root.rglob("*") if p.is_file()]


# --- the results list's filters -----------------------------------------------------------------------


def test_results_filter_like_the_gallery(api, make_post, make_result, admin_user):
    one, two = make_post(sections=1, slug="one"), make_post(sections=1, slug="two")
    a = make_result(get_host().sections(one)[0])
    b = make_result(get_host().sections(two)[0])
    ImageGenerationResult.objects.filter(pk=b.pk).update(
        model="sdxl", provider="other", provider_used="other", requested_by=admin_user
    )
    section_b = get_host().sections(two)[0].key

    def ids(**params):
        response = api.get(RESULTS, **params)
        assert response.status_code == 200, response.json()
        return [r["id"] for r in response.json()["results"]]

    assert ids(model="sdxl") == [b.pk]
    assert ids(provider="placeholder") == [a.pk]
    assert ids(post=str(one.pk)) == [a.pk]
    assert ids(post=str(two.pk), section=section_b) == [b.pk]
    assert ids(requested_by="admin") == [b.pk]
    assert ids(status="succeeded,failed") == [b.pk, a.pk]
    assert ids(status="failed") == []
    assert ids(until="2000-01-01") == []
    assert sorted(ids(since="2000-01-01")) == [a.pk, b.pk]


# --- send a playground result to a section ----------------------------------------------------------


def test_attach_a_playground_result_to_a_section(api, post, sections, make_result, make_editor):
    result = make_result(sections[0])
    ImageGenerationResult.objects.filter(pk=result.pk).update(review=None)  # a playground image
    path = f"{RESULTS}/{result.pk}/attach"
    assert Api(make_editor("viewer")).post(path, {"post": post.pk, "section": sections[1].key}).status_code == 403
    missing = api.post(path, {"post": post.pk})
    assert missing.status_code == 400 and list(missing.json()["errors"]) == ["section"]
    response = api.post(path, {"post": post.pk, "section": sections[1].key})
    assert response.status_code == 200, response.json()
    assert response.json()["result"]["section"] == sections[1].key
    assert response.json()["message"] == f"Sent image #{result.pk} to “{sections[1].title}”."
    again = api.post(path, {"post": post.pk, "section": sections[0].key})
    assert again.status_code == 400 and "already belongs to a section" in again.json()["errors"]["result"][0]
    assert ImageGenerationResult.objects.get(pk=result.pk).review.section_key == sections[1].key


# --- several at once (POST /api/v1/images/results/decide) -------------------------------------------

DECIDE = f"{RESULTS}/decide"


def test_decide_approves_several_sections_at_once(
    api, sections, make_result, approve, admin_user, django_capture_on_commit_callbacks
):
    old, first, second = make_result(sections[0]), make_result(sections[0]), make_result(sections[1])
    approve(old, user=admin_user)
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(DECIDE, {"decision": "approve", "ids": [second.pk, first.pk]})
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["decision"] == "approve" and body["replaced"] == [{"result": first.pk, "replaced": old.pk}]
    assert body["message"].startswith(f"Approved 2 images (#{first.pk}, #{second.pk}).")
    assert [(r["id"], r["decision"]) for r in body["results"]] == [(first.pk, "approved"), (second.pk, "approved")]
    # Published without alt text, as one approval is: said for each.
    assert body["warnings"] == [
        f"Image #{first.pk} is published without alt text; set it with PATCH on its section.",
        f"Image #{second.pk} is published without alt text; set it with PATCH on its section.",
    ]
    assert SectionReview.objects.get(pk=first.review_id).approved_result_id == first.pk
    assert SectionReview.objects.get(pk=second.review_id).approved_result_id == second.pk


def test_decide_rejects_with_one_comment_or_refuses_naming_the_field(api, sections, make_result):
    first, second = make_result(sections[0]), make_result(sections[1])
    refused = api.post(DECIDE, {"decision": "reject", "ids": [first.pk, second.pk]})
    assert refused.status_code == 400 and "comment" in refused.json()["errors"]
    assert not ImageGenerationResult.objects.filter(rejected_at__isnull=False).exists()
    response = api.post(DECIDE, {"decision": "reject", "ids": [first.pk, second.pk], "comment": "Too dark"})
    assert response.status_code == 200
    assert [(r["decision"], r["rejection_comment"]) for r in response.json()["results"]] == [
        ("rejected", "Too dark"),
        ("rejected", "Too dark"),
    ]


@pytest.mark.parametrize(
    "body, field",
    [
        ({"ids": [1]}, "decision"),
        ({"decision": "maybe", "ids": [1]}, "decision"),
        ({"decision": "approve", "ids": []}, "ids"),
        ({"decision": "approve", "ids": "1,2"}, "ids"),
        ({"decision": "approve", "ids": [True]}, "ids"),
        ({"decision": "approve", "ids": [2**70]}, "ids"),
        ({"decision": "approve", "ids": list(range(1, 502))}, "ids"),
        ({"decision": "reject", "ids": [1], "comment": 5}, "comment"),
        ({"decision": "approve", "ids": [1], "why": "x"}, "why"),
    ],
)
def test_decide_bad_input_is_a_400_naming_the_field(api, body, field):
    response = api.post(DECIDE, body)
    assert response.status_code == 400 and field in response.json()["errors"], response.json()


def test_decide_is_all_or_nothing(api, sections, make_result):
    first, second, other = make_result(sections[0]), make_result(sections[0]), make_result(sections[1])
    # Two of one section: refused, naming both; the other section's candidate is not approved either.
    response = api.post(DECIDE, {"decision": "approve", "ids": [first.pk, second.pk, other.pk]})
    assert response.status_code == 400 and f"#{first.pk} and #{second.pk}" in response.json()["errors"]["ids"][0]
    assert not SectionReview.objects.filter(approved_result__isnull=False).exists()
    # An unknown id: 404 naming it, nothing decided.
    response = api.post(DECIDE, {"decision": "reject", "ids": [other.pk, 999999], "comment": "no"})
    assert response.status_code == 404 and "999999" in response.json()["error"]
    # A playground result (no section): 409, nothing decided.
    ImageGenerationResult.objects.filter(pk=second.pk).update(review=None)
    response = api.post(DECIDE, {"decision": "reject", "ids": [other.pk, second.pk], "comment": "no"})
    assert response.status_code == 409 and f"#{second.pk}" in response.json()["error"]
    assert not ImageGenerationResult.objects.filter(rejected_at__isnull=False).exists()


def test_decide_needs_the_review_permission_and_the_hosts_say(settings, make_post, make_editor, make_result):
    free = make_post(sections=1, slug="free")
    result = make_result(get_host().sections(free)[0])
    viewer = Api(make_editor("viewer"))
    response = viewer.post(DECIDE, {"decision": "approve", "ids": [result.pk]})
    assert response.status_code == 403 and "blogimages.review_images" in response.json()["error"]
    settings.BLOGIMAGES_HOST_ADAPTER = "tests.test_api_actions.LockedPosts"
    locked = make_post(sections=1, slug="locked")
    blocked = make_result(get_host().sections(locked)[0])
    editor = Api(make_editor("editor", perms=REVIEW_PERMS))
    response = editor.post(DECIDE, {"decision": "approve", "ids": [result.pk, blocked.pk]})
    assert response.status_code == 403 and "You may not review images" in response.json()["error"]
    assert not SectionReview.objects.filter(approved_result__isnull=False).exists()
    assert editor.post(DECIDE, {"decision": "approve", "ids": [result.pk]}).status_code == 200
