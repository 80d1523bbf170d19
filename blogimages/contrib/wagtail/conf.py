"""Settings of the Wagtail integration, each read at call time so ``override_settings`` works.

``BLOGIMAGES_WAGTAIL_PAGES`` names, per page model, the StreamField and the block types
that are sections::

    BLOGIMAGES_WAGTAIL_PAGES = {
        "blog.BlogPage": {
            "field": "body",          # the StreamField (default "body")
            "blocks": ["section"],    # block types that are sections (required)
            "title": "heading",       # StructBlock child holding the section title (optional)
            "text": ["text"],         # StructBlock children making the prompt (default: all but the title)
            "image_block": "image",   # ImageChooserBlock inserted after the section on approve (default None)
        },
    }
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings

#: The keys a page model's entry in ``BLOGIMAGES_WAGTAIL_PAGES`` may have.
PAGE_KEYS = ("field", "blocks", "title", "text", "image_block")
ON_UNAPPROVE_CHOICES = ("keep", "delete")
#: Tag on every Wagtail image made from a generated (not an uploaded) result.
AI_TAG = "ai-generated"


@dataclass(frozen=True)
class PageConfig:
    """One page model's entry in ``BLOGIMAGES_WAGTAIL_PAGES``, with defaults filled in."""

    label: str
    field: str = "body"
    blocks: tuple[str, ...] = ()
    title: str | None = None
    text: tuple[str, ...] | None = None
    image_block: str | None = None

    @classmethod
    def from_setting(cls, label: str, entry: dict[str, Any]) -> PageConfig:
        text = entry.get("text")
        if isinstance(text, str):
            text = (text,)
        blocks = entry.get("blocks") or ()
        if isinstance(blocks, str):
            blocks = (blocks,)
        return cls(
            label=label,
            field=entry.get("field") or "body",
            blocks=tuple(blocks),
            title=entry.get("title") or None,
            text=tuple(text) if text is not None else None,
            image_block=entry.get("image_block") or None,
        )


class WagtailSettings:
    prefix = "BLOGIMAGES_WAGTAIL_"

    def _setting(self, name: str, default: Any) -> Any:
        return getattr(settings, self.prefix + name, default)

    @property
    def PAGES(self) -> dict[str, dict[str, Any]]:
        """``{"app_label.PageModel": {"field", "blocks", "title", "text", "image_block"}}``: which
        StreamField blocks of which page models are sections (see the module docstring)."""
        return self._setting("PAGES", {})

    @property
    def COLLECTION(self) -> str:
        """Name of the Wagtail collection approved images go to; created under the root when missing."""
        return self._setting("COLLECTION", "Generated images")

    @property
    def ON_UNAPPROVE(self) -> str:
        """What happens to the Wagtail image when its result stops being approved (rejected or
        replaced): ``"keep"`` (default; it stays in the image library) or ``"delete"``."""
        return self._setting("ON_UNAPPROVE", "keep")

    def page_config(self, model: Any) -> PageConfig | None:
        """The configuration for a page model (or page), or ``None`` if it has no sections."""
        label = model._meta.label_lower
        for key, entry in self.PAGES.items():
            if isinstance(key, str) and key.lower() == label and isinstance(entry, dict):
                return PageConfig.from_setting(key, entry)
        return None


wagtail_settings = WagtailSettings()
