"""Each system check id, triggered by the misconfiguration it describes."""

from __future__ import annotations

import pytest
from django.core.checks import run_checks
from django.core.exceptions import ImproperlyConfigured

from blogimages.checks import check_settings
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
            {
                "BLOGIMAGES_PROVIDERS": {
                    "p": {
                        "BACKEND": "blogimages.providers.placeholder.PlaceholderProvider",
                        "OPTIONS": {"colour": "red"},
                    }
                }
            },
            "blogimages.E011",
        ),
        ({"BLOGIMAGES_DEFAULT_PROVIDER": "dalle"}, "blogimages.E012"),
        ({"BLOGIMAGES_QUEUE": "images"}, "blogimages.E020"),
        ({"RQ_QUEUES": {"default": {"URL": "redis://127.0.0.1:6379/0"}}}, "blogimages.W021"),
        ({"BLOGIMAGES_STORAGE": "images"}, "blogimages.E030"),
        ({"BLOGIMAGES_WEBHOOK_BASE_URL": "blog.example.com"}, "blogimages.E042"),
        (
            {"BLOGIMAGES_WEBHOOK_BASE_URL": "https://blog.example.com", "ROOT_URLCONF": "tests.urls_no_api"},
            "blogimages.E042",
        ),
    ],
)
def test_misconfiguration_is_reported(settings, overrides, expected):
    for name, value in overrides.items():
        setattr(settings, name, value)
    assert expected in ids()


def messages(check_id):
    return [message for message in run_checks(tags=["blogimages"]) if message.id == check_id]


@pytest.mark.parametrize("media_root", ["", "."], ids=["unset", "dot"])
def test_storage_writing_into_the_working_directory_is_e031(settings, monkeypatch, tmp_path, media_root):
    monkeypatch.chdir(tmp_path)
    settings.MEDIA_ROOT = media_root
    [error] = messages("blogimages.E031")
    assert "MEDIA_ROOT" in error.msg and "current working directory" in error.msg and str(tmp_path) in error.msg
    assert 'MEDIA_ROOT = BASE_DIR / "media"' in error.hint


def test_storage_in_a_folder_on_sys_path_is_e031(settings, monkeypatch, tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(code))
    settings.MEDIA_ROOT = code
    [error] = messages("blogimages.E031")
    assert "a folder on sys.path" in error.msg and "'blogimages' folder" in error.msg
    settings.MEDIA_ROOT = code / "media"
    assert messages("blogimages.E031") == []


def test_relative_storage_location_is_w032_naming_the_setting(settings, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    settings.MEDIA_ROOT = "media"
    [warning] = messages("blogimages.W032")
    assert warning.msg.startswith("MEDIA_ROOT = 'media'") and str(tmp_path / "media") in warning.msg
    settings.BLOGIMAGES_STORAGE = "images"
    settings.STORAGES = {
        **settings.STORAGES,
        "images": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": "var/img"}},
    }
    settings.MEDIA_ROOT = tmp_path / "media"
    [warning] = messages("blogimages.W032")
    assert warning.msg.startswith("STORAGES['images']['OPTIONS']['location'] = 'var/img'")


@pytest.mark.parametrize(
    "config",
    [
        {"BACKEND": "django.core.files.storage.InMemoryStorage"},
        {"BACKEND": "no.such.Storage"},
        {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"colour": "red"}},
        {"OPTIONS": {}},
    ],
    ids=["other", "unimportable", "bad-option", "no-backend"],
)
def test_storage_location_check_skips_other_and_unusable_backends(settings, monkeypatch, tmp_path, config):
    monkeypatch.chdir(tmp_path)
    settings.MEDIA_ROOT = ""
    settings.STORAGES = {**settings.STORAGES, "default": config}
    assert not {"blogimages.E031", "blogimages.W032"} & set(ids())


S3 = {"bucket_name": "b", "access_key": "k", "secret_key": "s", "region_name": "us-east-1"}


