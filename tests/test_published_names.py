"""Approved images under readable names (blogimages.naming): made from the post's and the
section's titles, unique, never overwriting (also on S3, which overwrites by default, over
HTTP to moto), candidates under their random keys until approved."""

from __future__ import annotations

import io
import re
from html import unescape

import pytest
from django.core.management import call_command
from django.db import connection
from PIL import Image

from blogimages import naming, renditions, services
from blogimages.models import ImageGenerationResult, ResultStatus, ReviewStatus, SectionReview
from blogimages.storage import get_storage, save_bytes
from tests.test_double_requests import in_threads

pytestmark = pytest.mark.django_db

PUBLISHED = "blogimages/published"
IMG = re.compile(r"<img [^>]*>")
RANDOM_KEY = re.compile(r"^blogimages/images/\d{4}/\d{2}/[0-9a-f]{32}\.\w+$")

postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="concurrent claims need row locks; SQLite serialises writers"
)


def image_bytes(width=1200, height=800, colour=(40, 90, 160), fmt="PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, format=fmt)
    return buffer.getvalue()


def read(name: str) -> bytes:
    with get_storage().open(name, "rb") as handle:
        return handle.read()


def pixels(name: str) -> bytes:
    """The picture in a stored file (a published copy carries its own metadata)."""
    with Image.open(io.BytesIO(read(name))) as image:
        return image.convert("RGB").tobytes()


def candidate(section, *, colour=(40, 90, 160), fmt="PNG", content_type="image/png", width=1200, height=800):
    """A finished result for a section, stored under a random key, not approved."""
    data = image_bytes(width, height, colour, fmt)
    return ImageGenerationResult.objects.create(
        review=services.review_for(section),
        prompt="The mount at low tide",
        final_prompt="The mount at low tide",
        provider="placeholder",
        provider_used="placeholder",
        status=ResultStatus.SUCCEEDED,
        progress=100,
        image=save_bytes(data, content_type),
        thumbnail=save_bytes(image_bytes(32, 24, colour, "WEBP"), "image/webp", kind="thumbnails"),
        width=width,
        height=height,
        content_type=content_type,
    )


def approved(section, approve, **kwargs) -> ImageGenerationResult:
    result = candidate(section, **kwargs)
    approve(result)
    result.refresh_from_db()
    return result


@pytest.fixture
def cornwall(make_post):
    """A post "Cornish Coast" whose first section is "St Michael's Mount"."""

    def make(title="Cornish Coast", heading="St Michael’s Mount", slug="cornish-coast"):
        post = make_post(sections=2, title=title, slug=slug)
        section = post.sections.order_by("position").first()
        section.heading = heading
        section.save()
        return post, section

    return make


def page_tag(client, post) -> str:
    response = client.get(post.get_absolute_url())
    assert response.status_code == 200
    (tag,) = IMG.findall(response.content.decode())
    return tag


def attr(tag: str, name: str) -> str:
    return unescape(re.search(rf'\s{name}="([^"]*)"', tag).group(1))


# --- the name -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("post", "section", "expected"),
    [
        ("Cornish Coast", "St Michael's Mount", "cornish-coast-st-michaels-mount"),
        ("Crème brûlée à Paris", "Straße, Øresund & Łódź", "creme-brulee-a-paris-strasse-oresund-lodz"),
        ("  Hello, World!!! ", "(Part 2) — the *end*?", "hello-world-part-2-the-end"),
        ("Snake_case <b>tags</b>", "Ünïcödé", "snake-case-tags-unicode"),
        ("東京の夜", "Shibuya crossing", "shibuya-crossing"),
        ("東京の夜", "渋谷", "image"),
    ],
)
def test_slug_from_the_titles(post, section, expected):
    assert naming.readable_slug(post, section, "") == expected


