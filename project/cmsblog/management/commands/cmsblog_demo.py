"""Load the django CMS demo site: admin user, the blogimages library, a home page, a blog
page (djangocms-stories apphook) and a published post with 4 text sections.

Safe to rerun: existing rows are left as they are. Reads the sections and the library
(styles, formats, settings, prompt examples) from ``fixtures/demo.json``
(project.demo_content), so every demo shows the same post.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from project import demo_content
from project.demo_content import PASSWORD, SLUG, USERNAME

NAMESPACE = "blog"
TEMPLATE = "cmsblog/page.html"
LANGUAGE = "en"


def publish(content, user) -> None:
    """Publish a content's draft (djangocms-versioning); without versioning it is live already."""
    from django.apps import apps

    if not apps.is_installed("djangocms_versioning"):
        return
    from djangocms_versioning.constants import DRAFT
    from djangocms_versioning.models import Version

    version = Version.objects.get_for_content(content)
    if version.state == DRAFT:
        version.publish(user)


def create_page(title: str, user, *, slug: str, parent=None, **kwargs):
    from cms.api import create_page as cms_create_page

    page = cms_create_page(
        title, TEMPLATE, LANGUAGE, slug=slug, parent=parent, created_by=user, in_navigation=True, **kwargs
    )
    publish(page.get_admin_content(LANGUAGE), user)
    return page


def section_html(heading: str, body: str) -> str:
    return f"<h2>{heading}</h2><p>{body}</p>"


class Command(BaseCommand):
    help = "Create the django CMS demo's admin user, library, pages and blog post (idempotent)."

    @staticmethod
    def apphook_url(content) -> str:
        """The post's URL once this process has loaded the blog page's apphook (a server does
        that on its first request)."""
        import importlib
        import sys

        from cms.appresolver import clear_app_resolvers
        from django.conf import settings
        from django.urls import clear_url_caches

        clear_app_resolvers()
        clear_url_caches()
        for module in ("cms.urls", settings.ROOT_URLCONF):
            if module in sys.modules:
                importlib.reload(sys.modules[module])
        return content.get_absolute_url(LANGUAGE)

    def handle(self, *args, **options):
        from cms.api import add_plugin
        from cms.models import Page
        from cms.utils.placeholder import get_placeholder_from_slot
        from djangocms_stories.cms_appconfig import StoriesConfig, config_defaults
        from djangocms_stories.models import Post, PostContent

        data = demo_content.load()
        with transaction.atomic():
            user = demo_content.admin_and_library(data)

            config = StoriesConfig.objects.filter(namespace=NAMESPACE).first()
            if config is None:
                config = StoriesConfig(
                    **{**config_defaults, "namespace": NAMESPACE, "use_placeholder": True, "url_patterns": "slug"}
                )
                config.set_current_language(LANGUAGE)
                config.app_title = "Blog"
                config.object_name = "Post"
                config.save()
            if not Page.objects.exists():
                home = create_page("Home", user, slug="home")
                home.set_as_homepage(user)
                create_page("Blog", user, slug="blog", parent=home, apphook="StoriesApp", apphook_namespace=NAMESPACE)
                self.stdout.write("Created the home page and the blog page.")

            content = PostContent.admin_manager.filter(slug=SLUG).first()
            if content is None:
                post_fields, sections = demo_content.post_and_sections(data)
                post = Post.objects.create(
                    app_config=config, author=user, date_published=timezone.now(), enable_comments=False
                )
                content = PostContent.objects.with_user(user).create(
                    post=post,
                    language=LANGUAGE,
                    title=post_fields["title"],
                    slug=SLUG,
                    abstract=f"<p>{post_fields.get('intro', '')}</p>",
                )
                placeholder = get_placeholder_from_slot(content.placeholders, "content")
                for fields in sections:
                    add_plugin(
                        placeholder, "TextPlugin", LANGUAGE, body=section_html(fields["heading"], fields["body"])
                    )
                publish(content, user)
                self.stdout.write(f"Created the post “{content.title}” with {len(sections)} text sections.")
            demo_content.attach_prompt_example(content.post)
        url = content.get_absolute_url(LANGUAGE) or self.apphook_url(content)
        self.stdout.write(self.style.SUCCESS(f"Demo site ready: {url} (log in as {USERNAME} / {PASSWORD})."))
