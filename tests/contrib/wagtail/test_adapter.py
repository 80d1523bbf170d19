"""WagtailPageAdapter reads sections from the latest revision's StreamField."""

from __future__ import annotations

from django.contrib.contenttypes.models import ContentType

from blogimages.contrib.wagtail.adapter import WagtailPageAdapter
from blogimages.hosts import get_host
from project.wagtailblog.models import BlogPage

from .conftest import section_value


def test_get_host_is_the_wagtail_adapter():
    assert isinstance(get_host(), WagtailPageAdapter)


def test_sections_in_order_keyed_by_block_id_with_plain_text(make_page):
    page = make_page(sections=4)
    sections = get_host().sections(page)
    assert [s.key for s in sections] == [block.id for block in page.body]
    assert [s.position for s in sections] == [0, 1, 2, 3]
    assert [s.title for s in sections] == ["Section 1", "Section 2", "Section 3", "Section 4"]
    assert sections[0].text == "A lighthouse on a cliff at dusk, view 1"
    assert sections[0].post == page and sections[0].obj.block_type == "section"


def test_rich_text_becomes_plain_text(make_page):
    page = make_page(sections=1)
    page.body = [
        (
            "section",
            section_value("Fish &amp; chips", '<p>Cod &amp; <b>chips</b></p><p>On the <a href="#">pier</a></p>'),
        )
    ]
    page.save_revision()
    [section] = get_host().sections(page)
    assert section.title == "Fish & chips"
    assert section.text == "Cod & chips\nOn the pier"
    assert "<" not in section.text


def test_only_configured_block_types_are_sections(make_page):
    page = make_page(sections=2)
    draft = page.get_latest_revision_as_object()
    draft.body.insert(1, ("image", None))
    draft.save_revision()
    assert len(draft.body) == 3
    assert len(get_host().sections(page)) == 2


def test_a_draft_only_section_is_visible(make_page):
    page = make_page(sections=2)
    draft = page.get_latest_revision_as_object()
    draft.body.append(("section", section_value("New in the draft", "<p>Harbour lights</p>")))
    draft.save_revision()
    page.refresh_from_db()
    assert len(page.body) == 2  # the live page is unchanged
    sections = get_host().sections(page)
    assert [s.title for s in sections][-1] == "New in the draft"
    assert get_host().section(page, sections[-1].key).text == "Harbour lights"


def test_a_block_edited_in_place_keeps_its_key(make_page):
    page = make_page(sections=3)
    before = get_host().sections(page)
    draft = page.get_latest_revision_as_object()
    block = draft.body[1]
    draft.body[1] = ("section", section_value("Renamed", "<p>Another text</p>"), block.id)
    draft.save_revision()
    after = get_host().sections(page)
    assert [s.key for s in after] == [s.key for s in before]
    assert (after[1].title, after[1].text) == ("Renamed", "Another text")


def test_a_removed_block_is_no_longer_a_section(make_page):
    page = make_page(sections=3)
    removed = get_host().sections(page)[1].key
    draft = page.get_latest_revision_as_object()
    del draft.body[1]
    draft.save_revision()
    assert removed not in [s.key for s in get_host().sections(page)]
    assert get_host().section(page, removed) is None


def test_title_falls_back_to_the_first_line(settings, make_page):
    settings.BLOGIMAGES_WAGTAIL_PAGES = {"wagtailblog.BlogPage": {"blocks": ["section"]}}
    page = make_page(sections=1)
    [section] = get_host().sections(page)
    # Without "title", every child is text: the heading is the first line.
    assert section.title == "Section 1"
    assert section.text == "Section 1\n\nA lighthouse on a cliff at dusk, view 1"


def test_unconfigured_page_type_has_no_sections(settings, make_page):
    page = make_page(sections=2)
    settings.BLOGIMAGES_WAGTAIL_PAGES = {}
    assert get_host().sections(page) == []


def test_posts_by_reference_admin_url_and_specific(make_page):
    from wagtail.models import Page

    page = make_page(sections=1)
    host = get_host()
    base = Page.objects.get(pk=page.pk)
    assert type(host.post_for(base)) is BlogPage
    assert host.get_post(ContentType.objects.get_for_model(BlogPage), str(page.pk)) == page
    assert host.get_post(ContentType.objects.get_for_model(BlogPage), "nope") is None
    assert host.post_admin_url(page) == f"/admin/pages/{page.pk}/edit/"
    assert host.post_public_url(page) == page.url
