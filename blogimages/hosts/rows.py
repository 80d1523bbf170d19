"""The default adapter: sections are rows with a foreign key to their post.

Configured by ``BLOGIMAGES_POST_MODEL``, ``BLOGIMAGES_SECTION_MODEL`` and the
``BLOGIMAGES_SECTION_*_FIELD`` settings, as before host adapters existed.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.urls import NoReverseMatch, reverse

from ..chunks import keyset
from ..conf import app_settings
from ..text import plain_text
from .base import HostAdapter, Section


class ModelSectionsAdapter(HostAdapter):
    label = "Django models"

    def post_model(self):
        return apps.get_model(app_settings.POST_MODEL)

    def section_model(self):
        return apps.get_model(app_settings.SECTION_MODEL)

    def find_post(self, object_id):
        model = self.post_model()
        post = None
        if str(object_id).isdigit():
            post = model._default_manager.filter(pk=object_id).first()
        if post is None and any(f.name == "slug" for f in model._meta.get_fields()):
            post = model._default_manager.filter(slug=object_id).first()
        return post

    def posts(self):
        return keyset(self.post_model()._default_manager.all())

    def find_section(self, key):
        try:
            row = self.section_model()._default_manager.filter(pk=key).first()
        except (ValueError, TypeError):
            return None
        return self.section(getattr(row, app_settings.SECTION_POST_FIELD), key) if row is not None else None

    def get_post(self, content_type, object_id):
        if content_type.model_class() is not self.post_model():
            return None
        return super().get_post(content_type, object_id)

    def to_section(self, row: Any, post: Any = None, position: int = 0) -> Section:
        title_field = app_settings.SECTION_TITLE_FIELD
        title = str(getattr(row, title_field) or "") if title_field else str(row)
        if post is None:
            post = getattr(row, app_settings.SECTION_POST_FIELD)
        return Section(
            post=post,
            key=str(row.pk),
            title=plain_text(title),
            text=plain_text(getattr(row, app_settings.SECTION_TEXT_FIELD) or ""),
            position=position,
            obj=row,
        )

    def section_for(self, obj):
        if isinstance(obj, self.section_model()):
            return self.to_section(obj)
        return super().section_for(obj)

    def rows(self, post: Any):
        return self.section_model()._default_manager.filter(**{app_settings.SECTION_POST_FIELD: post})

    def sections(self, post):
        return [self.to_section(row, post, position) for position, row in enumerate(self.rows(post))]

    def section(self, post, key):
        try:
            row = self.rows(post).filter(pk=key).first()
        except (ValueError, TypeError):
            return None
        if row is None:
            return None
        keys = list(self.rows(post).values_list("pk", flat=True))
        return self.to_section(row, post, keys.index(row.pk))

    def post_admin_url(self, post):
        meta = post._meta
        try:
            return reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[post.pk])
        except NoReverseMatch:
            return ""
