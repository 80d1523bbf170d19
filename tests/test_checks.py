"""Each system check id, triggered by the misconfiguration it describes."""

from __future__ import annotations

import pytest
from django.core.checks import run_checks
from django.core.exceptions import ImproperlyConfigured

from blogimages.providers import UnknownProvider, providers
from blogimages.providers.placeholder import PlaceholderProvider


def ids(**_):
    return sorted({message.id for message in run_checks(tags=["blogimages"])})


def test_example_project_is_clean():
    assert ids() == []


@pytest.mark.parametrize(
    "overrides, expected",
    [
        ({"BLOGIMAGES_POST_MODEL": "blog.Nope"}, "blogimages.E001"),
        ({"BLOGIMAGES_SECTION_TEXT_FIELD": "text"}, "blogimages.E002"),
        ({"BLOGIMAGES_SECTION_POST_FIELD": "heading"}, "blogimages.E003"),
        ({"BLOGIMAGES_PROVIDERS": {}}, "blogimages.E010"),
        ({"BLOGIMAGES_PROVIDERS": {"x": {"BACKEND": "no.such.Provider"}}}, "blogimages.E011"),
        (
            {"BLOGIMAGES_PROVIDERS": {"p": {"BACKEND": "blogimages.providers.placeholder.PlaceholderProvider",
                                            "OPTIONS": {"colour": "red"}}}},
            "blogimages.E011",
        ),
        ({"BLOGIMAGES_DEFAULT_PROVIDER": "dalle"}, "blogimages.E012"),
        ({"BLOGIMAGES_QUEUE": "images"}, "blogimages.E020"),
        ({"RQ_QUEUES": {"default": {"URL": "redis://127.0.0.1:6379/0"}}}, "blogimages.W021"),
        ({"BLOGIMAGES_STORAGE": "images"}, "blogimages.E030"),
    ],
)
def test_misconfiguration_is_reported(settings, overrides, expected):
    for name, value in overrides.items():
        setattr(settings, name, value)
    assert expected in ids()


def test_unknown_provider_option_names_the_option():
    with pytest.raises(ImproperlyConfigured, match=r"unknown option\(s\) colour for PlaceholderProvider"):
        PlaceholderProvider("p", colour="red")


def test_registry_caches_and_clears_on_setting_change(settings):
    first = providers["placeholder"]
    assert providers["placeholder"] is first
    settings.BLOGIMAGES_PROVIDERS = {
        "placeholder": {"BACKEND": "blogimages.providers.placeholder.PlaceholderProvider", "OPTIONS": {"steps": 2}}
    }
    assert providers["placeholder"] is not first and providers["placeholder"].options["steps"] == 2
    with pytest.raises(UnknownProvider, match="No provider 'comfy'; BLOGIMAGES_PROVIDERS defines placeholder"):
        providers["comfy"]


def test_missing_host_model_setting_is_a_clear_error(settings):
    from blogimages.models import _host_model

    del settings.BLOGIMAGES_SECTION_MODEL
    with pytest.raises(ImproperlyConfigured, match="BLOGIMAGES_SECTION_MODEL must name your blog's model"):
        _host_model("BLOGIMAGES_SECTION_MODEL")
