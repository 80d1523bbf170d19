"""One request, one effect: approvals that race, generate buttons clicked twice, API retries.

The concurrent tests run on PostgreSQL (row locks; SQLite serialises writers anyway) with
real threads, each on its own connection, and count what was really made: publish hook
calls, rendition files, result rows, RQ jobs.
"""

from __future__ import annotations

import threading
import uuid

import pytest
from django.contrib.messages import get_messages
from django.db import connection

from blogimages import services
from blogimages.hosts import get_host
from blogimages.hosts.rows import ModelSectionsAdapter
from blogimages.models import ImageGenerationResult, RequestKey, ReviewAction, ReviewEvent, SectionReview
from tests.conftest import generated_result

postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="row locks need PostgreSQL; SQLite serialises writers"
)


class CountingAdapter(ModelSectionsAdapter):
    """The rows adapter, counting the publish hook's calls."""

    approved: list[tuple[int, int | None]] = []

    def image_approved(self, review, result, *, replaced=None, user=None):
        self.approved.append((result.pk, replaced.pk if replaced else None))


def review_url(post) -> str:
    return f"/admin/blog/post/{post.pk}/images/"


def texts(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def in_threads(count: int, work) -> list:
    """Run ``work(index)`` in ``count`` threads released together; their answers or errors."""
    barrier = threading.Barrier(count)
    outcomes: list = [None] * count

    def run(index: int) -> None:
        try:
            barrier.wait()
            outcomes[index] = work(index)
        except Exception as exc:  # noqa: BLE001 - each thread's outcome is asserted
            outcomes[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def rendition_files(media_root) -> list:
    """Renditions under random keys, and those of published images (``<slug>-<width>w.webp``)."""
    found = []
    for folder, pattern in (("renditions", "*"), ("published", "*-*w.webp")):
        path = media_root / "blogimages" / folder
        found += [p for p in path.rglob(pattern) if p.is_file()] if path.exists() else []
    return sorted(found)


# --- approvals ------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@postgres_only
def test_twenty_concurrent_approvals_one_wins_the_others_are_told(
    make_post, admin_user, settings, rq_queue, run_worker, media_root
):
    settings.BLOGIMAGES_HOST_ADAPTER = f"{__name__}.CountingAdapter"
    settings.BLOGIMAGES_RENDITION_WIDTHS = (32,)
    CountingAdapter.approved = []
    section = get_host().sections(make_post(sections=1))[0]
    candidates = [generated_result(section, colour=(i * 10, 0, 0)) for i in range(20)]

    def approve(index):
        # Every editor saw the section without an approved image.
        result = ImageGenerationResult.objects.get(pk=candidates[index].pk)
        return services.approve(result, user=admin_user, replaces=None)

    outcomes = in_threads(20, approve)
    won = [o for o in outcomes if isinstance(o, SectionReview)]
    lost = [o for o in outcomes if not isinstance(o, SectionReview)]
    assert len(won) == 1 and len(lost) == 19
    winner = won[0].approved_result_id
    assert all(isinstance(o, services.ApprovalConflict) for o in lost), lost
    assert {str(o) for o in lost} == {
        f"Already changed: #{winner} was approved by {admin_user} a moment ago; reload to see it."
    }
    review = SectionReview.objects.get(pk=won[0].pk)
    assert review.approved_result_id == winner
    assert ReviewEvent.objects.filter(review=review, action=ReviewAction.APPROVED).count() == 1
    # Only the winner is published and gets renditions.
    assert CountingAdapter.approved == [(winner, None)]
    assert rq_queue.count == 1
    run_worker()
    assert len(rendition_files(media_root)) == 1
    assert list(ImageGenerationResult.objects.exclude(renditions={}).values_list("pk", flat=True)) == [winner]


@pytest.mark.django_db(transaction=True)
@postgres_only
def test_twenty_concurrent_clicks_on_one_approve_button_approve_once(make_post, admin_user, settings, rq_queue):
    settings.BLOGIMAGES_HOST_ADAPTER = f"{__name__}.CountingAdapter"
    CountingAdapter.approved = []
    section = get_host().sections(make_post(sections=1))[0]
    result = generated_result(section)
    outcomes = in_threads(
        20, lambda i: services.approve(ImageGenerationResult.objects.get(pk=result.pk), replaces=None)
    )
    assert all(isinstance(o, SectionReview) for o in outcomes), outcomes
    assert sorted(o.unchanged for o in outcomes) == [False] + [True] * 19
    assert CountingAdapter.approved == [(result.pk, None)]
    assert ReviewEvent.objects.filter(action=ReviewAction.APPROVED).count() == 1
    assert rq_queue.count == 1  # one renditions job


@pytest.mark.django_db
def test_a_stale_approve_form_is_refused_and_says_who_decided(client, admin_user, make_editor, make_post):
    section = get_host().sections(make_post(sections=1))[0]
    first, second, third = (generated_result(section, colour=(i, 0, 0)) for i in (1, 2, 3))
    alice = make_editor("alice", perms=["review_images"])
    services.approve(first, user=alice)
    client.force_login(admin_user)
    url = review_url(section.post)
    page = client.get(url).content.decode()
    assert f'name="replaces" value="{first.pk}"' in page
    # Approving from the page: the message says what it replaced.
    response = client.post(url, {"do": f"approve:{second.pk}", "replaces": first.pk, "alt_text": "Gulls"}, follow=True)
    assert texts(response) == [f"Approved image #{second.pk} for “Section 1”; it replaces image #{first.pk}."]
    # The same form again (another tab, a double click): it saw #first approved, #second is now.
    response = client.post(url, {"do": f"approve:{third.pk}", "replaces": first.pk, "alt_text": "Gulls"}, follow=True)
    assert texts(response) == [
        f"Already changed: #{second.pk} was approved by {admin_user} a moment ago; reload to see it."
    ]
    assert SectionReview.objects.get().approved_result_id == second.pk
    # Approving what is already approved: nothing happens, and the editor is told.
    events = ReviewEvent.objects.count()
    response = client.post(url, {"do": f"approve:{second.pk}", "replaces": first.pk, "alt_text": "Gulls"}, follow=True)
    assert texts(response) == [f"Image #{second.pk} is already approved; nothing changed."]
    assert ReviewEvent.objects.count() == events


# --- generate and regenerate ----------------------------------------------------------------------


@pytest.mark.django_db
def test_a_double_posted_generate_or_regenerate_makes_one_job(
    client, admin_user, make_post, rq_queue, django_capture_on_commit_callbacks
):
    def send(*args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):  # jobs are queued on commit
            return client.post(*args, **kwargs)

    post = make_post(sections=1)
    section = post.sections.get()
    client.force_login(admin_user)
    url = review_url(post)
    page = client.get(url).content.decode()
    assert page.count('name="request_key"') == 2  # the toolbar's form and the section's
    key = uuid.uuid4().hex
    data = {"do": "generate-section", "section": str(section.pk), "request_key": key}
    first = send(url, data, follow=True)
    second = send(url, data, follow=True)
    [made] = ImageGenerationResult.objects.all()
    assert texts(first) == ["Queued 1 image."]
    assert texts(second) == [f"This request was already made (#{made.pk}); nothing new was queued."]
    assert rq_queue.count == 1

    # Generate for all sections, twice with one key; then regenerate, twice with another.
    data = {"do": "generate-post", "request_key": uuid.uuid4().hex}
    send(url, data)
    send(url, data)
    assert ImageGenerationResult.objects.count() == 2 and rq_queue.count == 2
    made.status = "succeeded"
    made.save(update_fields=["status"])
    data = {"do": f"regenerate:{made.pk}", "request_key": uuid.uuid4().hex}
    send(url, data)
    response = send(url, data, follow=True)
    assert ImageGenerationResult.objects.count() == 3 and rq_queue.count == 3
    assert texts(response)[-1] == f"This request was already made (#{made.pk + 2}); nothing new was queued."
    # A new page render brings a new key: a second, deliberate click generates again.
    send(url, {"do": "generate-section", "section": str(section.pk), "request_key": uuid.uuid4().hex})
    assert ImageGenerationResult.objects.count() == 4


@pytest.mark.django_db(transaction=True)
@postgres_only
def test_concurrent_generates_with_one_key_make_one_result(make_post, admin_user, rq_queue):
    section = make_post(sections=1).sections.get()
    key = uuid.uuid4().hex
    outcomes = in_threads(10, lambda i: services.generate_for_section(section, user=admin_user, idempotency_key=key))
    assert all(isinstance(o, list) for o in outcomes), outcomes
    [made] = ImageGenerationResult.objects.all()
    assert {tuple(r.pk for r in o) for o in outcomes} == {(made.pk,)}
    assert sorted(getattr(o[0], "repeated", False) for o in outcomes) == [False] + [True] * 9
    assert rq_queue.count == 1 and RequestKey.objects.count() == 1


@pytest.mark.django_db
def test_the_api_answers_a_repeated_idempotency_key_with_the_first_results(
    client, admin_user, settings, rq_queue, django_capture_on_commit_callbacks
):
    settings.BLOGIMAGES_API_TOKENS = {"tok-retry": admin_user.username}
    auth = {"HTTP_AUTHORIZATION": "Bearer tok-retry"}
    body = '{"prompt": "A lighthouse", "provider": "placeholder"}'

    def generate(**headers):
        with django_capture_on_commit_callbacks(execute=True):
            return client.post("/api/v1/images/generate", body, content_type="application/json", **auth, **headers)

    first = generate(HTTP_IDEMPOTENCY_KEY="retry-1")
    again = generate(HTTP_IDEMPOTENCY_KEY="retry-1")
    assert (first.status_code, again.status_code) == (202, 202), first.content
    assert first.json()["results"] == again.json()["results"]
    assert "Idempotent-Replayed" not in first and again["Idempotent-Replayed"] == "true"
    assert ImageGenerationResult.objects.count() == 1 and rq_queue.count == 1
    assert generate().status_code == 202 and ImageGenerationResult.objects.count() == 2  # no key: a new request
