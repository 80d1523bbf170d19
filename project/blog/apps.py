from django.apps import AppConfig


class BlogConfig(AppConfig):
    name = "project.blog"
    label = "blog"
    verbose_name = "Blog (example)"
    default_auto_field = "django.db.models.BigAutoField"
