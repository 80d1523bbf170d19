"""The toolbar's "Images" menu and the review page in Django admin (the CMS's sideframe)."""

from __future__ import annotations

import html
import json

from cms.toolbar.utils import get_object_edit_url, get_object_preview_url
from django.test import Client

from blogimages.contrib.djangocms.views import review_url
from blogimages.hosts import get_host
from blogimages.models import ImageGenerationResult

from .conftest import LANGUAGE, draft_of


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_toolbar_has_an_images_menu_in_edit_and_preview_mode(make_post, cms_admin):
    post = make_post(sections=2)
    client = logged_in(cms_admin)
    draft = draft_of(post, cms_admin)
    page = html.unescape(client.get(get_object_edit_url(draft, language=LANGUAGE)).content.decode())
    assert "Images" in page and "Review images" in page and review_url(post) in page
    assert "Generate for all sections" in page and "Prompt playground" in page
    assert "/admin/blogimages/imagegenerationresult/status/" in page
    preview = html.unescape(client.get(get_object_preview_url(draft, language=LANGUAGE)).content.decode())
    assert review_url(post) in preview


def test_no_images_menu_for_people_who_may_not_see_the_images(make_post, cms_admin, make_cms_editor):
    post = make_post(sections=1)
    draft = draft_of(post, cms_admin)
    editor = make_cms_editor("staffer", perms=["djangocms_stories.change_postcontent", "cms.change_page"])
    editor.user_permissions.clear()
    page = html.unescape(logged_in(editor).get(get_object_preview_url(draft, language=LANGUAGE)).content.decode())
    assert review_url(post) not in page


def test_review_page_generate_status_and_section(make_post, cms_admin, django_capture_on_commit_callbacks):
    post = make_post(sections=3)
    client = logged_in(cms_admin)
    url = review_url(post)
    page = client.get(url)
    assert page.status_code == 200
    body = page.content.decode()
    for section in get_host().sections(post):
        assert f'id="bi-section-{section.key}"' in body and section.title in body
    assert "<p>" not in body.split('id="bi-section-', 1)[1].split("</h2>", 1)[0]
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(url, {"do": "generate-post"})
    assert response.status_code == 302 and response["Location"] == url
    assert ImageGenerationResult.objects.count() == 3
    assert {r.prompt for r in ImageGenerationResult.objects.all()} == {
        f"A lighthouse on a cliff at dusk, view {i} & more" for i in (1, 2, 3)
    }
    status = json.loads(client.get(url + "status/").content)
    assert len(status["results"]) == 3 and status["active"] is True
    key = get_host().sections(post)[0].key
    panel = client.get(url + f"section/{key}/")
    assert panel.status_code == 200 and "Section 1" in panel.content.decode()


def test_generate_from_a_draft_only_section(make_post, cms_admin, django_capture_on_commit_callbacks):
    from cms.api import add_plugin

    from .conftest import content_placeholder

    post = make_post(sections=1)
    draft = draft_of(post, cms_admin)
    add_plugin(content_placeholder(draft), "TextPlugin", LANGUAGE, body="<p>Only in the <i>draft</i></p>")
    key = get_host().sections(post)[-1].key
    with django_capture_on_commit_callbacks(execute=False):
        logged_in(cms_admin).post(review_url(post), {"do": "generate-section", "section": key})
    assert ImageGenerationResult.objects.get().prompt == "Only in the draft"
