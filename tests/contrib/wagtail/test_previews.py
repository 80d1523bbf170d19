"""A running candidate's live preview in Wagtail's admin: the review page's status answer names
it, and its URL answers with the Wagtail admin session (staff), as in Django admin."""

from __future__ import annotations

import pytest
from django.urls import reverse

from blogimages import refining
from blogimages.hosts import get_host
from blogimages.models import ImageGenerationResult, ResultStatus
from tests.conftest import png_bytes


@pytest.fixture
def clean_previews():
    redis = refining._redis()
    for key in redis.scan_iter("blogimages:preview:*"):
        redis.delete(key)
    yield
    for key in redis.scan_iter("blogimages:preview:*"):
        redis.delete(key)


def test_status_names_the_preview_and_it_answers_in_wagtail(
    client, make_page, make_result, make_wagtail_editor, clean_previews
):
    page = make_page(sections=1)
    result = make_result(get_host().sections(page)[0])
    ImageGenerationResult.objects.filter(pk=result.pk).update(status=ResultStatus.RUNNING, progress=40)
    refining.store_preview([result.pk], png_bytes())
    editor = make_wagtail_editor("wagtail-editor", perms=("view_imagegenerationresult", "review_images"))
    client.force_login(editor)
    status = client.get(reverse("blogimages_wagtail:review_status", args=[page.pk]))
    assert status.status_code == 200
    [entry] = status.json()["results"]
    assert entry["preview"] == 1 and entry["preview_url"] == f"/api/v1/images/results/{result.pk}/preview?n=1"
    image = client.get(entry["preview_url"])
    assert image.status_code == 200 and image["Content-Type"] == "image/webp" and image["X-Preview-Count"] == "1"
