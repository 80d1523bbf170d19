"""Fixtures of the Wagtail integration's tests: real Wagtail 8.0, pages with StreamField sections."""

from __future__ import annotations

import uuid

import pytest

from tests.conftest import use_wagtail_host

PAGES = {
    "wagtailblog.BlogPage": {"field": "body", "blocks": ["section"], "title": "heading", "image_block": None},
}


@pytest.fixture(autouse=True)
def wagtail_host(settings):
    """The Wagtail adapter and URLs for every test here; the rest of the suite keeps the rows adapter."""
    return use_wagtail_host(settings, PAGES)


@pytest.fixture
def insert_blocks(settings):
    """Approval inserts an "image" block after the section in a new draft."""
    settings.BLOGIMAGES_WAGTAIL_PAGES = {
        "wagtailblog.BlogPage": {**PAGES["wagtailblog.BlogPage"], "image_block": "image"}
    }


# make_result, approve, reject and make_wagtail_editor: tests/conftest.py.


def section_value(heading: str, html: str) -> dict:
    return {"heading": heading, "text": html}


@pytest.fixture
def make_page(db):
    """A BlogPage under the default site's root page, published unless ``live=False``."""
    from wagtail.models import Site

    from project.wagtailblog.models import BlogPage

    def make(sections=4, *, title="A walk by the sea", slug=None, live=True, user=None):
        body = [
            ("section", section_value(f"Section {i + 1}", f"<p>A lighthouse on a cliff at dusk, view {i + 1}</p>"))
            for i in range(sections)
        ]
        page = BlogPage(title=title, slug=slug or f"walk-{uuid.uuid4().hex[:8]}", body=body, live=live)
        Site.objects.get(is_default_site=True).root_page.add_child(instance=page)
        revision = page.save_revision(user=user)
        if live:
            revision.publish(user=user)
        page.refresh_from_db()
        return page

    return make
