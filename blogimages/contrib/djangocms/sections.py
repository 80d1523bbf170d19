"""Reading a post's sections from django CMS: the text plugins of a content's placeholder.

**Section keys survive djangocms-versioning.** Each new version (a draft made from the
published one, a revert) is a copy of the content with its plugins copied by
``cms.utils.plugins.copy_plugins_to_placeholder``: every plugin gets a new primary key and,
after ``_recalculate_plugin_positions``, possibly a new position, but it is a
``deepcopy`` of the source, so its ``creation_date`` is carried over to the microsecond.
A section's key is therefore ``"<language>-<creation_date in µs since the epoch>"``: the
same text plugin has the same key in every version, wherever it is moved to, and the
review, its images and its history follow it.

Limits, documented in the README: a plugin copied and pasted within the same content
keeps its source's creation date, so the two share a stamp; the first one in the
placeholder keeps the key and the copy gets ``"-2"`` (if the copy is moved above the
original, they swap). Sections in different languages are different sections. A text
plugin deleted and typed again is a new section.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.utils.text import Truncator

from ...text import plain_text
from .conf import ContentConfig, djangocms_settings

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_HEADING = re.compile(r"^\s*<h([1-6])[^>]*>(.*?)</h\1>", re.IGNORECASE | re.DOTALL)
TITLE_WORDS = 8


def stamp(creation_date: datetime) -> int:
    """``creation_date`` as whole microseconds since the epoch (exact, no float rounding)."""
    if creation_date.tzinfo is None:
        creation_date = creation_date.replace(tzinfo=UTC)
    return (creation_date - EPOCH) // timedelta(microseconds=1)


def key_language(key: str) -> str:
    """The language a section key belongs to (the part before its first "-" stamp)."""
    match = re.match(r"^(.+?)-\d+(?:-\d+)?$", str(key))
    return match.group(1) if match else ""


def title_and_text(html: str) -> tuple[str, str]:
    """A section's title and prompt text from a text plugin's HTML: a leading heading is the
    title and the rest the text; without one, the first words of the text are the title."""
    match = _HEADING.match(html or "")
    if match:
        title = plain_text(match.group(2))
        text = plain_text(html[match.end() :])
        return title, text or title
    text = plain_text(html)
    first = text.split("\n", 1)[0]
    return Truncator(first).words(TITLE_WORDS, truncate="…"), text


@dataclass
class TextRow:
    """A section plugin as the placeholder holds it (base ``CMSPlugin`` fields only)."""

    pk: int
    plugin_type: str
    position: int
    parent_id: int | None
    creation_date: datetime
    key: str = ""


def text_rows(placeholder_ids: Iterable[int], language: str) -> dict[int, list[TextRow]]:
    """``{placeholder id: [section rows in document order, keyed]}`` in one query.

    Text plugins nested in another text plugin (inline links and the like) are part of
    their parent, not sections of their own.
    """
    from cms.models import CMSPlugin

    types = set(djangocms_settings.TEXT_PLUGINS)
    rows = (
        CMSPlugin.objects.filter(placeholder_id__in=list(placeholder_ids), language=language)
        .order_by("placeholder_id", "position", "pk")
        .values_list("pk", "placeholder_id", "plugin_type", "position", "parent_id", "creation_date")
    )
    type_of: dict[int, str] = {}
    found: dict[int, list[TextRow]] = {}
    for pk, placeholder_id, plugin_type, position, parent_id, created in rows:
        type_of[pk] = plugin_type
        found.setdefault(placeholder_id, [])
        if plugin_type in types and type_of.get(parent_id) not in types:
            found[placeholder_id].append(TextRow(pk, plugin_type, position, parent_id, created))
    for section_rows in found.values():
        assign_keys(section_rows, language)
    return found


def assign_keys(rows: list[TextRow], language: str) -> None:
    seen: dict[int, int] = {}
    for row in rows:
        value = stamp(row.creation_date)
        seen[value] = seen.get(value, 0) + 1
        row.key = f"{language}-{value}" + (f"-{seen[value]}" if seen[value] > 1 else "")


# --- contents of a post -------------------------------------------------------------------------


def content_queryset(config: ContentConfig, *, current: bool = True):
    """The content model's rows an editor works on: with djangocms-versioning the draft, else
    the published version (``current_content()``); ``current=False``: every version."""
    model = config.model
    manager = getattr(model, "admin_manager", None) or model._default_manager
    queryset = manager.get_queryset() if hasattr(manager, "get_queryset") else manager.all()
    if current and hasattr(queryset, "current_content"):
        return queryset.current_content()
    return queryset


def language_order() -> dict[str, int]:
    return {code: index for index, (code, _name) in enumerate(settings.LANGUAGES)}


def contents_of(post: Any, *, language: str | None = None, current: bool = True) -> list[tuple[ContentConfig, Any]]:
    """``[(config, content)]`` of the post: one current content per language, in LANGUAGES order."""
    found = []
    for config in djangocms_settings.configs_for_grouper(type(post)):
        queryset = content_queryset(config, current=current).filter(**{config.grouper_field: post})
        if language:
            queryset = queryset.filter(language=language)
        found += [(config, content) for content in queryset]
    order = language_order()
    found.sort(key=lambda pair: (order.get(getattr(pair[1], "language", ""), 99), pair[1].pk))
    return found


def placeholders_of(contents: list[tuple[ContentConfig, Any]]) -> dict[tuple, Any]:
    """``{(content model, content pk): placeholder}`` of each content's section placeholder,
    one query per content model."""
    from cms.models import Placeholder

    by_model: dict[Any, list[tuple[ContentConfig, Any]]] = {}
    for config, content in contents:
        by_model.setdefault(type(content), []).append((config, content))
    found: dict[tuple, Any] = {}
    for model, pairs in by_model.items():
        slot = pairs[0][0].placeholder
        placeholders = Placeholder.objects.filter(
            content_type=ContentType.objects.get_for_model(model), object_id__in=[c.pk for _cfg, c in pairs], slot=slot
        )
        for placeholder in placeholders:
            found[(model, placeholder.object_id)] = placeholder
    return found


def section_placeholder(content: Any, config: ContentConfig | None = None):
    """The content's section placeholder, created (as the CMS does on first edit) when missing."""
    from cms.utils.placeholder import get_placeholder_from_slot

    config = config or djangocms_settings.config_for_content(type(content))
    return get_placeholder_from_slot(content.placeholders, config.placeholder)


def bodies(rows: Iterable[TextRow]) -> dict[int, str]:
    """``{plugin pk: HTML}`` of text plugins, one query per plugin type."""
    from cms.plugin_pool import plugin_pool

    by_type: dict[str, list[int]] = {}
    for row in rows:
        by_type.setdefault(row.plugin_type, []).append(row.pk)
    found: dict[int, str] = {}
    for plugin_type, pks in by_type.items():
        try:
            model = plugin_pool.get_plugin(plugin_type).model
        except KeyError:
            continue
        for instance in model.objects.filter(pk__in=pks):
            found[instance.pk] = str(getattr(instance, "body", "") or "")
    return found
