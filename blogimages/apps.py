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
        from .providers import clear_on_setting_change
        from .storage import reset_on_setting_change

        checks.register(blogimages_checks.check_settings, "blogimages")
        setting_changed.connect(clear_on_setting_change, dispatch_uid="blogimages.providers.clear")
        setting_changed.connect(reset_on_setting_change, dispatch_uid="blogimages.storage.reset")
