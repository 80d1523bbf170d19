"""The publish hook: an approved result becomes one Wagtail image, drafts get a block, nothing twice."""

from __future__ import annotations

import pytest
from django.core.files.storage import default_storage
from wagtail.images import get_image_model
from wagtail.models import Collection

from blogimages import services
from blogimages.contrib.wagtail.models import PublishedImage
from blogimages.contrib.wagtail.streams import inserted_block_id
from blogimages.hosts import get_host
from blogimages.models import ResultSource

Image = get_image_model()


def latest_draft(page):
    page.refresh_from_db()  # latest_revision and has_unpublished_changes moved on
    return page.get_latest_revision_as_object()


def chooser_images():
    """What Wagtail's image chooser lists for the configured collection."""
    return Image.objects.filter(collection__name="Generated images")


@pytest.fixture
def section(make_page):
    page = make_page(sections=4)
    return get_host().sections(page)[1]


def test_approve_makes_a_wagtail_image_in_the_collection(section, make_result, approve, admin_user):
    result = make_result(section, prompt="A lighthouse at dusk")
    # The description is the alt text an editor saved (never the prompt: issue 11, point 8).
    services.save_alt_text(services.review_for(section), "A lighthouse at dusk")
    approve(result, user=admin_user)
    [image] = chooser_images()
    assert image.collection.get_parent() == Collection.get_first_root_node()
    assert image.title == "Section 2 – A walk by the sea"
    assert image.description == "A lighthouse at dusk"
    assert list(image.tags.names()) == ["ai-generated"]
    assert (image.width, image.height) == (64, 48)
    assert image.uploaded_by_user == admin_user
    assert image.file.read() == result.image.read()
    assert image.blogimages_source.result == result  # the link back to the generation result
    assert image.blogimages_source.section_key == section.key


def test_alt_text_is_the_description_and_plain(section, make_result, approve):
    review = services.review_for(section)
    review.alt_text = "Gulls &amp; <b>waves</b>"
    review.save()
    approve(make_result(section))
    assert chooser_images().get().description == "Gulls & waves"


def test_changing_the_alt_text_after_approval_updates_the_wagtail_image(
    section, make_result, approve, django_capture_on_commit_callbacks
):
    result = make_result(section)
    approve(result)
    with django_capture_on_commit_callbacks(execute=True):
        services.save_alt_text(services.review_for(section), "Gulls over  the harbour wall")
    assert chooser_images().get().description == "Gulls over the harbour wall"


def test_approving_twice_makes_one_image(section, make_result, approve):
    result = make_result(section)
    approve(result)
    approve(result)
    get_host().image_approved(services.review_for(section), result)  # a retried hook
    assert chooser_images().count() == 1
    assert PublishedImage.objects.count() == 1


def test_replacing_keeps_the_old_image_by_default(section, make_result, approve):
    first, second = make_result(section), make_result(section, colour=(0, 0, 255))
    approve(first)
    approve(second)
    assert chooser_images().count() == 2
    assert PublishedImage.objects.approved().get().result == second
    approve(first)  # back to the first: its image is reused
    assert chooser_images().count() == 2
    assert PublishedImage.objects.approved().get().result == first


def test_unapprove_keeps_the_image_by_default(section, make_result, approve, reject):
    result = make_result(section)
    approve(result)
    reject(result=result)
    assert chooser_images().count() == 1
    assert not PublishedImage.objects.approved().exists()
    approve(result)
    assert chooser_images().count() == 1


def test_unapprove_deletes_when_configured(settings, section, make_result, approve, reject, media_root):
    settings.BLOGIMAGES_WAGTAIL_ON_UNAPPROVE = "delete"
    first, second = make_result(section), make_result(section)
    approve(first)
    approve(second)  # replacing retires the first image
    assert [link.result for link in PublishedImage.objects.all()] == [second]
    image = chooser_images().get()
    name = image.file.name
    reject(result=second)
    assert not chooser_images().exists()
    assert not default_storage.exists(name)
    assert first.image and default_storage.exists(first.image.name)  # blogimages keeps its own file


def test_an_upload_is_not_tagged_ai_generated(section, approve, admin_user):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from tests.conftest import png_bytes

    result = services.upload(section, SimpleUploadedFile("mine.png", png_bytes(), "image/png"), user=admin_user)
    assert result.source == ResultSource.UPLOADED
    approve(result, user=admin_user)
    image = chooser_images().get()
    assert list(image.tags.names()) == []
    assert image.description == ""


def test_a_stale_hook_publishes_nothing(section, make_result, approve):
    first, second = make_result(section), make_result(section)
    approve(second)
    get_host().image_approved(services.review_for(section), first)  # ran late: first is not approved
    assert [link.result for link in PublishedImage.objects.all()] == [second]


# --- the inserted image block ---------------------------------------------------------------


def test_no_block_is_inserted_unless_configured(section, make_result, approve):
    page = section.post
    revisions = page.revisions.count()
    approve(make_result(section))
    assert page.revisions.count() == revisions


def test_approve_inserts_an_image_block_in_a_new_draft(insert_blocks, section, make_result, approve, admin_user):
    page = section.post
    live_body = [block.id for block in page.body]
    approve(make_result(section), user=admin_user)
    page.refresh_from_db()
    assert [block.id for block in page.body] == live_body  # not published
    assert page.has_unpublished_changes
    draft = latest_draft(page)
    assert [b.block_type for b in draft.body] == ["section", "section", "image", "section", "section"]
    assert draft.body[2].id == inserted_block_id(section.key)
    assert draft.body[2].value == chooser_images().get()
    assert page.get_latest_revision().user == admin_user
    # The inserted block is not a section.
    assert len(get_host().sections(page)) == 4


def test_approving_again_or_replacing_does_not_duplicate_the_block(insert_blocks, section, make_result, approve):
    page = section.post
    first, second = make_result(section), make_result(section)
    approve(first)
    revisions = page.revisions.count()
    approve(first)
    assert page.revisions.count() == revisions  # nothing changed, no new revision
    approve(second)
    draft = latest_draft(page)
    images = [b for b in draft.body if b.block_type == "image"]
    assert len(images) == 1
    assert images[0].value == PublishedImage.objects.get(result=second).image


def test_the_editor_may_move_the_inserted_block(insert_blocks, section, make_result, approve):
    page = section.post
    approve(make_result(section))
    draft = latest_draft(page)
    moved = draft.body[2]
    del draft.body[2]
    draft.body.insert(0, (moved.block_type, moved.value, moved.id))
    draft.save_revision()
    approve(make_result(section))
    draft = latest_draft(page)
    assert [b.block_type for b in draft.body] == ["image", "section", "section", "section", "section"]


def test_rejecting_removes_the_inserted_block_in_a_new_draft(insert_blocks, section, make_result, approve, reject):
    page = section.post
    result = make_result(section)
    approve(result)
    reject(result=result)
    draft = latest_draft(page)
    assert [b.block_type for b in draft.body] == ["section"] * 4
    assert chooser_images().count() == 1  # "keep"


# --- repair command ---------------------------------------------------------------------------


def test_publish_command_makes_missing_images_once(section, make_result, approve):
    import io

    from django.core.management import call_command

    approve(make_result(section))
    PublishedImage.objects.all().delete()
    Image.objects.all().delete()
    out = io.StringIO()
    call_command("blogimages_wagtail_publish", "--dry-run", stdout=out)
    assert "1 image(s) would be published" in out.getvalue()
    assert not chooser_images().exists()
    call_command("blogimages_wagtail_publish", stdout=out)
    call_command("blogimages_wagtail_publish", stdout=out)
    assert chooser_images().count() == 1
