"""Public pages render approved images with Wagtail's {% image %} and renditions."""

from __future__ import annotations

import re

from django.db import connection
from django.template import Context, Template
from django.test.utils import CaptureQueriesContext

from blogimages import services
from blogimages.contrib.wagtail.templatetags.blogimages_wagtail import approved_images_for
from blogimages.hosts import get_host


def test_public_page_renders_the_approved_image_as_a_rendition(client, make_page, make_result, approve):
    page = make_page(sections=3)
    sections = get_host().sections(page)
    # Public alt text is only what an editor saved (issue 11, point 8), never the prompt.
    services.save_alt_text(services.review_for(sections[1]), "A lighthouse on a cliff at dusk, view 2")
    approve(make_result(sections[1]))
    response = client.get(page.url)
    assert response.status_code == 200
    html = response.content.decode()
    [img] = re.findall(r"<img [^>]*>", html)
    assert re.search(r'src="/media/images/[^"]+\.width-960\.png"', img)
    assert 'alt="A lighthouse on a cliff at dusk, view 2"' in img
    # After the second section, before the third.
    assert html.index("view 2") < html.index("<img") < html.index("view 3")
    from wagtail.images import get_image_model

    assert get_image_model().objects.get().renditions.filter(filter_spec="width-960").exists()


def test_a_rejected_image_is_not_shown(client, make_page, make_result, approve, reject):
    page = make_page(sections=1)
    [section] = get_host().sections(page)
    result = make_result(section)
    approve(result)
    reject(result=result)
    assert b"<img" not in client.get(page.url).content


def test_all_approved_images_in_one_query(make_page, make_result, approve):
    page = make_page(sections=4)
    sections = get_host().sections(page)
    for section in sections[:3]:
        approve(make_result(section))
    with CaptureQueriesContext(connection) as queries:
        images = approved_images_for(page)
    assert len(queries) == 1
    assert sorted(images) == sorted(s.key for s in sections[:3])


def test_tags_by_block(make_page, make_result, approve):
    page = make_page(sections=2)
    sections = get_host().sections(page)
    approve(make_result(sections[0]))
    template = Template(
        "{% load blogimages_wagtail %}{% approved_images page as images %}"
        "{% for block in page.body %}[{{ images|image_for:block|default:'-' }}]{% endfor %}"
        "{% approved_image page first as one %}{{ one.title }}"
    )
    out = template.render(Context({"page": page, "first": page.body[0]}))
    assert out == "[Section 1 – A walk by the sea][-]Section 1 – A walk by the sea"


def test_a_tag_never_breaks_the_page(make_page, monkeypatch, caplog):
    from blogimages.contrib.wagtail.models import PublishedImageQuerySet

    def broken(self, page):
        raise RuntimeError("database gone")

    monkeypatch.setattr(PublishedImageQuerySet, "for_page", broken)
    page = make_page(sections=1)
    template = Template(
        "{% load blogimages_wagtail %}{% approved_images page as images %}{% approved_image page block as one %}"
        "{{ images|image_for:block|default:'-' }}{{ one|default:'-' }}ok"
    )
    assert template.render(Context({"page": page, "block": page.body[0]})) == "--ok"
    assert "database gone" in caplog.text
