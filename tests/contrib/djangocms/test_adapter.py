"""The django CMS adapter on real djangocms-stories posts: sections are the text plugins of the
content placeholder, keyed so that djangocms-versioning's copies keep them."""

from __future__ import annotations

from cms.api import add_plugin
from cms.models import CMSPlugin
from django.contrib.contenttypes.models import ContentType

from blogimages import services
from blogimages.hosts import get_host
from blogimages.models import SectionReview

from .conftest import LANGUAGE, content_placeholder, draft_of, version_of


def keys(post):
    return [section.key for section in get_host().sections(post)]


def test_sections_are_the_text_plugins_in_order_as_plain_text(make_post):
    post = make_post(sections=4)
    sections = get_host().sections(post)
    assert [s.title for s in sections] == ["Section 1", "Section 2", "Section 3", "Section 4"]
    # No markup reaches a prompt: tags dropped, entities decoded, the heading is the title.
    assert sections[0].text == "A lighthouse on a cliff at dusk, view 1 & more"
    assert [s.position for s in sections] == [0, 1, 2, 3]
    assert all(s.key.startswith(f"{LANGUAGE}-") for s in sections)
    assert len(set(keys(post))) == 4


def test_without_a_heading_the_first_words_are_the_title(make_post):
    post = make_post(sections=0)
    add_plugin(
        content_placeholder(draft_of(post, post.author)),
        "TextPlugin",
        LANGUAGE,
        body="<p>One two three four five six seven eight nine ten.</p>",
    )
    [section] = get_host().sections(post)
    assert section.title == "One two three four five six seven eight…"
    assert section.text == "One two three four five six seven eight nine ten."


def test_keys_survive_versioning_copies_moves_publishing_and_reverting(make_post, cms_admin):
    from djangocms_stories.models import PostContent

    post = make_post(sections=3)
    published_keys = keys(post)
    first_version = version_of(PostContent.admin_manager.filter(post=post).get())
    draft = draft_of(post, cms_admin)  # a copy: every plugin gets a new primary key
    old_ids = set(
        CMSPlugin.objects.filter(placeholder=content_placeholder(first_version.content)).values_list("pk", flat=True)
    )
    new_ids = set(CMSPlugin.objects.filter(placeholder=content_placeholder(draft)).values_list("pk", flat=True))
    assert old_ids and new_ids and old_ids.isdisjoint(new_ids)
    assert keys(post) == published_keys  # the draft is read, with the same keys

    # A new section first in the draft: the others keep their keys, at their new positions.
    add_plugin(
        content_placeholder(draft),
        "TextPlugin",
        LANGUAGE,
        position="first-child",
        body="<h2>New</h2><p>A new first section</p>",
    )
    now = keys(post)
    assert now[1:] == published_keys and now[0] not in published_keys

    version_of(draft).publish(cms_admin)
    assert keys(post) == now
    # Revert to the first version: versioning copies it into a new draft.
    reverted = version_of(first_version.content).copy(cms_admin).content
    assert keys(post) == published_keys
    assert get_host().sections(post)[0].obj.content == reverted


def test_reviews_follow_their_section_into_the_draft(make_post, cms_admin):
    post = make_post(sections=2)
    first = get_host().sections(post)[0]
    review = services.review_for(first)
    draft_of(post, cms_admin)
    assert services.find_review(get_host().sections(post)[0]) == review
    assert review.post_type == ContentType.objects.get_for_model(post) and review.post_id == str(post.pk)


def test_a_pasted_copy_of_a_section_gets_its_own_key(make_post, cms_admin):
    from cms.utils.plugins import copy_plugins_to_placeholder

    post = make_post(sections=2)
    draft = draft_of(post, cms_admin)
    placeholder = content_placeholder(draft)
    first = CMSPlugin.objects.filter(placeholder=placeholder, plugin_type="TextPlugin").order_by("position").first()
    copy_plugins_to_placeholder([first], placeholder, language=LANGUAGE)  # what "paste" does
    found = keys(post)
    assert len(found) == 3 and len(set(found)) == 3
    assert found[2] == f"{found[0]}-2"


def test_section_by_key_and_by_plugin(make_post, cms_admin):
    post = make_post(sections=3)
    host = get_host()
    second = host.sections(post)[1]
    assert host.section(post, second.key).title == "Section 2"
    assert host.section(post, "en-1") is None and host.section(post, "nonsense") is None
    plugin = CMSPlugin.objects.get(pk=second.obj.plugin_id).get_bound_plugin()
    assert host.section_for(plugin).key == second.key


def test_nested_text_plugins_are_part_of_their_parent(make_post, cms_admin):
    post = make_post(sections=1)
    draft = draft_of(post, cms_admin)
    parent = CMSPlugin.objects.get(placeholder=content_placeholder(draft), plugin_type="TextPlugin")
    add_plugin(content_placeholder(draft), "TextPlugin", LANGUAGE, target=parent, body="<p>inline</p>")
    assert len(get_host().sections(post)) == 1


def test_posts_find_post_and_urls(make_post, blog_page, cms_admin):
    post = make_post(sections=1)
    unpublished = make_post(sections=1, published=False)
    host = get_host()
    found = {(type(p).__name__, p.pk) for p in host.posts()}
    assert found == {("Post", post.pk), ("Post", unpublished.pk), ("Page", blog_page.pk), ("Page", blog_page.parent.pk)}
    assert host.find_post(str(post.pk)) == post
    assert host.find_post(f"djangocms_stories.post:{post.pk}") == post
    assert host.find_post("nope") is None
    assert host.get_post(ContentType.objects.get_for_model(post), "x") is None
    assert host.post_public_url(post) == "/blog/walk-1/"
    assert host.post_public_url(unpublished) == ""
    assert host.post_admin_url(post).startswith("/admin/cms/placeholder/object/")
    assert host.post_title(post) == "A walk by the sea"


def test_cms_pages_have_sections_too(cms_admin):
    from cms.api import create_page

    page = create_page("About", "cmsblog/page.html", LANGUAGE, created_by=cms_admin)
    content = page.get_admin_content(LANGUAGE)
    add_plugin(content_placeholder(content), "TextPlugin", LANGUAGE, body="<h3>Team</h3><p>Our team at work</p>")
    [section] = get_host().sections(page)
    assert (section.title, section.text) == ("Team", "Our team at work")
    assert get_host().post_for(content) == page
    review = services.review_for(section)
    assert SectionReview.objects.get(pk=review.pk).post == page
