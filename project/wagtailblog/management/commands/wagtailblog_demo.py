"""Load the Wagtail demo site: admin user, the blogimages library, a blog page with 4 sections.

Safe to rerun: existing rows are left as they are. Reads the sections and the library
(styles, formats, settings, prompt examples) from ``fixtures/demo.json``, so both demos
show the same post.
"""

from __future__ import annotations

import json
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core import serializers
from django.core.management.base import BaseCommand
from django.db import transaction

FIXTURE = Path(__file__).resolve().parents[4] / "fixtures" / "demo.json"
LIBRARY = {
    "blogimages.imagestyle",
    "blogimages.imageformat",
    "blogimages.imagesetting",
    "blogimages.imagepromptexample",
}
USERNAME, PASSWORD = "admin", "blogimages-demo"
SLUG = "cornish-coast"


class Command(BaseCommand):
    help = "Create the Wagtail demo's admin user, library and blog page (idempotent)."

    def handle(self, *args, **options):
        from wagtail.models import Site

        from blogimages.hosts import post_reference
        from blogimages.models import ImagePromptExample, PostImageSettings
        from project.wagtailblog.models import BlogPage

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

            site = Site.objects.get(is_default_site=True)
            if site.site_name != "blogimages demo":
                site.site_name = "blogimages demo"
                site.save(update_fields=["site_name"])
            page = BlogPage.objects.filter(slug=SLUG).first()
            if page is None:
                post = next(row for row in data if row["model"] == "blog.post")
                sections = sorted(
                    (row["fields"] for row in data if row["model"] == "blog.section"), key=lambda f: f["position"]
                )
                page = BlogPage(
                    title=post["fields"]["title"],
                    slug=SLUG,
                    intro=post["fields"].get("intro", ""),
                    body=[("section", {"heading": f["heading"], "text": f"<p>{f['body']}</p>"}) for f in sections],
                )
                site.root_page.add_child(instance=page)
                page.save_revision(user=user).publish(user=user)
                self.stdout.write(f"Created the blog page “{page.title}” with {len(sections)} sections.")
            example = ImagePromptExample.objects.order_by("pk").first()
            if example is not None:
                post_type, post_id = post_reference(page)
                PostImageSettings.objects.get_or_create(
                    post_type=post_type, post_id=post_id, defaults={"prompt_example": example}
                )
        self.stdout.write(self.style.SUCCESS(f"Demo site ready: {page.url} (log in as {USERNAME} / {PASSWORD})."))
