"""django CMS's permissions (page and placeholder) and django-filer's, checked on the server
together with blogimages' own."""

from __future__ import annotations

import pytest
from cms.api import add_plugin
from django.test import Client

from blogimages import services
from blogimages.contrib.djangocms.views import review_url
from blogimages.models import ImageGenerationResult

from .conftest import LANGUAGE, content_placeholder

BLOGIMAGES = ["blogimages.generate_images", "blogimages.review_images", "blogimages.upload_images"]
POST_CONTENT = "djangocms_stories.change_postcontent"


def allowed(user, post) -> dict[str, bool]:
    return {action: services.can(user, action, post) for action in ("view", "generate", "review", "upload")}


def test_the_post_content_permission_is_needed(make_post, make_cms_editor):
    post = make_post(sections=1)
    outsider = make_cms_editor("outsider", perms=BLOGIMAGES)
    assert allowed(outsider, post) == dict.fromkeys(["view", "generate", "review", "upload"], False)
    editor = make_cms_editor("writer", perms=[POST_CONTENT, "blogimages.generate_images"])
    assert allowed(editor, post) == {"view": True, "generate": True, "review": False, "upload": False}


def test_approving_and_uploading_need_filer_add_image(make_post, make_cms_editor):
    post = make_post(sections=1)
    without_filer = make_cms_editor("nofiler", perms=[POST_CONTENT, *BLOGIMAGES])
    assert allowed(without_filer, post)["review"] is False and allowed(without_filer, post)["upload"] is False
    with_filer = make_cms_editor("filer", perms=[POST_CONTENT, *BLOGIMAGES, "filer.add_image"])
    assert all(allowed(with_filer, post).values())


def test_filer_folder_permissions(make_post, make_cms_editor, monkeypatch):
    from filer import settings as filer_settings
    from filer.models import FolderPermission

    from blogimages.contrib.djangocms.publishing import get_folder

    monkeypatch.setattr(filer_settings, "FILER_ENABLE_PERMISSIONS", True)
    post = make_post(sections=1)
    editor = make_cms_editor("folder", perms=[POST_CONTENT, *BLOGIMAGES, "filer.add_image"])
    folder = get_folder()
    assert allowed(editor, post)["review"] is False  # the folder exists, and is not theirs
    FolderPermission.objects.create(folder=folder, user=editor, type=FolderPermission.ALL, can_add_children=1)
    from django.contrib.auth import get_user_model

    editor = get_user_model().objects.get(pk=editor.pk)
    assert allowed(editor, post)["review"] is True


def test_page_permissions_for_cms_pages(cms_admin, make_cms_editor):
    from cms.api import create_page

    page = create_page("About", "cmsblog/page.html", LANGUAGE, created_by=cms_admin)
    add_plugin(content_placeholder(page.get_admin_content(LANGUAGE)), "TextPlugin", LANGUAGE, body="<p>Team</p>")
    reader = make_cms_editor("reader", perms=BLOGIMAGES)
    assert allowed(reader, page)["view"] is False
    editor = make_cms_editor("pager", perms=["cms.change_page", "blogimages.generate_images"])
    assert allowed(editor, page) == {"view": True, "generate": True, "review": False, "upload": False}


def test_the_review_page_and_its_actions_refuse_on_the_server(make_post, make_cms_editor):
    post = make_post(sections=2)
    url = review_url(post)
    outsider = make_cms_editor("outsider", perms=["blogimages.generate_images"])
    client = Client()
    client.force_login(outsider)
    assert client.get(url).status_code == 403
    assert client.post(url, {"do": "generate-post"}).status_code == 403
    viewer = make_cms_editor("viewer", perms=[POST_CONTENT])
    client.force_login(viewer)
    assert client.get(url).status_code == 200
    assert client.post(url, {"do": "generate-post"}).status_code == 403
    assert not ImageGenerationResult.objects.exists()


@pytest.mark.parametrize("ref", ["nonsense", "999-1", "1-999999"])
def test_unknown_posts_are_404(cms_admin, ref):
    client = Client()
    client.force_login(cms_admin)
    assert client.get(f"/admin/blogimages_djangocms/publishedimage/review/{ref}/").status_code == 404
