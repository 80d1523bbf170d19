"""Load the django CMS demo site: admin user, the blogimages library, a home page, a blog
page (djangocms-stories apphook) and a published post with 4 text sections.

Safe to rerun: existing rows are left as they are. Reads the sections and the library
(styles, formats, settings, prompt examples) from ``fixtures/demo.json``, so every demo
shows the same post.
"""

from __future__ import annotations

import json
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core import serializers
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

FIXTURE = Path(__file__).resolve().parents[4] / "fixtures" / "demo.json"
LIBRARY = {
    "blogimages.imagestyle",
    "blogimages.imageformat",
    "blogimages.imagesetting",
    "blogimages.imagepromptexample",
}
USERNAME, PASSWORD = "admin", "blogimages-demo"
SLUG = "cornish-coast"
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

        from blogimages.hosts import post_reference
        from blogimages.models import ImagePromptExample, PostImageSettings

        data = json.loads(FIXTURE.read_text())
        with transaction.atomic():
            user, created = get_user_model().objects.get_or_create(
                username=USERNAME, defaults={"email": "admin@example.com", "is_staff": True, "is_superuser": True}
            )
            if created:
                user.set_password(PASSWORD)
                user.save()
            library = [row for row in data if row["model"] in LIBRARY]
            for obj in serializers.deserialize("json", json.dumps(library)):
                if not type(obj.object)._default_manager.filter(pk=obj.object.pk).exists():
                    obj.save()

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
                post_row = next(row for row in data if row["model"] == "blog.post")
                sections = sorted(
                    (row["fields"] for row in data if row["model"] == "blog.section"), key=lambda f: f["position"]
                )
                post = Post.objects.create(
                    app_config=config, author=user, date_published=timezone.now(), enable_comments=False
                )
                content = PostContent.objects.with_user(user).create(
                    post=post,
                    language=LANGUAGE,
                    title=post_row["fields"]["title"],
                    slug=SLUG,
                    abstract=f"<p>{post_row['fields'].get('intro', '')}</p>",
                )
                placeholder = get_placeholder_from_slot(content.placeholders, "content")
                for fields in sections:
                    add_plugin(
                        placeholder, "TextPlugin", LANGUAGE, body=section_html(fields["heading"], fields["body"])
                    )
                publish(content, user)
                self.stdout.write(f"Created the post “{content.title}” with {len(sections)} text sections.")
            example = ImagePromptExample.objects.order_by("pk").first()
            if example is not None:
                post_type, post_id = post_reference(content.post)
                PostImageSettings.objects.get_or_create(
                    post_type=post_type, post_id=post_id, defaults={"prompt_example": example}
                )
        url = content.get_absolute_url(LANGUAGE) or self.apphook_url(content)
        self.stdout.write(self.style.SUCCESS(f"Demo site ready: {url} (log in as {USERNAME} / {PASSWORD})."))
