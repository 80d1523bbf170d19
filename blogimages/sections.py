"""How blogimages reaches into the host's blog models, by the names in settings."""

from __future__ import annotations

from django.apps import apps

from .conf import app_settings


def post_model():
    return apps.get_model(app_settings.POST_MODEL)


def section_model():
    return apps.get_model(app_settings.SECTION_MODEL)


def sections_of(post):
    """The post's sections in the section model's own ordering."""
    return section_model()._default_manager.filter(**{app_settings.SECTION_POST_FIELD: post})


def post_id_of(section) -> int:
    return getattr(section, f"{app_settings.SECTION_POST_FIELD}_id")


def section_text(section) -> str:
    return str(getattr(section, app_settings.SECTION_TEXT_FIELD) or "").strip()


def section_title(section) -> str:
    field = app_settings.SECTION_TITLE_FIELD
    return str(getattr(section, field) or "") if field else str(section)
