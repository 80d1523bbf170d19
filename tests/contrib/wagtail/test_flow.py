"""End to end through the service layer and a real RQ worker on a real Redis."""

from __future__ import annotations

from wagtail.images import get_image_model

from blogimages import services
from blogimages.hosts import get_host
from blogimages.models import ResultStatus

from .conftest import section_value


def test_generate_for_a_draft_only_section_and_approve(
    make_page, admin_user, run_worker, approve, django_capture_on_commit_callbacks
):
    page = make_page(sections=2)
    draft = page.get_latest_revision_as_object()
    draft.body.append(("section", section_value("Only in the draft", "<p>A <i>red</i> boat at dawn</p>")))
    draft.save_revision(user=admin_user)
    section = get_host().sections(page)[-1]
    with django_capture_on_commit_callbacks(execute=True):
        [result] = services.generate_for_section(section, user=admin_user)
    assert result.prompt == "A red boat at dawn"
    assert run_worker() == 1
    result.refresh_from_db()
    assert result.status == ResultStatus.SUCCEEDED
    approve(result, user=admin_user)
    image = get_image_model().objects.get()
    assert image.blogimages_source.section_key == section.key
    page.refresh_from_db()
    assert len(page.body) == 2  # nothing was published


def test_generate_for_post_covers_every_section(make_page, admin_user, django_capture_on_commit_callbacks):
    page = make_page(sections=4)
    with django_capture_on_commit_callbacks(execute=True):
        outcome = services.generate_for_post(page, user=admin_user)
    assert sorted(r.review.section_key for r in outcome.results) == sorted(s.key for s in get_host().sections(page))
