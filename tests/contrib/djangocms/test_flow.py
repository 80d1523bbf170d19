"""End to end through the service layer and a real RQ worker on a real Redis."""

from __future__ import annotations

from filer.models import Image

from blogimages import services
from blogimages.contrib.djangocms.models import SectionImage
from blogimages.hosts import get_host
from blogimages.models import ResultStatus


def test_generate_for_all_sections_then_approve_places_plugins_in_the_draft(
    make_post, cms_admin, run_worker, approve, django_capture_on_commit_callbacks
):
    post = make_post(sections=4)
    with django_capture_on_commit_callbacks(execute=True):
        outcome = services.generate_for_post(post, user=cms_admin)
    assert len(outcome.results) == 4 and not outcome.skipped
    assert run_worker() == 4
    for result in outcome.results:
        result.refresh_from_db()
        assert result.status == ResultStatus.SUCCEEDED
        approve(result, user=cms_admin)
    assert Image.objects.count() == 4
    keys = [s.key for s in get_host().sections(post)]
    placed = SectionImage.objects.filter(placeholder__object_id=get_host().sections(post)[0].obj.content.pk)
    assert sorted(p.section_key for p in placed) == sorted(keys)
