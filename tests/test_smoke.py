import pytest

from blogimages import services
from blogimages.models import ImageGenerationResult, ResultStatus


@pytest.mark.django_db
def test_generate_run_approve(make_post, run_worker, admin_user, django_capture_on_commit_callbacks):
    post = make_post(sections=2)
    with django_capture_on_commit_callbacks(execute=True):
        outcome = services.generate_for_post(post, user=admin_user)
    assert len(outcome.results) == 2
    assert run_worker() == 2
    rows = list(ImageGenerationResult.objects.all())
    assert {r.status for r in rows} == {ResultStatus.SUCCEEDED}, [r.error_message for r in rows]
