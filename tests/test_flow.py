"""The spine, end to end: generate for a post, a real worker on real Redis, approve, render."""

from __future__ import annotations

import re

import pytest

from blogimages import services
from blogimages.models import (
    ImageGenerationResult,
    ResultStatus,
    ReviewAction,
    ReviewEvent,
    ReviewStatus,
    SectionReview,
)
from blogimages.storage import get_storage

pytestmark = pytest.mark.django_db


def test_generate_approve_and_render(client, make_post, run_worker, admin_user, django_capture_on_commit_callbacks):
    post = make_post(sections=4)
    sections = list(post.sections.all())

    with django_capture_on_commit_callbacks(execute=True):
        outcome = services.generate_for_post(post, user=admin_user)
    assert len(outcome.results) == 4 and outcome.skipped == []
    assert {r.status for r in ImageGenerationResult.objects.all()} == {ResultStatus.QUEUED}

    assert run_worker() == 4
    results = {r.review.section_key: r for r in ImageGenerationResult.objects.select_related("review")}
    assert set(results) == {str(section.pk) for section in sections}  # a row's key is its pk as text
    for result in results.values():
        assert result.status == ResultStatus.SUCCEEDED, result.error_message
        assert result.provider_used == "placeholder"
        assert result.seed is not None and not result.seed_pinned
        assert (result.width, result.height) == (1024, 1024)
        assert get_storage().exists(result.image.name) and get_storage().exists(result.thumbnail.name)
        assert len(result.checksum) == 64 and result.file_size > 0

    # Approve three sections; the fourth stays without an image.
    for section in sections[:3]:
        services.save_alt_text(services.review_for(section), f"Alt for section {section.pk}")
        services.approve(results[str(section.pk)], user=admin_user)
    assert SectionReview.objects.filter(status=ReviewStatus.APPROVED).count() == 3

    page = client.get(f"/blog/{post.slug}/")
    assert page.status_code == 200
    html = page.content.decode()
    images = re.findall(r"<img [^>]*>", html)
    assert len(images) == 3
    for section in sections[:3]:
        result = results[str(section.pk)]
        tag = next(tag for tag in images if result.image.url in tag)
        assert 'width="1024"' in tag and 'height="1024"' in tag and 'loading="lazy"' in tag
        assert f'alt="Alt for section {section.pk}"' in tag  # what the editor saved, never the prompt
    assert results[str(sections[3].pk)].image.url not in html


def test_history_records_each_action(make_post, run_worker, admin_user, django_capture_on_commit_callbacks):
    post = make_post(sections=1)
    section = post.sections.get()
    with django_capture_on_commit_callbacks(execute=True):
        (first,) = services.generate_for_section(section, user=admin_user)
    run_worker()
    first.refresh_from_db()
    services.reject(result=first, user=admin_user, comment="Too dark")
    with django_capture_on_commit_callbacks(execute=True):
        second = services.regenerate(first, user=admin_user)
    run_worker()
    second.refresh_from_db()
    services.approve(second, user=admin_user)
    review = SectionReview.objects.for_post(post).get(section_key=str(section.pk))
    actions = list(ReviewEvent.objects.filter(review=review).values_list("action", "comment"))
    assert actions == [
        (ReviewAction.GENERATED, ""),
        (ReviewAction.REJECTED, "Too dark"),
        (ReviewAction.REGENERATED, f"from #{first.pk}"),
        (ReviewAction.APPROVED, ""),
    ]
    assert second.seed != first.seed  # a new seed unless asked for the same one


def test_regenerate_with_same_seed_gives_identical_image(make_post, run_worker, django_capture_on_commit_callbacks):
    section = make_post(sections=1).sections.get()
    with django_capture_on_commit_callbacks(execute=True):
        (first,) = services.generate_for_section(section)
    run_worker()
    first.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=True):
        again = services.regenerate(first, same_seed=True)
    run_worker()
    again.refresh_from_db()
    assert again.seed == first.seed and again.seed_pinned
    assert again.checksum == first.checksum  # the placeholder is deterministic per seed
    assert again.image.name != first.image.name  # a new key: nothing is overwritten