def test_section_without_a_usable_title_uses_its_key():
    assert naming.readable_slug("Cornish Coast", "", "17") == "cornish-coast-17"
    assert naming.readable_slug("Cornish Coast", "★★★", "intro") == "cornish-coast-intro"


def test_very_long_titles_are_cut_between_words_and_keep_the_section():
    post = "The extraordinarily long and winding story of a very small harbour town " * 3
    section = "Fishermen mending their nets beneath the old granite harbour wall at sunrise"
    slug = naming.readable_slug(post, section)
    assert len(slug) <= naming.SLUG_MAX
    # The section keeps its share (whole words), the post's title takes the rest.
    assert slug == "the-extraordinarily-long-and-winding-fishermen-mending-their-nets-beneath-the"
    assert "--" not in slug and not slug.endswith("-")
    assert all(word in (post + " " + section).lower().split() for word in slug.split("-"))


def test_a_slug_that_looks_like_a_rendition_is_numbered():
    assert list(naming.candidates("harbour-640w"))[:2] == ["harbour-640w-2", "harbour-640w-3"]


# --- publishing on approval ----------------------------------------------------------------------


def test_approval_publishes_the_image_under_its_readable_name(cornwall, approve, client):
    post, section = cornwall()
    result = approved(section, approve)
    assert result.published_image == f"{PUBLISHED}/cornish-coast-st-michaels-mount.png"
    assert result.published_slug == "cornish-coast-st-michaels-mount"
    assert pixels(result.published_image) == pixels(result.image.name)
    assert RANDOM_KEY.match(result.image.name)  # the original keeps its key (the review page's)
    tag = page_tag(client, post)
    assert attr(tag, "src") == "/media/blogimages/published/cornish-coast-st-michaels-mount.png"


def test_the_extension_is_the_real_format(cornwall, approve):
    _post, section = cornwall()
    # A WebP file that was stored as a PNG (a provider that says one thing and sends another).
    result = approved(section, approve, fmt="WEBP", content_type="image/png")
    assert result.image.name.endswith(".png")
    assert result.published_image == f"{PUBLISHED}/cornish-coast-st-michaels-mount.webp"


def test_candidates_keep_their_random_keys(cornwall, approve, client, admin_user):
    post, section = cornwall()
    first, second = candidate(section), candidate(section, colour=(200, 0, 0))
    assert not first.published_image and not second.published_image
    assert not get_storage().exists(PUBLISHED)
    approve(first)
    second.refresh_from_db()
    assert second.published_image == "" and second.published_slug is None
    assert RANDOM_KEY.match(second.image.name)
    client.force_login(admin_user)
    review_page = client.get(f"/admin/blog/post/{post.pk}/images/").content.decode()
    assert get_storage().url(second.image.name) in review_page
    assert "/published/" not in review_page
    api = client.get(f"/api/v1/images/results/{second.pk}").json()
    assert api["published_url"] is None and api["image_url"].endswith(second.image.name)
    first.refresh_from_db()
    assert (
        client.get(f"/api/v1/images/results/{first.pk}")
        .json()["published_url"]
        .endswith("/media/blogimages/published/cornish-coast-st-michaels-mount.png")
    )


def test_a_file_already_under_the_name_is_not_overwritten(cornwall, approve):
    _post, section = cornwall()
    storage = get_storage()
    foreign = f"{PUBLISHED}/cornish-coast-st-michaels-mount.png"
    storage.save(foreign, io.BytesIO(b"someone else's file"))
    result = approved(section, approve)
    assert result.published_image == f"{PUBLISHED}/cornish-coast-st-michaels-mount-2.png"
    assert read(foreign) == b"someone else's file"


def test_two_sections_with_the_same_titles_get_two_names(cornwall, approve):
    _post, section = cornwall()
    _other_post, other_section = cornwall(slug="cornish-coast-again")
    first = approved(section, approve, colour=(255, 0, 0))
    second = approved(other_section, approve, colour=(0, 255, 0))
    assert first.published_image == f"{PUBLISHED}/cornish-coast-st-michaels-mount.png"
    assert second.published_image == f"{PUBLISHED}/cornish-coast-st-michaels-mount-2.png"
    assert pixels(first.published_image) == pixels(first.image.name) != pixels(second.published_image)


