"""``{% load blogimages %}`` then ``{% blogimage section images=images %}``.

An AI-generated image can carry a visible caption: ``label=True`` shows
``BLOGIMAGES_AI_LABEL`` (or "AI-generated image" when that is empty), ``label="..."`` the
given text, ``label=False`` none; without ``label``, ``BLOGIMAGES_AI_LABEL`` decides (off
by default). With a caption the ``<img>`` is wrapped in ``<figure class="blogimage-figure">``
and the caption is a ``<figcaption class="blogimage-ai-label">``; uploads never get one.

Pass the dict from :func:`blogimages.rendering.approved_images_for_post` as ``images=``
to render a whole post in a constant number of queries (without it, each tag costs a
query). A section without an approved image renders nothing; a missing file or a
storage outage renders nothing either (an HTML comment saying why when ``DEBUG``), and
is logged by ``blogimages.rendering``.
"""

from __future__ import annotations

from django import template
from django.conf import settings
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _

from ..conf import app_settings
from ..rendering import approved_image_or_problem

DEFAULT_AI_LABEL = _("AI-generated image")

register = template.Library()


def _debug_comment(section, problem: str) -> str:
    if not (settings.DEBUG and problem):
        return ""
    # "--" would end the comment early; the text is ours but file names are not.
    return format_html("<!-- blogimage for section {}: {} -->", section.pk, problem.replace("--", "- -"))


@register.simple_tag
def blogimage(section, images=None, css_class="blogimage", sizes="100vw", label=None):
    """An ``<img>`` of the section's approved image, with srcset, size, alt text and lazy
    loading; for an AI-generated image, with a visible caption when ``label`` asks for one."""
    if section is None:
        return ""
    if images is not None:
        key = str(getattr(section, "key", None) or section.pk)
        image = images.get(key)
        problem = getattr(images, "problems", {}).get(key, "")
    else:
        image, problem = approved_image_or_problem(section)
    if image is None:
        return _debug_comment(section, problem)
    attrs = [("src", image.url)]
    if image.sources:
        attrs += [("srcset", image.srcset), ("sizes", sizes)]
    if image.width and image.height:
        attrs += [("width", image.width), ("height", image.height)]
    attrs += [("alt", image.alt), ("loading", "lazy"), ("decoding", "async"), ("class", css_class)]
    img = format_html("<img {}>", format_html_join(" ", '{}="{}"', attrs))
    caption = _ai_label(label) if getattr(image, "ai_generated", False) else ""
    if not caption:
        return img
    return format_html(
        '<figure class="blogimage-figure">{}<figcaption class="blogimage-ai-label">{}</figcaption></figure>',
        img,
        caption,
    )


def _ai_label(label) -> str:
    """The caption text ``label`` asks for: ``None`` defers to ``BLOGIMAGES_AI_LABEL``."""
    if label is None:
        return app_settings.AI_LABEL
    if label is True:
        return app_settings.AI_LABEL or str(DEFAULT_AI_LABEL)
    return str(label) if label else ""
