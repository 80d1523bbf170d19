"""The example Wagtail site: a blog page whose "section" blocks get generated images."""

from __future__ import annotations

from django.db import models
from wagtail import blocks
from wagtail.admin.panels import FieldPanel
from wagtail.fields import StreamField
from wagtail.images.blocks import ImageChooserBlock
from wagtail.models import Page


class SectionBlock(blocks.StructBlock):
    heading = blocks.CharBlock(max_length=200)
    text = blocks.RichTextBlock(features=["bold", "italic", "link"])

    class Meta:
        icon = "doc-full"
        template = "wagtailblog/blocks/section.html"


class BlogPage(Page):
    intro = models.TextField(blank=True)
    body = StreamField(
        [
            ("section", SectionBlock()),
            ("image", ImageChooserBlock(template="wagtailblog/blocks/image.html")),
        ],
        blank=True,
    )

    content_panels = [*Page.content_panels, FieldPanel("intro"), FieldPanel("body")]
    template = "wagtailblog/blog_page.html"
