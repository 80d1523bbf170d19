"""How blogimages reaches the host's content: one adapter, named in ``BLOGIMAGES_HOST_ADAPTER``.

The core never touches a host's models directly: it asks the adapter for a post's
sections, for a section by its key, for the post's admin URL and for permissions, and
tells it when an image is approved or un-approved. See :class:`HostAdapter` for the
protocol; :class:`ModelSectionsAdapter` (sections as rows) is the default and
``blogimages.contrib.wagtail`` ships one for Wagtail pages.
"""

from __future__ import annotations

from functools import cache

from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from ..conf import app_settings
from .base import HostAdapter, Section, post_reference
from .rows import ModelSectionsAdapter

__all__ = ["HostAdapter", "ModelSectionsAdapter", "Section", "get_host", "post_reference"]


@cache
def _load(path: str) -> HostAdapter:
    try:
        adapter_class = import_string(path)
    except ImportError as exc:
        raise ImproperlyConfigured(f"BLOGIMAGES_HOST_ADAPTER = {path!r} cannot be imported: {exc}") from exc
    if not (isinstance(adapter_class, type) and issubclass(adapter_class, HostAdapter)):
        raise ImproperlyConfigured(
            f"BLOGIMAGES_HOST_ADAPTER = {path!r} is not a subclass of blogimages.hosts.HostAdapter."
        )
    return adapter_class()


def get_host() -> HostAdapter:
    """The configured host adapter (one instance per dotted path)."""
    return _load(app_settings.HOST_ADAPTER)


def clear_on_setting_change(*, setting: str, **kwargs) -> None:
    if setting.startswith("BLOGIMAGES_") or setting in {"INSTALLED_APPS"}:
        _load.cache_clear()
