from django.apps import AppConfig


class WagtailBlogConfig(AppConfig):
    name = "project.wagtailblog"
    label = "wagtailblog"
    verbose_name = "Wagtail blog (example)"
    default_auto_field = "django.db.models.BigAutoField"
