"""The Wagtail image of an approved result has the readable file name public pages use."""

from __future__ import annotations

import io

import PIL.Image
import pytest
from wagtail.images import get_image_model

from blogimages.hosts import get_host

Image = get_image_model()


@pytest.fixture
def section(make_page):
    page = make_page(sections=2, title="Cornish Coast: St Ives")
    return get_host().sections(page)[1]


def test_the_wagtail_image_file_has_the_readable_name(section, make_result, approve):
    result = make_result(section)
    approve(result)
    result.refresh_from_db()
    assert result.published_image == "blogimages/published/cornish-coast-st-ives-section-2.png"
    image = Image.objects.get(blogimages_source__result=result)
    assert image.file.name == "original_images/cornish-coast-st-ives-section-2.png"
    assert image.title == "Section 2 – Cornish Coast: St Ives"
    with image.file.open("rb") as handle, result.image.open("rb") as original:
        assert PIL.Image.open(handle).convert("RGB").tobytes() == PIL.Image.open(original).convert("RGB").tobytes()


def test_a_file_wagtail_storage_holds_is_not_replaced(section, make_result, approve):
    storage = Image._meta.get_field("file").storage
    storage.save("original_images/cornish-coast-st-ives-section-2.png", io.BytesIO(b"another image"))
    result = make_result(section)
    approve(result)
    image = Image.objects.get(blogimages_source__result=result)
    assert image.file.name == "original_images/cornish-coast-st-ives-section-2-2.png"
    with storage.open("original_images/cornish-coast-st-ives-section-2.png") as handle:
        assert handle.read() == b"another image"


def test_a_replacement_gets_its_own_name(section, make_result, approve):
    first, second = make_result(section), make_result(section, colour=(0, 0, 255))
    approve(first)
    approve(second)
    names = sorted(Image.objects.values_list("file", flat=True))
    assert names == [
        "original_images/cornish-coast-st-ives-section-2-2.png",
        "original_images/cornish-coast-st-ives-section-2.png",
    ]
