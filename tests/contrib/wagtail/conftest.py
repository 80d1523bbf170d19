"""Fixtures of the Wagtail integration's tests: real Wagtail 8.0, pages with StreamField sections."""

from __future__ import annotations

import io
import uuid

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission

ADAPTER = "blogimages.contrib.wagtail.adapter.WagtailPageAdapter"
PAGES = {
    "wagtailblog.BlogPage": {"field": "body", "blocks": ["section"], "title": "heading", "image_block": None},
}


@pytest.fixture(autouse=True)
def wagtail_host(settings):
    """The Wagtail adapter and URLs for every test here; the rest of the suite keeps the rows adapter."""
    settings.BLOGIMAGES_HOST_ADAPTER = ADAPTER
    settings.ROOT_URLCONF = "project.urls_wagtail"
    settings.BLOGIMAGES_WAGTAIL_PAGES = {label: dict(entry) for label, entry in PAGES.items()}
    return settings


@pytest.fixture
def insert_blocks(settings):
    """Approval inserts an "image" block after the section in a new draft."""
    settings.BLOGIMAGES_WAGTAIL_PAGES = {
        "wagtailblog.BlogPage": {**PAGES["wagtailblog.BlogPage"], "image_block": "image"}
    }


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


def png_bytes(width=64, height=48, colour=(200, 80, 40)) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
def make_result(db):
    """A finished, generated result for a section, its image stored through blogimages' storage."""
    from blogimages import services
    from blogimages.models import ImageGenerationResult, ResultStatus
    from blogimages.storage import save_bytes

    def make(section, *, prompt=None, colour=(200, 80, 40)):
        review = services.review_for(section)
        data = png_bytes(colour=colour)
        return ImageGenerationResult.objects.create(
            review=review,
            prompt=prompt if prompt is not None else section.text,
            final_prompt=prompt if prompt is not None else section.text,
            provider="placeholder",
            provider_used="placeholder",
            status=ResultStatus.SUCCEEDED,
            progress=100,
            image=save_bytes(data, "image/png"),
            width=64,
            height=48,
            file_size=len(data),
            content_type="image/png",
        )

    return make


@pytest.fixture
def approve(django_capture_on_commit_callbacks):
    """services.approve with its after-commit publish hook run, as in a request."""
    from blogimages import services

    def run(result, user=None, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return services.approve(result, user=user, **kwargs)

    return run


@pytest.fixture
def reject(django_capture_on_commit_callbacks):
    from blogimages import services

    def run(section=None, *, result=None, user=None, comment="Not this one"):
        with django_capture_on_commit_callbacks(execute=True):
            return services.reject(section, result=result, user=user, comment=comment)

    return run


@pytest.fixture
def make_wagtail_editor(db):
    """A user in a group with the given Wagtail page permissions on the site root, image
    permissions on the root collection, and blogimages permissions (codenames)."""
    from wagtail.models import Collection, GroupCollectionPermission, GroupPagePermission, Site

    def make(username="editor", *, page_perms=("change_page",), image_perms=("add_image",), perms=()):
        user = get_user_model().objects.create_user(username, f"{username}@example.com", "pass", is_staff=True)
        group = Group.objects.create(name=f"{username}-group")
        group.permissions.set(
            Permission.objects.filter(content_type__app_label="wagtailadmin", codename="access_admin")
            | Permission.objects.filter(content_type__app_label="blogimages", codename__in=perms)
        )
        root = Site.objects.get(is_default_site=True).root_page
        for codename in page_perms:
            GroupPagePermission.objects.create(
                group=group, page=root, permission=Permission.objects.get(codename=codename)
            )
        for codename in image_perms:
            GroupCollectionPermission.objects.create(
                group=group,
                collection=Collection.get_first_root_node(),
                permission=Permission.objects.get(content_type__app_label="wagtailimages", codename=codename),
            )
        user.groups.add(group)
        return user

    return make
