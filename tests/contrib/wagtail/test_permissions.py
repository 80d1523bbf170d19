"""Server-side permissions: Wagtail's page edit and collection add, and blogimages' own."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.core.exceptions import PermissionDenied
from wagtail.models import Collection, GroupCollectionPermission

from blogimages import services
from blogimages.hosts import get_host

ALL = ("generate_images", "review_images", "upload_images")


def allowed(user, page):
    return [action for action in ("view", "generate", "review", "upload") if services.can(user, action, page)]


def test_editor_with_every_permission(make_page, make_wagtail_editor):
    page = make_page(sections=1)
    assert allowed(make_wagtail_editor(perms=ALL), page) == ["view", "generate", "review", "upload"]


def test_superuser_may_do_everything(make_page, admin_user):
    assert allowed(admin_user, make_page(sections=1)) == ["view", "generate", "review", "upload"]


def test_without_page_edit_permission_nothing(make_page, make_wagtail_editor):
    page = make_page(sections=1)
    editor = make_wagtail_editor(page_perms=(), perms=ALL)
    assert allowed(editor, page) == []
    with pytest.raises(PermissionDenied):
        services.require(editor, "generate", page)


def test_edit_permission_on_another_subtree_is_not_enough(make_page, make_wagtail_editor):
    from wagtail.models import GroupPagePermission

    page, other = make_page(sections=1), make_page(sections=1)
    editor = make_wagtail_editor(page_perms=(), perms=ALL)
    GroupPagePermission.objects.create(
        group=editor.groups.get(), page=other, permission=Permission.objects.get(codename="change_page")
    )
    assert allowed(editor, page) == []
    assert allowed(editor, other) == ["view", "generate", "review", "upload"]


def test_without_collection_add_permission_no_review_or_upload(make_page, make_wagtail_editor):
    page = make_page(sections=1)
    editor = make_wagtail_editor(image_perms=(), perms=ALL)
    assert allowed(editor, page) == ["view", "generate"]


def test_add_permission_is_checked_on_the_configured_collection(make_page, make_wagtail_editor):
    from blogimages.contrib.wagtail.publishing import get_collection

    page = make_page(sections=1)
    generated = get_collection()
    elsewhere = Collection.get_first_root_node().add_child(name="Photos")
    editor = make_wagtail_editor(image_perms=(), perms=ALL)
    add_image = Permission.objects.get(content_type__app_label="wagtailimages", codename="add_image")
    GroupCollectionPermission.objects.create(group=editor.groups.get(), collection=elsewhere, permission=add_image)
    assert allowed(editor, page) == ["view", "generate"]
    GroupCollectionPermission.objects.create(group=editor.groups.get(), collection=generated, permission=add_image)
    editor = type(editor).objects.get(pk=editor.pk)  # Wagtail caches permissions on the user, as per request
    assert allowed(editor, page) == ["view", "generate", "review", "upload"]


def test_blogimages_permissions_still_count(make_page, make_wagtail_editor):
    page = make_page(sections=1)
    assert allowed(make_wagtail_editor(perms=("generate_images",)), page) == ["view", "generate"]


def test_adapter_alone(make_page, make_wagtail_editor):
    page = make_page(sections=1)
    editor = make_wagtail_editor(image_perms=())
    host = get_host()
    assert host.has_permission(editor, page, "generate")
    assert not host.has_permission(editor, page, "review")
    assert not host.has_permission(editor, page, "delete-everything")
    editor.is_active = False
    assert not host.has_permission(editor, page, "view")
