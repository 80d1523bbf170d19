"""The "Section image" plugin: editors add it after a section in the structure board (or
approval places it in the draft); it renders the section's approved django-filer image
with responsive sources, and in edit mode the section's candidates.

django CMS imports this module itself (``cms_plugins`` discovery).
"""

from __future__ import annotations

import logging
from typing import Any

from cms.plugin_base import CMSPluginBase
from cms.plugin_pool import plugin_pool
from django import forms
from django.utils.translation import gettext_lazy as _

from ...models import ImageGenerationResult
from .conf import djangocms_settings
from .models import PublishedImage, SectionImage
from .sections import bodies, text_rows, title_and_text

logger = logging.getLogger("blogimages.djangocms")
CANDIDATES_SHOWN = 6


def section_choices(placeholder: Any, language: str) -> list[tuple[str, str]]:
    rows = text_rows([placeholder.pk], language).get(placeholder.pk, []) if placeholder is not None else []
    html = bodies(rows)
    return [(row.key, title_and_text(html.get(row.pk, ""))[0] or row.key) for row in rows]


def key_before(plugin: SectionImage, position: int | None = None) -> str:
    """The key of the nearest section before ``plugin`` in its placeholder ("" if none)."""
    position = plugin.position if position is None else position
    rows = text_rows([plugin.placeholder_id], plugin.language).get(plugin.placeholder_id, [])
    before = [row for row in rows if row.position < position]
    return before[-1].key if before else ""


def responsive(image: Any, sizes: str) -> dict[str, Any]:
    """``src``, ``srcset`` and dimensions of a filer image, renditions through easy-thumbnails."""
    from easy_thumbnails.files import get_thumbnailer

    width, height = int(image.width or 0), int(image.height or 0)
    sources = []
    thumbnailer = get_thumbnailer(image)
    for target in sorted(set(djangocms_settings.WIDTHS)):
        if width and target >= width:
            break
        options = {"size": (target, 0), "crop": False, "upscale": False}
        if getattr(image, "subject_location", None):
            options["subject_location"] = image.subject_location
        thumb = thumbnailer.get_thumbnail(options)
        sources.append(f"{thumb.url} {thumb.width}w")
    sources.append(f"{image.url} {width}w" if width else image.url)
    return {"src": image.url, "srcset": ", ".join(sources), "sizes": sizes, "width": width, "height": height}


@plugin_pool.register_plugin
class SectionImagePlugin(CMSPluginBase):
    model = SectionImage
    name = _("Section image")
    module = _("Blog images")
    render_template = "blogimages_djangocms/section_image.html"
    allow_children = False
    text_enabled = False
    fields = ["section_key", "sizes"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        from cms.models import Placeholder

        if obj is not None:
            placeholder, language = obj.placeholder, obj.language
        else:
            initial = getattr(self, "_cms_initial_attributes", {}) or {}
            placeholder, language = initial.get("placeholder"), initial.get("language")
            if placeholder is not None and not isinstance(placeholder, Placeholder):
                placeholder = Placeholder.objects.filter(pk=placeholder).first()
        if placeholder is not None and language and "section_key" in form.base_fields:
            choices = [("", _("The text just before this image")), *section_choices(placeholder, language)]
            current = getattr(obj, "section_key", "")
            if current and current not in dict(choices):
                choices.append((current, _("%(key)s (not in this version)") % {"key": current}))
            field = form.base_fields["section_key"]
            form.base_fields["section_key"] = forms.ChoiceField(
                label=field.label, help_text=field.help_text, required=False, choices=choices
            )
        return form

    def save_model(self, request, obj, form, change):
        if not obj.section_key and obj.placeholder_id:
            # Remember the section now: the image stays with it when either is moved.
            obj.section_key = key_before(obj)
        super().save_model(request, obj, form, change)

    def render(self, context, instance, placeholder):
        context = super().render(context, instance, placeholder)
        request = context.get("request")
        toolbar = getattr(request, "toolbar", None)
        edit_mode = bool(toolbar and (toolbar.edit_mode_active or getattr(toolbar, "structure_mode_active", False)))
        values: dict[str, Any] = {
            "edit_mode": edit_mode,
            "image": None,
            "candidates": [],
            "review_url": "",
            "section_key": "",
        }
        try:
            self._fill(values, instance, request, edit_mode)
        except Exception:  # noqa: BLE001 - a plugin never breaks a page
            logger.exception("Could not render the section image plugin #%s", instance.pk)
            values["image"] = None
        context.update(values)
        return context

    def _fill(self, context: dict[str, Any], instance, request, edit_mode: bool) -> None:
        from ... import services
        from ...hosts import get_host
        from .views import review_url

        # ``render()``'s placeholder argument is the slot name; the plugin knows its placeholder.
        post = get_host().post_for(instance.placeholder)
        key = instance.section_key or key_before(instance)
        context["section_key"] = key
        if post is None or not key:
            return
        link = PublishedImage.objects.for_post(post).approved().filter(section_key=key).select_related("image").first()
        if link is not None and link.image.file:
            image = link.image
            context["image"] = image
            context["alt"] = image.default_alt_text or ""
            context["caption"] = image.default_caption or ""
            context.update(responsive(image, instance.sizes or djangocms_settings.SIZES))
        if edit_mode and request is not None and services.can(request.user, "view", post):
            results = (
                ImageGenerationResult.objects.for_post(post)
                .filter(review__section_key=key)
                .order_by("-created_at", "-id")[:CANDIDATES_SHOWN]
            )
            context["candidates"] = [{"result": r, "thumb": r.thumbnail.url if r.thumbnail else ""} for r in results]
            context["review_url"] = review_url(post) + f"#bi-section-{key}"
