"""Approving an image: it becomes a django-filer image in the configured folder, once; a
Section image plugin is placed after the section in the draft, never published."""

from __future__ import annotations

import pytest
from filer.models import Folder, Image

from blogimages import services
from blogimages.contrib.djangocms import publishing
from blogimages.contrib.djangocms.models import PublishedImage, SectionImage
from blogimages.hosts import get_host

from .conftest import LANGUAGE, content_placeholder, version_of


def current(post):
    from djangocms_stories.models import PostContent

    return PostContent.admin_manager.filter(post=post, language=LANGUAGE).current_content().get()


def published(post):
    from djangocms_stories.models import PostContent

    return PostContent.objects.get(post=post, language=LANGUAGE)


def section_images(content):
    return list(SectionImage.objects.filter(placeholder=content_placeholder(content)).order_by("position"))


def test_approval_makes_one_filer_image_with_alt_text_and_description(make_post, make_result, approve, cms_admin):
    post = make_post(sections=2)
    section = get_host().sections(post)[1]
    result = make_result(section)
    services.save_alt_text(services.review_for(section), "A lighthouse on a cliff at dusk, view 2 & more")
    approve(result, user=cms_admin)
    image = Image.objects.get()
    assert image.folder == Folder.objects.get(name="Generated images", parent=None)
    assert image.default_alt_text == "A lighthouse on a cliff at dusk, view 2 & more"  # as saved, no escaping
    assert image.name == "Section 2 – A walk by the sea"
    assert f"result #{result.pk}" in image.description and "<" not in image.description
    assert image.owner == cms_admin and image.is_public
    assert (image.width, image.height) == (1000, 600)
    link = PublishedImage.objects.get()
    assert (link.result, link.image, link.section_key, link.post_id) == (result, image, section.key, str(post.pk))
    with image.file.open("rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"


def test_the_hook_is_idempotent(make_post, make_result, approve, reject, cms_admin):
    post = make_post(sections=1)
    [section] = get_host().sections(post)
    result = make_result(section)
    approve(result, user=cms_admin)
    review = result.review
    get_host().image_approved(review, result, user=cms_admin)  # a retried hook
    approve(result, user=cms_admin)  # a double click
    reject(result=result, user=cms_admin)
    approve(result, user=cms_admin)  # approved again after a rejection ("keep")
    assert Image.objects.count() == 1 and PublishedImage.objects.count() == 1
    assert len(section_images(current(post))) == 1


def test_editor_alt_text_wins_and_nested_folder(make_post, make_result, approve, cms_admin, settings):
    settings.BLOGIMAGES_DJANGOCMS_FILER_FOLDER = "Blog/AI images"
    post = make_post(sections=1)
    [section] = get_host().sections(post)
    result = make_result(section, prompt="<p>A <i>red</i> boat</p>")
    result.review.alt_text = "A red fishing boat"
    result.review.save()
    approve(result, user=cms_admin)
    image = Image.objects.get()
    assert image.default_alt_text == "A red fishing boat"
    assert (image.folder.name, image.folder.parent.name, image.folder.parent.parent) == ("AI images", "Blog", None)


def test_changing_the_alt_text_after_approval_updates_the_filer_image(
    make_post, make_result, approve, cms_admin, django_capture_on_commit_callbacks
):
    post = make_post(sections=1)
    [section] = get_host().sections(post)
    result = make_result(section)
    approve(result, user=cms_admin)
    with django_capture_on_commit_callbacks(execute=True):
        services.save_alt_text(result.review, "A red fishing boat in the harbour")
    assert Image.objects.get().default_alt_text == "A red fishing boat in the harbour"


def test_on_unapprove_delete_removes_the_filer_image(make_post, make_result, approve, reject, cms_admin, settings):
    settings.BLOGIMAGES_DJANGOCMS_ON_UNAPPROVE = "delete"
    post = make_post(sections=1)
    [section] = get_host().sections(post)
    first, second = make_result(section), make_result(section, colour=(0, 0, 200))
    approve(first, user=cms_admin)
    approve(second, user=cms_admin)  # replaces the first: its filer image goes
    assert list(PublishedImage.objects.values_list("result_id", flat=True)) == [second.pk]
    reject(result=second, user=cms_admin)
    assert not Image.objects.exists()


def test_a_plugin_is_placed_after_the_section_in_a_new_draft_never_published(
    make_post, make_result, approve, cms_admin
):
    from djangocms_versioning.constants import DRAFT, PUBLISHED

    post = make_post(sections=3)
    live = published(post)
    section = get_host().sections(post)[1]
    approve(make_result(section), user=cms_admin)
    draft = current(post)
    assert draft.pk != live.pk and version_of(draft).state == DRAFT
    assert version_of(live).state == PUBLISHED and section_images(live) == []
    [plugin] = section_images(draft)
    assert plugin.section_key == section.key
    # Right after the section's text plugin.
    from cms.models import CMSPlugin

    order = list(
        CMSPlugin.objects.filter(placeholder=content_placeholder(draft), language=LANGUAGE)
        .order_by("position")
        .values_list("plugin_type", flat=True)
    )
    assert order == ["TextPlugin", "TextPlugin", "SectionImagePlugin", "TextPlugin"]

    # A second section's approval uses the same draft.
    approve(make_result(get_host().sections(post)[0]), user=cms_admin)
    assert current(post).pk == draft.pk and len(section_images(draft)) == 2


def test_no_plugin_when_the_current_version_has_one_or_when_disabled(
    make_post, make_result, approve, cms_admin, settings
):
    from cms.api import add_plugin

    post = make_post(sections=2, published=False)
    draft = current(post)
    first, second = get_host().sections(post)
    add_plugin(content_placeholder(draft), "SectionImagePlugin", LANGUAGE, section_key=first.key)
    approve(make_result(first), user=cms_admin)
    assert len(section_images(draft)) == 1
    settings.BLOGIMAGES_DJANGOCMS_INSERT_PLUGIN = False
    approve(make_result(second), user=cms_admin)
    assert len(section_images(draft)) == 1
    assert Image.objects.count() == 2


def test_a_plugin_without_key_belongs_to_the_text_before_it(make_post, cms_admin):
    from cms.api import add_plugin

    post = make_post(sections=2, published=False)
    draft = current(post)
    placeholder = content_placeholder(draft)
    first, second = get_host().sections(post)
    plugin = add_plugin(placeholder, "SectionImagePlugin", LANGUAGE)
    assert publishing.plugin_keys(placeholder, LANGUAGE) == {plugin.pk: second.key}
    assert publishing.place_plugin(post, second.key, user=cms_admin) is None
    assert publishing.place_plugin(post, first.key, user=cms_admin) is not None


@pytest.mark.parametrize("user_kind", ["none", "anonymous"])
def test_no_draft_is_made_without_a_user(make_post, user_kind):
    from django.contrib.auth.models import AnonymousUser

    post = make_post(sections=1)
    [section] = get_host().sections(post)
    user = None if user_kind == "none" else AnonymousUser()
    assert publishing.place_plugin(post, section.key, user=user) is None
    assert current(post).pk == published(post).pk