def test_the_database_claim_decides_before_the_file_exists(cornwall, approve):
    """A concurrent publish that claimed the slug (its file not written yet) keeps it."""
    _post, section = cornwall()
    _other_post, other_section = cornwall(slug="cornish-coast-again")
    other = candidate(other_section)
    ImageGenerationResult.objects.filter(pk=other.pk).update(
        published_slug="cornish-coast-st-michaels-mount",
        published_image=f"{PUBLISHED}/cornish-coast-st-michaels-mount.png",
    )
    assert not get_storage().exists(f"{PUBLISHED}/cornish-coast-st-michaels-mount.png")
    result = approved(section, approve)
    assert result.published_image == f"{PUBLISHED}/cornish-coast-st-michaels-mount-2.png"
    assert not get_storage().exists(f"{PUBLISHED}/cornish-coast-st-michaels-mount.png")


@pytest.mark.django_db(transaction=True)
@postgres_only
def test_concurrent_publishes_of_the_same_name_never_collide(cornwall):
    sections = [cornwall(slug=f"cornish-coast-{i}")[1] for i in range(6)]
    results = [candidate(section, colour=(40 * i, 0, 0), width=64, height=48) for i, section in enumerate(sections)]
    for result in results:  # approved before names were published: no hook ran
        SectionReview.objects.filter(pk=result.review_id).update(status=ReviewStatus.APPROVED, approved_result=result)
    names = in_threads(len(results), lambda i: naming.publish(results[i]))
    assert sorted(names) == sorted(
        f"{PUBLISHED}/cornish-coast-st-michaels-mount{suffix}.png" for suffix in ["", "-2", "-3", "-4", "-5", "-6"]
    )
    for result in results:
        result.refresh_from_db()
        assert pixels(result.published_image) == pixels(result.image.name)  # each file is its own image


def test_replacing_an_approval_keeps_the_old_file_and_never_reuses_its_name(cornwall, approve, client):
    post, section = cornwall()
    first = approved(section, approve, colour=(255, 0, 0))
    second = approved(section, approve, colour=(0, 0, 255))
    assert second.published_image == f"{PUBLISHED}/cornish-coast-st-michaels-mount-2.png"
    assert pixels(first.published_image) == pixels(first.image.name)  # still there, still the first image
    assert attr(page_tag(client, post), "src").endswith("/cornish-coast-st-michaels-mount-2.png")
    approve(first)  # back to the first: its own name again, no new file
    first.refresh_from_db()
    assert first.published_image == f"{PUBLISHED}/cornish-coast-st-michaels-mount.png"
    assert attr(page_tag(client, post), "src").endswith("/cornish-coast-st-michaels-mount.png")
    assert sorted(get_storage().listdir(PUBLISHED)[1]) == [
        "cornish-coast-st-michaels-mount-2.png",
        "cornish-coast-st-michaels-mount.png",
    ]


def test_a_rejected_approval_keeps_its_file(cornwall, approve, reject):
    _post, section = cornwall()
    result = approved(section, approve)
    reject(section, comment="Wrong season")
    result.refresh_from_db()
    assert result.published_image and pixels(result.published_image) == pixels(result.image.name)


def test_cleanup_keeps_published_files(cornwall, approve):
    _post, section = cornwall()
    result = approved(section, approve)
    call_command("blogimages_cleanup", "--delete", "--min-age", "0", stdout=io.StringIO())
    assert get_storage().exists(result.published_image)


# --- renditions ------------------------------------------------------------------------------------


