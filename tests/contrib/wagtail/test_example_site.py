"""The example Wagtail site: its settings pass the checks, the demo loads, the editor opens."""

from __future__ import annotations

import io

from django.core.management import call_command

from blogimages.contrib.wagtail.checks import check_settings
from blogimages.hosts import get_host
from project.wagtailblog.models import BlogPage


def test_example_settings_pass_the_checks(settings):
    from project import settings_wagtail

    settings.BLOGIMAGES_WAGTAIL_PAGES = settings_wagtail.BLOGIMAGES_WAGTAIL_PAGES
    assert settings_wagtail.BLOGIMAGES_HOST_ADAPTER == settings.BLOGIMAGES_HOST_ADAPTER
    assert check_settings() == []


def test_demo_content_is_loaded_once(db, client):
    call_command("wagtailblog_demo", stdout=io.StringIO())
    call_command("wagtailblog_demo", stdout=io.StringIO())
    page = BlogPage.objects.get()
    assert page.live and page.url == "/cornish-coast/"
    sections = get_host().sections(page)
    assert len(sections) == 4
    assert sections[0].title == "St Michael's Mount at low tide"
    assert client.login(username="admin", password="blogimages-demo")
    assert client.get(f"/admin/pages/{page.pk}/edit/").status_code == 200
    assert client.get(page.url).status_code == 200
