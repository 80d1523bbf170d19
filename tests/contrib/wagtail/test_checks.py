"""blogimages_wagtail.* system checks, by id."""

from __future__ import annotations

import pytest

from blogimages.contrib.wagtail.checks import check_settings

GOOD = {"field": "body", "blocks": ["section"], "title": "heading", "text": ["text"], "image_block": "image"}


def ids(settings, pages=None, **extra):
    if pages is not None:
        settings.BLOGIMAGES_WAGTAIL_PAGES = pages
    for name, value in extra.items():
        setattr(settings, f"BLOGIMAGES_WAGTAIL_{name}", value)
    return [message.id for message in check_settings()]


def test_good_configuration_passes(settings):
    assert ids(settings, {"wagtailblog.BlogPage": GOOD}) == []


@pytest.mark.parametrize(
    "pages, expected",
    [
        ("wagtailblog.BlogPage", "blogimages_wagtail.E001"),
        ({"wagtailblog.NoSuchPage": GOOD}, "blogimages_wagtail.E001"),
        ({"blog.Post": GOOD}, "blogimages_wagtail.E001"),  # a model, but not a page
        ({"wagtailblog.BlogPage": {**GOOD, "field": "nope"}}, "blogimages_wagtail.E002"),
        ({"wagtailblog.BlogPage": {**GOOD, "field": "intro"}}, "blogimages_wagtail.E003"),
        ({"wagtailblog.BlogPage": {**GOOD, "blocks": ["section", "quote"]}}, "blogimages_wagtail.E004"),
        ({"wagtailblog.BlogPage": {**GOOD, "blocks": []}}, "blogimages_wagtail.E004"),
        ({"wagtailblog.BlogPage": {**GOOD, "title": "headline"}}, "blogimages_wagtail.E005"),
        ({"wagtailblog.BlogPage": {**GOOD, "blocks": ["image"], "image_block": None}}, "blogimages_wagtail.E005"),
        ({"wagtailblog.BlogPage": {**GOOD, "image_block": "section"}}, "blogimages_wagtail.E006"),
        ({"wagtailblog.BlogPage": {**GOOD, "image_block": "picture"}}, "blogimages_wagtail.E006"),
        ({"wagtailblog.BlogPage": {**GOOD, "blokcs": ["section"]}}, "blogimages_wagtail.E007"),
    ],
)
def test_bad_page_configuration(settings, pages, expected):
    assert ids(settings, pages) == [expected]


def test_on_unapprove_must_be_keep_or_delete(settings):
    assert ids(settings, ON_UNAPPROVE="remove") == ["blogimages_wagtail.E008"]


def test_warns_when_another_adapter_reads_the_host(settings):
    settings.BLOGIMAGES_HOST_ADAPTER = "blogimages.hosts.ModelSectionsAdapter"
    assert ids(settings, {"wagtailblog.BlogPage": GOOD}) == ["blogimages_wagtail.W001"]


def test_registered_with_django(settings):
    from django.core import checks

    settings.BLOGIMAGES_WAGTAIL_ON_UNAPPROVE = "remove"
    assert "blogimages_wagtail.E008" in [m.id for m in checks.run_checks(tags=["blogimages"])]


def test_messages_carry_a_hint(settings):
    settings.BLOGIMAGES_WAGTAIL_PAGES = {"wagtailblog.BlogPage": {**GOOD, "blocks": ["quote"]}}
    [message] = check_settings()
    assert "section" in message.hint
