"""Approved images of a page's sections, as Wagtail images for ``{% image %}``::

    {% load wagtailimages_tags blogimages_wagtail %}
    {% approved_images page as images %}
    {% for block in page.body %}
      {% include_block block %}
      {% with img=images|image_for:block %}
        {% if img %}{% image img width-960 %}{% endif %}
      {% endwith %}
    {% endfor %}

A tag never breaks a page: if the lookup fails it logs why and gives no image.
"""

from __future__ import annotations

import logging
from typing import Any

from django import template

from ..models import PublishedImage

register = template.Library()
logger = logging.getLogger("blogimages.wagtail")


def approved_images_for(page: Any) -> dict[str, Any]:
    """``{section key (block id): Wagtail image}`` of the page's approved images, in one query."""
    if page is None or getattr(page, "pk", None) is None:
        return {}
    links = PublishedImage.objects.for_page(page).approved().select_related("image")
    return {link.section_key: link.image for link in links}


@register.simple_tag
def approved_images(page: Any) -> dict[str, Any]:
    """``{% approved_images page as images %}``: all of the page's approved images, one query."""
    try:
        return approved_images_for(page)
    except Exception:  # noqa: BLE001 - a tag never breaks a page
        logger.exception("Could not load the approved images of page %r", getattr(page, "pk", page))
        return {}


@register.filter
def image_for(images: dict[str, Any] | None, block: Any) -> Any:
    """``images|image_for:block``: the approved Wagtail image of a StreamField block, or ``None``."""
    block_id = getattr(block, "id", None) or (block if isinstance(block, str) else None)
    if not images or not block_id:
        return None
    return images.get(str(block_id))


@register.simple_tag
def approved_image(page: Any, block: Any) -> Any:
    """``{% approved_image page block as img %}``: one block's approved image (one query; in a
    loop, prefer ``approved_images`` with ``image_for``)."""
    block_id = getattr(block, "id", None) or (block if isinstance(block, str) else None)
    if page is None or not block_id:
        return None
    try:
        link = (
            PublishedImage.objects.for_page(page)
            .approved()
            .filter(section_key=str(block_id))
            .select_related("image")
            .first()
        )
    except Exception:  # noqa: BLE001 - a tag never breaks a page
        logger.exception("Could not load the approved image of block %s", block_id)
        return None
    return link.image if link else None
