"""``{% load blogimages %}`` then ``{% blogimage section images=images %}``.

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

from ..rendering import approved_image_or_problem

register = template.Library()


def _debug_comment(section, problem: str) -> str:
    if not (settings.DEBUG and problem):
        return ""
    # "--" would end the comment early; the text is ours but file names are not.
    return format_html("<!-- blogimage for section {}: {} -->", section.pk, problem.replace("--", "- -"))


@register.simple_tag
def blogimage(section, images=None, css_class="blogimage", sizes="100vw"):
    """An ``<img>`` of the section's approved image, with srcset, size, alt text and lazy loading."""
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
    return format_html("<img {}>", format_html_join(" ", '{}="{}"', attrs))