def test_s3_storage_without_bounded_timeouts_is_w033(settings):
    from botocore.config import Config

    settings.STORAGES = {**settings.STORAGES, "default": {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": S3}}
    assert "blogimages.W033" in ids()
    bounded = Config(connect_timeout=3, read_timeout=10, retries={"mode": "standard", "total_max_attempts": 2})
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": {**S3, "client_config": bounded}},
    }
    assert "blogimages.W033" not in ids()


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
    del settings.BLOGIMAGES_SECTION_MODEL
    errors = [e for e in check_settings() if e.id == "blogimages.E001"]
    assert [e.msg for e in errors] == ["BLOGIMAGES_SECTION_MODEL = None does not name an installed model."]
    assert "BLOGIMAGES_HOST_ADAPTER" in errors[0].hint


def test_host_models_are_only_required_by_the_rows_adapter(settings):
    del settings.BLOGIMAGES_POST_MODEL
    del settings.BLOGIMAGES_SECTION_MODEL
    settings.BLOGIMAGES_HOST_ADAPTER = "blogimages.contrib.wagtail.adapter.WagtailPageAdapter"
    assert [e.id for e in check_settings() if e.id.startswith("blogimages.E00")] == []


def test_bad_host_adapter_is_e004(settings):
    settings.BLOGIMAGES_HOST_ADAPTER = "blogimages.nowhere.Adapter"
    errors = [e for e in check_settings() if e.id == "blogimages.E004"]
    assert len(errors) == 1 and "cannot be imported" in errors[0].msg


OPENAI = "blogimages.providers.openai.OpenAIImagesProvider"


def test_a_default_model_openai_shut_down_is_w040(settings):
    settings.BLOGIMAGES_PROVIDERS = {
        **settings.BLOGIMAGES_PROVIDERS,
        "openai": {"BACKEND": OPENAI, "OPTIONS": {"api_key": "sk-test", "model": "gpt-image-1.5"}},
    }
    [warning] = messages("blogimages.W040")
    assert warning.msg.startswith(
        "gpt-image-1.5 (used by BLOGIMAGES_PROVIDERS['openai'] as its default model) was shut down by OpenAI on "
        "2026-12-01; requests for it are refused: use gpt-image-2.6-sunburst or gpt-image-2.6-flare instead"
    )
    settings.BLOGIMAGES_OPENAI_MODEL_REPLACEMENTS = {"gpt-image-1.5": "gpt-image-2.6-flare"}
    assert "its requests go to gpt-image-2.6-flare" in messages("blogimages.W040")[0].msg


def test_a_replacement_that_leads_nowhere_is_e041(settings):
    settings.BLOGIMAGES_PROVIDERS = {**settings.BLOGIMAGES_PROVIDERS, "openai": {"BACKEND": OPENAI}}
    settings.BLOGIMAGES_OPENAI_MODEL_REPLACEMENTS = {"gpt-image-1.5": "dall-e-3"}
    [error] = messages("blogimages.E041")
    assert error.msg == (
        "BLOGIMAGES_OPENAI_MODEL_REPLACEMENTS sends 'gpt-image-1.5' to 'dall-e-3', which is itself retired "
        "(on 2026-05-12)."
    )
    settings.BLOGIMAGES_OPENAI_MODEL_REPLACEMENTS = {"gpt-image-1.5": "gpt-image-2.6-flare"}
    assert messages("blogimages.E041") == []


def test_a_public_webhook_address_with_the_urls_included_is_clean(settings):
    settings.BLOGIMAGES_WEBHOOK_BASE_URL = "https://blog.example.com"
    assert messages("blogimages.E042") == []


def test_comfyui_waits_longer_than_the_job_timeout_are_w045(settings):
    comfyui = {"BACKEND": "blogimages.providers.comfyui.ComfyUIProvider", "OPTIONS": {"urls": ["http://gpu:8188"]}}
    settings.BLOGIMAGES_PROVIDERS = {"comfyui": comfyui}
    settings.BLOGIMAGES_DEFAULT_PROVIDER = "comfyui"
    assert messages("blogimages.W045") == []  # the default queue_timeout takes what is left
    comfyui["OPTIONS"] = {**comfyui["OPTIONS"], "queue_timeout": 600}
    settings.BLOGIMAGES_PROVIDERS = {"comfyui": comfyui}
    (warning,) = messages("blogimages.W045")
    assert "is 1210 s, more than BLOGIMAGES_JOB_TIMEOUT (900 s)" in warning.msg


def test_an_open_rq_dashboard_is_w046(settings):
    """django_rq.urls included bare: any staff user may delete jobs there (test_rq_dashboard)."""
    assert messages("blogimages.W046") == []  # the example project guards both places
    settings.ROOT_URLCONF = "tests.urls_bare_rq"
    (warning,) = messages("blogimages.W046")
    assert warning.msg.startswith("django-rq's job dashboard (URLconf) lets any staff user delete or requeue")