def test_renditions_of_a_published_image_are_readable_too(cornwall, approve, client):
    post, section = cornwall()
    result = approved(section, approve)
    made = renditions.make_renditions(result.pk)
    assert made == {
        "480": f"{PUBLISHED}/cornish-coast-st-michaels-mount-480w.webp",
        "960": f"{PUBLISHED}/cornish-coast-st-michaels-mount-960w.webp",
    }
    with get_storage().open(made["480"]) as handle, Image.open(handle) as image:
        assert (image.format, image.width) == ("WEBP", 480)
    assert attr(page_tag(client, post), "srcset") == (
        "/media/blogimages/published/cornish-coast-st-michaels-mount-480w.webp 480w, "
        "/media/blogimages/published/cornish-coast-st-michaels-mount-960w.webp 960w, "
        "/media/blogimages/published/cornish-coast-st-michaels-mount.png 1200w"
    )


def test_renditions_made_before_publishing_are_renamed(cornwall, django_capture_on_commit_callbacks):
    _post, section = cornwall()
    result = candidate(section)
    early = renditions.make_renditions(result.pk)  # under random keys
    assert all(name.startswith("blogimages/renditions/") for name in early.values())
    services.approve(result)  # approved before names were published: the hook did not run
    with django_capture_on_commit_callbacks(execute=True):
        call_command("blogimages_publish_names", stdout=io.StringIO())
    result.refresh_from_db()
    assert result.renditions == {
        "480": f"{PUBLISHED}/cornish-coast-st-michaels-mount-480w.webp",
        "960": f"{PUBLISHED}/cornish-coast-st-michaels-mount-960w.webp",
    }
    assert read(result.renditions["480"])
    assert not any(get_storage().exists(name) for name in early.values())  # the old copies went


# --- images approved before names were published ---------------------------------------------------


def test_the_command_publishes_earlier_approvals(cornwall, client):
    post, section = cornwall()
    result = candidate(section)
    services.approve(result)  # its after-commit hook never runs here: as before this change
    result.refresh_from_db()
    assert not result.published_image
    assert attr(page_tag(client, post), "src") == f"/media/{result.image.name}"  # served as before
    out = io.StringIO()
    call_command("blogimages_publish_names", "--dry-run", stdout=out)
    assert "would be published as cornish-coast-st-michaels-mount" in out.getvalue()
    assert not get_storage().exists(PUBLISHED)
    call_command("blogimages_publish_names", stdout=out)
    call_command("blogimages_publish_names", stdout=out)  # safe to rerun
    result.refresh_from_db()
    assert result.published_image == f"{PUBLISHED}/cornish-coast-st-michaels-mount.png"
    assert get_storage().listdir(PUBLISHED)[1] == ["cornish-coast-st-michaels-mount.png"]
    assert attr(page_tag(client, post), "src") == f"/media/{result.published_image}"


# --- S3 ---------------------------------------------------------------------------------------------


def test_s3_never_overwrites_a_published_name(cornwall, approve, s3_storage):
    client, bucket = s3_storage
    storage = get_storage()
    assert storage.file_overwrite  # django-storages' default: save() replaces what is there
    foreign = f"{PUBLISHED}/cornish-coast-st-michaels-mount.png"
    client.put_object(Bucket=bucket, Key=foreign, Body=b"not ours")
    _post, section = cornwall()
    _other_post, other_section = cornwall(slug="cornish-coast-again")
    first = approved(section, approve, colour=(255, 0, 0))
    second = approved(other_section, approve, colour=(0, 255, 0))
    assert first.published_image == f"{PUBLISHED}/cornish-coast-st-michaels-mount-2.png"
    assert second.published_image == f"{PUBLISHED}/cornish-coast-st-michaels-mount-3.png"
    assert client.get_object(Bucket=bucket, Key=foreign)["Body"].read() == b"not ours"
    for result in (first, second):
        assert client.head_object(Bucket=bucket, Key=result.published_image)["ContentLength"] > 0
        assert pixels(result.published_image) == pixels(result.image.name)
