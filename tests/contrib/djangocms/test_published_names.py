"""The filer image of an approved result has the readable file name public pages use."""

from __future__ import annotations

import posixpath

import PIL.Image
from filer.models import Image

from blogimages.hosts import get_host


def test_the_filer_image_has_the_readable_name(make_post, make_result, approve, cms_admin):
    post = make_post(sections=2, title="Cornish Coast: St Ives")
    section = get_host().sections(post)[1]
    result = make_result(section)
    approve(result, user=cms_admin)
    result.refresh_from_db()
    assert result.published_image == "blogimages/published/cornish-coast-st-ives-section-2.png"
    image = Image.objects.get()
    assert image.original_filename == "cornish-coast-st-ives-section-2.png"
    assert posixpath.basename(image.file.name) == "cornish-coast-st-ives-section-2.png"
    assert image.name == "Section 2 – Cornish Coast: St Ives"
    with image.file.open("rb") as handle, result.image.open("rb") as original:
        assert PIL.Image.open(handle).convert("RGB").tobytes() == PIL.Image.open(original).convert("RGB").tobytes()


def test_a_replacement_gets_its_own_name(make_post, make_result, approve, cms_admin):
    post = make_post(sections=1, title="Cornish Coast: St Ives")
    [section] = get_host().sections(post)
    first, second = make_result(section), make_result(section)
    approve(first, user=cms_admin)
    approve(second, user=cms_admin)
    assert sorted(Image.objects.values_list("original_filename", flat=True)) == [
        "cornish-coast-st-ives-section-1-2.png",
        "cornish-coast-st-ives-section-1.png",
    ]
