"""System checks for the Wagtail integration's settings, ids ``blogimages_wagtail.E0xx``."""

from __future__ import annotations

from django.apps import apps
from django.core import checks
from django.core.exceptions import FieldDoesNotExist
from wagtail.blocks import StructBlock
from wagtail.fields import StreamField
from wagtail.images.blocks import ImageChooserBlock
from wagtail.models import Page

from .conf import ON_UNAPPROVE_CHOICES, PAGE_KEYS, PageConfig, wagtail_settings

EXAMPLE = '{"blog.BlogPage": {"field": "body", "blocks": ["section"], "title": "heading"}}'
ADAPTER = "blogimages.contrib.wagtail.adapter.WagtailPageAdapter"


def check_settings(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    errors: list[checks.CheckMessage] = []
    pages = wagtail_settings.PAGES
    if not isinstance(pages, dict):
        return [
            checks.Error(
                "BLOGIMAGES_WAGTAIL_PAGES must be a dict of page model labels to their section settings.",
                hint=f"BLOGIMAGES_WAGTAIL_PAGES = {EXAMPLE}",
                id="blogimages_wagtail.E001",
            )
        ]
    for label, entry in pages.items():
        errors += _check_page(label, entry)
    on_unapprove = wagtail_settings.ON_UNAPPROVE
    if on_unapprove not in ON_UNAPPROVE_CHOICES:
        errors.append(
            checks.Error(
                f"BLOGIMAGES_WAGTAIL_ON_UNAPPROVE = {on_unapprove!r} is neither 'keep' nor 'delete'.",
                hint='BLOGIMAGES_WAGTAIL_ON_UNAPPROVE = "keep"  # or "delete"',
                id="blogimages_wagtail.E008",
            )
        )
    errors += _check_adapter(pages)
    return errors


def _check_page(label, entry) -> list[checks.CheckMessage]:
    try:
        model = apps.get_model(label)
    except (LookupError, ValueError, TypeError):
        model = None
    if model is None or not issubclass(model, Page):
        return [
            checks.Error(
                f"BLOGIMAGES_WAGTAIL_PAGES names {label!r}, which is not an installed Wagtail page model.",
                hint=f"Use the page model's 'app_label.ModelName', e.g. {EXAMPLE}",
                id="blogimages_wagtail.E001",
            )
        ]
    if not isinstance(entry, dict) or set(entry) - set(PAGE_KEYS):
        unknown = sorted(set(entry) - set(PAGE_KEYS)) if isinstance(entry, dict) else entry
        return [
            checks.Error(
                f"BLOGIMAGES_WAGTAIL_PAGES[{label!r}] has unknown keys: {unknown!r}.",
                hint=f"Its keys are {', '.join(PAGE_KEYS)}, e.g. {EXAMPLE}",
                id="blogimages_wagtail.E007",
            )
        ]
    config = PageConfig.from_setting(label, entry)
    try:
        field = model._meta.get_field(config.field)
    except FieldDoesNotExist:
        return [
            checks.Error(
                f"{label} has no field {config.field!r} (BLOGIMAGES_WAGTAIL_PAGES[{label!r}]['field']).",
                hint='Name the page\'s StreamField, e.g. "field": "body".',
                id="blogimages_wagtail.E002",
            )
        ]
    if not isinstance(field, StreamField):
        return [
            checks.Error(
                f"{label}.{config.field} is a {type(field).__name__}, not a StreamField.",
                hint='Sections are StreamField blocks; name the page\'s StreamField in "field".',
                id="blogimages_wagtail.E003",
            )
        ]
    child_blocks = field.stream_block.child_blocks
    errors = []
    unknown = [name for name in config.blocks if name not in child_blocks]
    if not config.blocks or unknown:
        errors.append(
            checks.Error(
                f"BLOGIMAGES_WAGTAIL_PAGES[{label!r}]['blocks'] = {list(config.blocks)!r}: "
                + (f"{label}.{config.field} has no block {unknown[0]!r}." if unknown else "no block types named."),
                hint=f"Name section block types among: {', '.join(child_blocks)}.",
                id="blogimages_wagtail.E004",
            )
        )
    for name in config.blocks:
        block = child_blocks.get(name)
        if block is None:
            continue
        children = [config.title] if config.title else []
        children += list(config.text or ())
        if not isinstance(block, StructBlock):
            if config.title or config.text:
                errors.append(
                    checks.Error(
                        f"Block {name!r} of {label}.{config.field} is not a StructBlock, so it has no "
                        f"child blocks for 'title' / 'text'.",
                        hint="Drop 'title' and 'text' (the block's text and first line are used), "
                        "or make the section a StructBlock.",
                        id="blogimages_wagtail.E005",
                    )
                )
            continue
        missing = [child for child in children if child not in block.child_blocks]
        if missing:
            errors.append(
                checks.Error(
                    f"Block {name!r} of {label}.{config.field} has no child block {missing[0]!r}.",
                    hint=f"Its child blocks are: {', '.join(block.child_blocks)}.",
                    id="blogimages_wagtail.E005",
                )
            )
    if config.image_block and not isinstance(child_blocks.get(config.image_block), ImageChooserBlock):
        errors.append(
            checks.Error(
                f"BLOGIMAGES_WAGTAIL_PAGES[{label!r}]['image_block'] = {config.image_block!r} is not an "
                f"ImageChooserBlock of {label}.{config.field}.",
                hint='Name an ImageChooserBlock of the stream, or set "image_block": None to insert no block.',
                id="blogimages_wagtail.E006",
            )
        )
    return errors


def _check_adapter(pages: dict) -> list[checks.CheckMessage]:
    from ...conf import app_settings

    if pages and app_settings.HOST_ADAPTER != ADAPTER:
        # A subclass of the adapter is fine; only warn when another adapter reads the host.
        try:
            from ...hosts import get_host
            from .adapter import WagtailPageAdapter

            if isinstance(get_host(), WagtailPageAdapter):
                return []
        except Exception:  # noqa: BLE001 - blogimages.E004 reports a bad adapter path
            return []
        return [
            checks.Warning(
                "BLOGIMAGES_WAGTAIL_PAGES is set but BLOGIMAGES_HOST_ADAPTER is not the Wagtail adapter, "
                "so pages have no sections.",
                hint=f'BLOGIMAGES_HOST_ADAPTER = "{ADAPTER}"',
                id="blogimages_wagtail.W001",
            )
        ]
    return []
