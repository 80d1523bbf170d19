"""A running candidate's live preview in django CMS's sideframe: the review page's status answer
names it, and its URL answers with the Django admin session (staff), as in Django admin."""

from __future__ import annotations

import json

from blogimages import refining
from blogimages.contrib.djangocms.views import review_url
from blogimages.hosts import get_host
from blogimages.models import ImageGenerationResult, ResultStatus
from tests.conftest import png_bytes

from .test_views import logged_in


def test_status_names_the_preview_and_it_answers_in_django_cms(make_post, make_result, cms_admin):
    post = make_post(sections=1)
    result = make_result(get_host().sections(post)[0])
    ImageGenerationResult.objects.filter(pk=result.pk).update(status=ResultStatus.RUNNING, progress=40)
    redis = refining._redis()
    try:
        refining.store_preview([result.pk], png_bytes())
        client = logged_in(cms_admin)  # a staff user, signed in to Django admin (the sideframe's session)
        status = json.loads(client.get(review_url(post) + "status/").content)
        [entry] = status["results"]
        assert entry["preview"] == 1 and entry["preview_url"] == f"/api/v1/images/results/{result.pk}/preview?n=1"
        image = client.get(entry["preview_url"])
        assert image.status_code == 200 and image["Content-Type"] == "image/webp"
    finally:
        for key in redis.scan_iter("blogimages:preview:*"):
            redis.delete(key)
