from django.apps import AppConfig


class CMSBlogConfig(AppConfig):
    """The django CMS example site: its page template and the demo content command."""

    name = "project.cmsblog"
    label = "cmsblog"
    verbose_name = "django CMS example site"
