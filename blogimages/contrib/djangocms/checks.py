"""System checks for the django CMS integration's settings, ids ``blogimages_djangocms.E0xx``."""

from __future__ import annotations

from django.apps import apps
from django.core import checks

from .conf import CONTENT_KEYS, ON_UNAPPROVE_CHOICES, ContentConfig, djangocms_settings

EXAMPLE = '{"djangocms_stories.PostContent": {"placeholder": "content"}}'
ADAPTER = "blogimages.contrib.djangocms.adapter.DjangoCMSAdapter"
REQUIRED_APPS = ("cms", "filer", "easy_thumbnails")


def check_settings(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    errors: list[checks.CheckMessage] = []
    missing = [app for app in REQUIRED_APPS if not apps.is_installed(app)]
    if missing:
        errors.append(
            checks.Error(
                f"blogimages.contrib.djangocms needs {', '.join(missing)} in INSTALLED_APPS.",
                hint='pip install "blogimages[djangocms]" and add "cms", "filer" and "easy_thumbnails".',
                id="blogimages_djangocms.E006",
            )
        )
    content = djangocms_settings.CONTENT
    if not isinstance(content, dict):
        return [
            *errors,
            checks.Error(
                "BLOGIMAGES_DJANGOCMS_CONTENT must be a dict of content model labels to their section settings.",
                hint=f"BLOGIMAGES_DJANGOCMS_CONTENT = {EXAMPLE}",
                id="blogimages_djangocms.E001",
            ),
        ]
    for label, entry in content.items():
        errors += _check_content(label, entry)
    text_plugins = djangocms_settings.TEXT_PLUGINS
    if not text_plugins or not all(isinstance(name, str) and name for name in text_plugins):
        errors.append(
            checks.Error(
                f"BLOGIMAGES_DJANGOCMS_TEXT_PLUGINS = {text_plugins!r} names no plugin types.",
                hint='BLOGIMAGES_DJANGOCMS_TEXT_PLUGINS = ["TextPlugin"]',
                id="blogimages_djangocms.E004",
            )
        )
    if djangocms_settings.ON_UNAPPROVE not in ON_UNAPPROVE_CHOICES:
        errors.append(
            checks.Error(
                f"BLOGIMAGES_DJANGOCMS_ON_UNAPPROVE = {djangocms_settings.ON_UNAPPROVE!r} is neither 'keep' nor "
                "'delete'.",
                hint='BLOGIMAGES_DJANGOCMS_ON_UNAPPROVE = "keep"  # or "delete"',
                id="blogimages_djangocms.E005",
            )
        )
    if djangocms_settings.INSERT_PLUGIN and not apps.is_installed("djangocms_versioning"):
        errors.append(
            checks.Warning(
                "BLOGIMAGES_DJANGOCMS_INSERT_PLUGIN is on, but without djangocms-versioning there is no draft "
                "to place section image plugins in, so none are placed.",
                hint="Install djangocms-versioning, or set BLOGIMAGES_DJANGOCMS_INSERT_PLUGIN = False and add "
                'the "Section image" plugin by hand.',
                id="blogimages_djangocms.W002",
            )
        )
    errors += _check_adapter(content)
    return errors


def _check_content(label, entry) -> list[checks.CheckMessage]:
    config = ContentConfig.from_setting(str(label), entry)
    model = config.model
    if model is None or "placeholders" not in {f.name for f in model._meta.private_fields}:
        return [
            checks.Error(
                f"BLOGIMAGES_DJANGOCMS_CONTENT names {label!r}, which is not an installed model with a "
                "PlaceholderRelationField.",
                hint=f"Use the content model's 'app_label.ModelName', e.g. {EXAMPLE}",
                id="blogimages_djangocms.E001",
            )
        ]
    if not isinstance(entry, dict) or set(entry) - set(CONTENT_KEYS):
        unknown = sorted(set(entry) - set(CONTENT_KEYS)) if isinstance(entry, dict) else entry
        return [
            checks.Error(
                f"BLOGIMAGES_DJANGOCMS_CONTENT[{label!r}] has unknown keys: {unknown!r}.",
                hint=f"Its keys are {', '.join(CONTENT_KEYS)}, e.g. {EXAMPLE}",
                id="blogimages_djangocms.E003",
            )
        ]
    if config.grouper_model is None:
        return [
            checks.Error(
                f"{label} has no grouper field blogimages can find (the post the versions belong to).",
                hint=f'Name it: BLOGIMAGES_DJANGOCMS_CONTENT[{label!r}]["grouper"] = "post"',
                id="blogimages_djangocms.E002",
            )
        ]
    return []


def _check_adapter(content: dict) -> list[checks.CheckMessage]:
    from ...conf import app_settings

    if app_settings.HOST_ADAPTER == ADAPTER:
        return []
    try:
        from ...hosts import get_host
        from .adapter import DjangoCMSAdapter

        if isinstance(get_host(), DjangoCMSAdapter):
            return []
    except Exception:  # noqa: BLE001 - blogimages.E004 reports a bad adapter path
        return []
    return [
        checks.Warning(
            "blogimages.contrib.djangocms is installed but BLOGIMAGES_HOST_ADAPTER is not the django CMS adapter, "
            "so posts and pages have no sections.",
            hint=f'BLOGIMAGES_HOST_ADAPTER = "{ADAPTER}"',
            id="blogimages_djangocms.W001",
        )
    ]
