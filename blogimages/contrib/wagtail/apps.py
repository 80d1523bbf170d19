from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class BlogImagesWagtailConfig(AppConfig):
    name = "blogimages.contrib.wagtail"
    label = "blogimages_wagtail"
    verbose_name = _("Blog images for Wagtail")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.core import checks

        from .checks import check_settings

        checks.register(check_settings, "blogimages")
