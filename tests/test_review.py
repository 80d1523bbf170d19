"""Review decisions: one approved image per section, held by the database."""

from __future__ import annotations

import threading

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction

from blogimages import services
from blogimages.exceptions import InvalidTransition
from blogimages.models import ImageGenerationResult, ReviewAction, ReviewStatus, SectionReview


def review_of(section) -> SectionReview:
    """The review row of a host section row (it must exist)."""
    return SectionReview.objects.for_post(section.post).get(section_key=str(section.pk))


def make_candidates(section, count, run_worker, capture):
    with capture(execute=True):
        results = [services.generate_for_section(section)[0] for _ in range(count)]
    run_worker()
    return [ImageGenerationResult.objects.get(pk=r.pk) for r in results]


@pytest.mark.django_db
def test_approving_another_candidate_replaces_the_first(
    make_post, run_worker, admin_user, django_capture_on_commit_callbacks
):
    section = make_post(sections=1).sections.get()
    first, second = make_candidates(section, 2, run_worker, django_capture_on_commit_callbacks)
    services.approve(first, user=admin_user)
    review = services.approve(second, user=admin_user, comment="Sharper")
    assert review.approved_result_id == second.pk and review.comment == "Sharper"
    assert list(ImageGenerationResult.objects.approved().values_list("pk", flat=True)) == [second.pk]


@pytest.mark.django_db
def test_rejecting_the_approved_image_clears_the_decision(
    make_post, run_worker, admin_user, django_capture_on_commit_callbacks
):
    section = make_post(sections=1).sections.get()
    (only,) = make_candidates(section, 1, run_worker, django_capture_on_commit_callbacks)
    services.approve(only, user=admin_user)
    review = services.reject(result=only, user=admin_user, comment="Wrong harbour")
    assert (review.status, review.approved_result_id, review.comment) == (ReviewStatus.REJECTED, None, "Wrong harbour")
    assert not ImageGenerationResult.objects.approved().exists()


@pytest.mark.django_db
def test_rejecting_needs_a_comment_and_approving_needs_an_image(make_post):
    section = make_post(sections=1).sections.get()
    (queued,) = services.generate_for_section(section)
    with pytest.raises(ValidationError, match="comment is required"):
        services.reject(section, comment="  ")
    with pytest.raises(InvalidTransition, match="has no finished image to approve"):
        services.approve(queued)
    assert review_of(section).status == ReviewStatus.PENDING


@pytest.mark.django_db
def test_comments_append_to_the_history(make_post, admin_user):
    section = make_post(sections=1).sections.get()
    services.add_comment(section, user=admin_user, text="Try a wider shot")
    services.add_comment(section, user=admin_user, text="Better with people")
    review = review_of(section)
    assert review.comment == "Better with people"
    assert list(review.events.values_list("action", "comment")) == [
        (ReviewAction.COMMENTED, "Try a wider shot"),
        (ReviewAction.COMMENTED, "Better with people"),
    ]
    event = review.events.first()
    event.comment = "rewritten"
    with pytest.raises(InvalidTransition, match="append-only"):
        event.save()


@pytest.mark.django_db
def test_the_database_refuses_one_image_approved_for_two_sections(
    make_post, run_worker, django_capture_on_commit_callbacks
):
    # A section has one approved_result field, so it cannot hold two; the one-to-one field
    # keeps a result from being the approved image of two sections.
    first_section, second_section = make_post(sections=2).sections.all()
    (first,) = make_candidates(first_section, 1, run_worker, django_capture_on_commit_callbacks)
    services.approve(first)
    other = services.review_for(second_section)
    with pytest.raises(IntegrityError), transaction.atomic():
        SectionReview.objects.filter(pk=other.pk).update(status="approved", approved_result=first)


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks need PostgreSQL; SQLite serialises writers")
def test_two_editors_approving_at_once_leave_exactly_one_approved(make_post, run_worker):
    section = make_post(sections=1).sections.get()
    results = []
    for _ in range(6):
        (result,) = services.generate_for_section(section)
        results.append(result)
    run_worker()
    barrier = threading.Barrier(len(results))
    errors = []

    def approve(result_id):
        try:
            barrier.wait()
            services.approve(ImageGenerationResult.objects.get(pk=result_id))
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=approve, args=(r.pk,)) for r in results]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    approved = list(ImageGenerationResult.objects.approved().values_list("pk", flat=True))
    assert len(approved) == 1
    assert review_of(section).approved_result_id == approved[0]
