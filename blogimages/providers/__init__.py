"""Provider registry, configured like Django's ``STORAGES``.

``providers["comfyui"]`` returns the configured instance for that alias; instances are
cached and the cache is cleared when ``BLOGIMAGES_PROVIDERS`` changes (tests use
``override_settings``).
"""

from __future__ import annotations

import threading

from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from ..conf import app_settings
from .base import BaseProvider, GeneratedImage, GenerationRequest, Lora, ProgressReporter, ProviderHealth

__all__ = [
    "BaseProvider",
    "GeneratedImage",
    "GenerationRequest",
    "Lora",
    "ProgressReporter",
    "ProviderHealth",
    "providers",
    "UnknownProvider",
]


class UnknownProvider(ImproperlyConfigured):
    pass


class ProviderHandler:
    def __init__(self) -> None:
        self._instances: dict[str, BaseProvider] = {}
        self._lock = threading.Lock()

    @property
    def aliases(self) -> list[str]:
        return list(app_settings.PROVIDERS)

    def __contains__(self, alias: str) -> bool:
        return alias in app_settings.PROVIDERS

    def __getitem__(self, alias: str) -> BaseProvider:
        with self._lock:
            if alias not in self._instances:
                self._instances[alias] = self.create(alias)
            return self._instances[alias]

    def create(self, alias: str) -> BaseProvider:
        config = app_settings.PROVIDERS.get(alias)
        if config is None:
            raise UnknownProvider(
                f"No provider {alias!r}; BLOGIMAGES_PROVIDERS defines {', '.join(self.aliases) or 'none'}."
            )
        backend = config.get("BACKEND")
        if not backend:
            raise ImproperlyConfigured(f"BLOGIMAGES_PROVIDERS[{alias!r}] has no 'BACKEND'.")
        try:
            cls = import_string(backend)
        except ImportError as exc:
            raise ImproperlyConfigured(f"BLOGIMAGES_PROVIDERS[{alias!r}]: cannot import {backend!r} ({exc}).") from exc
        return cls(alias, **config.get("OPTIONS", {}))

    def clear(self) -> None:
        with self._lock:
            self._instances.clear()


providers = ProviderHandler()


def clear_on_setting_change(*, setting: str, **kwargs: object) -> None:
    """Connected to ``setting_changed`` in ``AppConfig.ready()``."""
    if setting.startswith("BLOGIMAGES_") or setting in {"OPENAI_API_KEY", "COMFYUI_URLS"}:
        providers.clear()
