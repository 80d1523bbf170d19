"""Settings of the django CMS integration, each read at call time so ``override_settings`` works.

``BLOGIMAGES_DJANGOCMS_CONTENT`` names the content models whose placeholder holds the
sections, and which placeholder (slot) that is::

    BLOGIMAGES_DJANGOCMS_CONTENT = {
        "djangocms_stories.PostContent": {"placeholder": "content"},
        "cms.PageContent": {"placeholder": "content"},
    }

A *post* is the content's grouper (a stories ``Post``, a CMS ``Page``): it keeps its
primary key across djangocms-versioning's versions, so reviews stay attached to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.conf import settings

#: The keys an entry of ``BLOGIMAGES_DJANGOCMS_CONTENT`` may have.
CONTENT_KEYS = ("placeholder", "grouper")
ON_UNAPPROVE_CHOICES = ("keep", "delete")
#: Grouper fields of the content models we know; others come from djangocms-versioning's
#: registration or the entry's "grouper" key.
KNOWN_GROUPERS = {"djangocms_stories.postcontent": "post", "cms.pagecontent": "page"}


@dataclass(frozen=True)
class ContentConfig:
    """One entry of ``BLOGIMAGES_DJANGOCMS_CONTENT``, with defaults filled in."""

    label: str
    placeholder: str = "content"
    grouper: str | None = None

    @classmethod
    def from_setting(cls, label: str, entry: Any) -> ContentConfig:
        entry = entry if isinstance(entry, dict) else {}
        return cls(
            label=label,
            placeholder=entry.get("placeholder") or "content",
            grouper=entry.get("grouper") or KNOWN_GROUPERS.get(label.lower()),
        )

    @property
    def model(self):
        """The content model, or ``None`` if it is not installed (blogimages_djangocms.E001)."""
        try:
            return apps.get_model(self.label)
        except (LookupError, ValueError):
            return None

    @property
    def grouper_field(self) -> str | None:
        if self.grouper:
            return self.grouper
        model = self.model
        if model is not None and apps.is_installed("djangocms_versioning"):
            from djangocms_versioning import versionables

            try:
                return versionables.for_content(model).grouper_field_name
            except KeyError:
                return None
        return None

    @property
    def grouper_model(self):
        model, field = self.model, self.grouper_field
        if model is None or not field:
            return None
        try:
            return model._meta.get_field(field).related_model
        except Exception:  # noqa: BLE001 - blogimages_djangocms.E002 reports it
            return None


class DjangoCMSSettings:
    prefix = "BLOGIMAGES_DJANGOCMS_"

    def _setting(self, name: str, default: Any) -> Any:
        return getattr(settings, self.prefix + name, default)

    @property
    def CONTENT(self) -> dict[str, dict[str, Any]]:
        """``{"app_label.ContentModel": {"placeholder": slot, "grouper": field}}``: whose placeholder
        holds the sections. Default: djangocms-stories' posts (when installed) and CMS pages, slot
        ``"content"``."""
        default: dict[str, dict[str, Any]] = {}
        if apps.is_installed("djangocms_stories"):
            default["djangocms_stories.PostContent"] = {"placeholder": "content"}
        default["cms.PageContent"] = {"placeholder": "content"}
        return self._setting("CONTENT", default)

    @property
    def TEXT_PLUGINS(self) -> list[str]:
        """Plugin types that are sections (default ``["TextPlugin"]``, djangocms-text's)."""
        return list(self._setting("TEXT_PLUGINS", ["TextPlugin"]))

    @property
    def FILER_FOLDER(self) -> str:
        """django-filer folder approved images go to, ``/`` separating levels; created when missing."""
        return self._setting("FILER_FOLDER", "Generated images")

    @property
    def INSERT_PLUGIN(self) -> bool:
        """On approve, put a "Section image" plugin after the section in the draft if it has none
        (a draft is created from the published version when there is none; never published).
        Needs djangocms-versioning; without it nothing is inserted."""
        return bool(self._setting("INSERT_PLUGIN", True))

    @property
    def ON_UNAPPROVE(self) -> str:
        """What happens to the filer image when its result stops being approved (rejected or
        replaced): ``"keep"`` (default; it stays in filer) or ``"delete"``."""
        return self._setting("ON_UNAPPROVE", "keep")

    @property
    def WIDTHS(self) -> list[int]:
        """Widths (pixels) of the easy-thumbnails renditions in the plugin's ``srcset``."""
        return [int(width) for width in self._setting("WIDTHS", [480, 800, 1200, 1600])]

    @property
    def SIZES(self) -> str:
        """The plugin's default ``sizes`` attribute."""
        return self._setting("SIZES", "(max-width: 800px) 100vw, 800px")

    def configs(self) -> list[ContentConfig]:
        entries = self.CONTENT if isinstance(self.CONTENT, dict) else {}
        return [ContentConfig.from_setting(label, entry) for label, entry in entries.items() if isinstance(label, str)]

    def config_for_content(self, model: Any) -> ContentConfig | None:
        label = model._meta.label_lower
        return next((c for c in self.configs() if c.label.lower() == label), None)

    def configs_for_grouper(self, model: Any) -> list[ContentConfig]:
        model = getattr(model, "_meta", None) and model._meta.concrete_model
        return [c for c in self.configs() if c.grouper_model is not None and c.grouper_model is model]


djangocms_settings = DjangoCMSSettings()
