from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class BlogImagesDjangoCMSConfig(AppConfig):
    name = "blogimages.contrib.djangocms"
    label = "blogimages_djangocms"
    verbose_name = _("Blog images for django CMS")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.core import checks

        from .checks import check_settings

        checks.register(check_settings, "blogimages")
