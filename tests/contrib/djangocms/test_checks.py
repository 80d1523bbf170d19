"""Each system check of the django CMS integration, by id."""

from __future__ import annotations

import pytest

from blogimages.contrib.djangocms.checks import check_settings


def ids(settings_obj=None) -> list[str]:
    return [message.id for message in check_settings()]


def test_the_example_settings_pass():
    assert ids() == []


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ([], "blogimages_djangocms.E001"),
        ({"nope.Model": {}}, "blogimages_djangocms.E001"),
        ({"auth.User": {}}, "blogimages_djangocms.E001"),
        ({"cms.PageContent": {"slot": "content"}}, "blogimages_djangocms.E003"),
    ],
)
def test_content_setting(settings, content, expected):
    settings.BLOGIMAGES_DJANGOCMS_CONTENT = content
    assert expected in ids()


def test_a_content_model_without_a_grouper(settings, monkeypatch):
    from blogimages.contrib.djangocms import conf

    monkeypatch.setattr(conf, "KNOWN_GROUPERS", {})
    monkeypatch.setattr(conf.apps, "is_installed", lambda name: name != "djangocms_versioning")
    settings.BLOGIMAGES_DJANGOCMS_CONTENT = {"cms.PageContent": {"placeholder": "content"}}
    assert "blogimages_djangocms.E002" in ids()


def test_text_plugins_on_unapprove_and_adapter(settings):
    settings.BLOGIMAGES_DJANGOCMS_TEXT_PLUGINS = []
    settings.BLOGIMAGES_DJANGOCMS_ON_UNAPPROVE = "archive"
    settings.BLOGIMAGES_HOST_ADAPTER = "blogimages.hosts.ModelSectionsAdapter"
    assert ids() == ["blogimages_djangocms.E004", "blogimages_djangocms.E005", "blogimages_djangocms.W001"]


def test_insert_plugin_needs_versioning_and_required_apps(monkeypatch):
    from blogimages.contrib.djangocms import checks

    monkeypatch.setattr(checks.apps, "is_installed", lambda name: name not in {"djangocms_versioning", "filer"})
    found = ids()
    assert "blogimages_djangocms.W002" in found and "blogimages_djangocms.E006" in found


def test_every_setting_is_documented():
    from pathlib import Path

    from blogimages.contrib.djangocms.conf import DjangoCMSSettings

    root = Path(__file__).resolve().parents[3]
    docs = (root / "README.md").read_text()
    names = [
        f"{DjangoCMSSettings.prefix}{name}"
        for name, value in vars(DjangoCMSSettings).items()
        if isinstance(value, property)
    ]
    assert len(names) == 7 and [name for name in names if name not in docs] == []
    check_ids = {f"blogimages_djangocms.{i}" for i in ("E001", "E002", "E003", "E004", "E005", "E006", "W001", "W002")}
    assert all(check_id.split(".")[1] in docs for check_id in check_ids)
