"""Load the Wagtail demo site: admin user, the blogimages library, a blog page with 4 sections.

Safe to rerun: existing rows are left as they are. Reads the sections and the library
(styles, formats, settings, prompt examples) from ``fixtures/demo.json`` (project.demo_content),
so both demos show the same post.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand
from django.db import transaction

from project import demo_content
from project.demo_content import PASSWORD, SLUG, USERNAME


class Command(BaseCommand):
    help = "Create the Wagtail demo's admin user, library and blog page (idempotent)."

    def handle(self, *args, **options):
        from wagtail.models import Site

        from project.wagtailblog.models import BlogPage

        data = demo_content.load()
        with transaction.atomic():
            user = demo_content.admin_and_library(data)

            site = Site.objects.get(is_default_site=True)
            if site.site_name != "blogimages demo":
                site.site_name = "blogimages demo"
                site.save(update_fields=["site_name"])
            page = BlogPage.objects.filter(slug=SLUG).first()
            if page is None:
                post, sections = demo_content.post_and_sections(data)
                page = BlogPage(
                    title=post["title"],
                    slug=SLUG,
                    intro=post.get("intro", ""),
                    body=[("section", {"heading": f["heading"], "text": f"<p>{f['body']}</p>"}) for f in sections],
                )
                site.root_page.add_child(instance=page)
                page.save_revision(user=user).publish(user=user)
                self.stdout.write(f"Created the blog page “{page.title}” with {len(sections)} sections.")
            demo_content.attach_prompt_example(page)
        self.stdout.write(self.style.SUCCESS(f"Demo site ready: {page.url} (log in as {USERNAME} / {PASSWORD})."))
