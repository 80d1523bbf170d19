"""The Section image plugin on the published page: the approved filer image with responsive
sources, shown (and withdrawn) at once although django CMS caches pages and placeholders."""

from __future__ import annotations

import re

import pytest
from cms.api import add_plugin
from django.test import Client

from blogimages import services
from blogimages.contrib.djangocms import publishing
from blogimages.hosts import get_host

from .conftest import LANGUAGE, content_placeholder, draft_of, version_of


@pytest.fixture
def live_post(make_post, blog_page, cms_admin):
    """A published post with a Section image plugin (no key: the text above) after section 2."""
    post = make_post(sections=3)
    draft = draft_of(post, cms_admin)
    placeholder = content_placeholder(draft)
    second = get_host().sections(post)[1]
    from cms.models import CMSPlugin

    text = CMSPlugin.objects.get(pk=second.obj.plugin_id)
    add_plugin(placeholder, "SectionImagePlugin", LANGUAGE, position="right", target=text)
    version_of(draft).publish(cms_admin)
    return post


def images(html: str) -> list[str]:
    return re.findall(r"<img [^>]*>", html)


def test_the_approved_image_shows_at_once_and_goes_on_rejection(live_post, make_result, approve, reject, cms_admin):
    anonymous = Client()
    url = get_host().post_public_url(live_post)
    first = anonymous.get(url)
    assert first.status_code == 200 and images(first.content.decode()) == []  # and now cached
    section = get_host().sections(live_post)[1]
    result = make_result(section, width=1000, height=600)
    # Public alt text is only what an editor saved (issue 11, point 8), never the section's text.
    services.save_alt_text(services.review_for(section), "A lighthouse on a cliff at dusk, view 2 & more")
    approve(result, user=cms_admin)
    html = anonymous.get(url).content.decode()
    [img] = images(html)
    assert 'alt="A lighthouse on a cliff at dusk, view 2 &amp; more"' in img
    assert 'width="1000" height="600"' in img and 'loading="lazy"' in img
    # easy-thumbnails renditions below the original's width, then the original.
    srcset = re.search(r'srcset="([^"]*)"', img).group(1).split(", ")
    assert [entry.rsplit(" ", 1)[1] for entry in srcset] == ["480w", "800w", "1000w"]
    assert all(entry.split(" ")[0].startswith("/media/filer_public") for entry in srcset)
    from easy_thumbnails.models import Thumbnail

    assert Thumbnail.objects.count() == 2  # made and recorded by easy-thumbnails

    reject(result=result, user=cms_admin)
    assert images(anonymous.get(url).content.decode()) == []


def test_without_invalidation_the_cache_would_hide_the_approval(
    live_post, make_result, approve, cms_admin, monkeypatch
):
    """The cache is real: skipping the hook's invalidation leaves the old page in place."""
    anonymous = Client()
    url = get_host().post_public_url(live_post)
    assert images(anonymous.get(url).content.decode()) == []
    monkeypatch.setattr(publishing, "invalidate", lambda post: None)
    approve(make_result(get_host().sections(live_post)[1]), user=cms_admin)
    assert images(anonymous.get(url).content.decode()) == []
    monkeypatch.undo()
    publishing.invalidate(live_post)
    assert len(images(anonymous.get(url).content.decode())) == 1


def test_edit_mode_shows_the_candidates_and_the_review_link(live_post, make_result, cms_admin):
    from cms.toolbar.utils import get_object_edit_url

    section = get_host().sections(live_post)[1]
    result = make_result(section)
    draft = draft_of(live_post, cms_admin)
    client = Client()
    client.force_login(cms_admin)
    html = client.get(get_object_edit_url(draft, language=LANGUAGE)).content.decode()
    assert "Section image: no approved image yet." in html
    assert f'title="#{result.pk}' in html  # the candidate, without a thumbnail here
    assert f"#bi-section-{section.key}" in html


def test_a_broken_lookup_renders_nothing(live_post, make_result, approve, cms_admin, monkeypatch, caplog):
    from blogimages.contrib.djangocms import cms_plugins

    approve(make_result(get_host().sections(live_post)[1]), user=cms_admin)

    def boom(*args, **kwargs):
        raise RuntimeError("thumbnail backend down")

    monkeypatch.setattr(cms_plugins, "responsive", boom)
    publishing.invalidate(live_post)
    response = Client().get(get_host().post_public_url(live_post))
    assert response.status_code == 200 and images(response.content.decode()) == []
    assert "Could not render the section image plugin" in caplog.text
