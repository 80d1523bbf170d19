"""``{% load blogimages %}`` then ``{% blogimage section %}``.

Pass the dict from :func:`blogimages.rendering.approved_images_for_post` as
``images=`` to render a whole post in one query. A section without an approved image
renders nothing; a broken file never breaks the page.
"""

from __future__ import annotations

from django import template
from django.utils.html import format_html

from ..rendering import approved_image_for_section

register = template.Library()


@register.simple_tag
def blogimage(section, images=None, css_class="blogimage", sizes="100vw"):
    if section is None:
        return ""
    if images is not None:
        image = images.get(section.pk)
    else:
        image = approved_image_for_section(section)
    if image is None:
        return ""
    return format_html(
        '<img src="{}" width="{}" height="{}" alt="{}" loading="lazy" decoding="async" class="{}" sizes="{}">',
        image.url, image.width or "", image.height or "", image.alt, css_class, sizes,
    )
