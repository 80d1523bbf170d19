from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class BlogImagesConfig(AppConfig):
    name = "blogimages"
    verbose_name = _("Blog images")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.core import checks
        from django.core.signals import setting_changed

        from . import checks as blogimages_checks
        from .hosts import clear_on_setting_change as clear_host
        from .providers import clear_on_setting_change
        from .storage import reset_on_setting_change

        checks.register(blogimages_checks.check_settings, "blogimages")
        checks.register(blogimages_checks.check_openai_model_uses, checks.Tags.database)
        self._import_provider_backends()
        setting_changed.connect(clear_on_setting_change, dispatch_uid="blogimages.providers.clear")
        setting_changed.connect(reset_on_setting_change, dispatch_uid="blogimages.storage.reset")
        setting_changed.connect(clear_host, dispatch_uid="blogimages.hosts.clear")

    @staticmethod
    def _import_provider_backends() -> None:
        # Import (not instantiate) configured providers once, so forked RQ work-horses start
        # warm instead of paying ~50 ms per job; a bad path is reported by check E011.
        from django.utils.module_loading import import_string

        from .conf import app_settings

        for config in app_settings.PROVIDERS.values():
            try:
                import_string(config.get("BACKEND", ""))
            except (ImportError, ValueError, TypeError, AttributeError):
                continue
