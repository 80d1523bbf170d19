"""The django CMS example site: the demo loads once, the post is public, the editor opens it."""

from __future__ import annotations

import io

from django.core.management import call_command
from django.test import Client

from blogimages.hosts import get_host

from .conftest import reload_urls


def test_demo_content_is_loaded_once(db):
    from djangocms_stories.models import Post

    call_command("cmsblog_demo", stdout=io.StringIO())
    call_command("cmsblog_demo", stdout=io.StringIO())
    reload_urls()
    post = Post.objects.get()
    sections = get_host().sections(post)
    assert [s.title for s in sections][:1] == ["St Michael's Mount at low tide"] and len(sections) == 4
    public = get_host().post_public_url(post)
    assert public == "/blog/cornish-coast/"
    assert "St Michael" in Client().get(public).content.decode()
    client = Client()
    assert client.login(username="admin", password="blogimages-demo")
    assert client.get(get_host().post_admin_url(post), follow=True).status_code == 200
