"""Public rendering: the template tag, srcset renditions, constant queries, and a page
that survives missing files and storage outages. The S3 test goes over HTTP to moto."""

from __future__ import annotations

import io
import logging
import re
import socket
import urllib.request
from html import unescape

import pytest
from django.core.files.storage import FileSystemStorage
from django.template import Context, Template
from PIL import Image

from blogimages import renditions, services
from blogimages.models import ImageGenerationResult, ResultStatus, SectionReview
from blogimages.rendering import approved_images_for_post
from blogimages.storage import get_storage, save_bytes

pytestmark = pytest.mark.django_db

IMG = re.compile(r"<img [^>]*>")


def attr(tag: str, name: str) -> str:
    match = re.search(rf'\s{name}="([^"]*)"', tag)
    assert match, f"{name} missing in {tag}"
    return unescape(match.group(1))


def png(width: int, height: int, color=(40, 90, 160)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format="PNG")
    return buffer.getvalue()


def approved_result(section, user=None, width=1200, height=800, prompt="A lighthouse at dusk"):
    """A finished result with a stored image, approved through the service layer."""
    name = save_bytes(png(width, height), "image/png")
    result = ImageGenerationResult.objects.create(
        review=services.review_for(section),
        prompt=prompt,
        final_prompt=prompt,
        provider="placeholder",
        provider_used="placeholder",
        status=ResultStatus.SUCCEEDED,
        progress=100,
        image=name,
        width=width,
        height=height,
        params={},
    )
    services.approve(result, user=user)
    result.refresh_from_db()
    return result


def page_images(client, post) -> list[str]:
    response = client.get(post.get_absolute_url())
    assert response.status_code == 200
    return IMG.findall(response.content.decode())


def stored_renditions() -> list[str]:
    storage = get_storage()
    root = "blogimages/renditions"
    found = []

    def walk(path):
        if not storage.exists(path):
            return
        dirs, files = storage.listdir(path)
        found.extend(f"{path}/{f}" for f in files)
        for d in dirs:
            walk(f"{path}/{d}")

    walk(root)
    return sorted(found)


@pytest.fixture
def media(settings, tmp_path):
    """A fresh, empty filesystem storage per test, so file counts mean something."""
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "media"), "base_url": "/media/"},
        },
    }
    return tmp_path / "media"


def test_approved_image_gets_srcset_after_the_worker_makes_renditions(
    client, media, make_post, run_worker, admin_user, django_capture_on_commit_callbacks
):
    post = make_post(sections=2)
    first, second = post.sections.all()
    with django_capture_on_commit_callbacks(execute=True):
        services.generate_for_post(post, user=admin_user)
    assert run_worker() == 2
    result = ImageGenerationResult.objects.get(review__section_key=str(first.pk))
    assert (result.width, result.height) == (1024, 1024)

    with django_capture_on_commit_callbacks(execute=True):
        services.approve(result, user=admin_user)
    # Before the rendition job runs, the page serves the original alone, under its readable name.
    result.refresh_from_db()
    (tag,) = page_images(client, post)
    assert "srcset" not in tag and attr(tag, "src") == get_storage().url(result.published_image)

    assert run_worker() == 1  # the rendition job queued by approve()
    result.refresh_from_db()
    assert set(result.renditions) == {"480", "960"}  # 1600 is wider than the 1024px original
    for width, name in result.renditions.items():
        with get_storage().open(name) as handle, Image.open(handle) as image:
            assert image.format == "WEBP" and image.width == int(width) and image.height == int(width)

    (tag,) = page_images(client, post)  # the second section has no approved image: nothing
    storage = get_storage()
    assert attr(tag, "srcset") == (
        f"{storage.url(result.renditions['480'])} 480w, {storage.url(result.renditions['960'])} 960w, "
        f"{storage.url(result.published_image)} 1024w"
    )
    assert attr(tag, "src") == storage.url(result.published_image)
    assert attr(tag, "width") == "1024" and attr(tag, "height") == "1024"
    assert attr(tag, "loading") == "lazy" and attr(tag, "sizes") == "(min-width: 50rem) 46rem, 100vw"
    assert attr(tag, "alt") == ""  # the prompt is no alt text; only the editor's (test_alt_text_is_editable...)
    assert f'id="section-{second.pk}"' in client.get(post.get_absolute_url()).content.decode()


def test_alt_text_is_editable_and_escaped(client, media, make_post):
    post = make_post(sections=1)
    section = post.sections.get()
    approved_result(section, prompt="A storm over the harbour")
    assert attr(page_images(client, post)[0], "alt") == ""  # not the prompt: no one confirmed it

    SectionReview.objects.for_post(post).filter(section_key=str(section.pk)).update(
        alt_text='Waves "breaking" <over> the pier & wall'
    )
    (tag,) = page_images(client, post)
    assert 'alt="Waves &quot;breaking&quot; &lt;over&gt; the pier &amp; wall"' in tag


def test_uploaded_image_alt_is_not_its_file_name(client, media, make_post):
    from django.core.files.uploadedfile import SimpleUploadedFile

    post = make_post(sections=1)
    section = post.sections.get()
    services.upload(section, SimpleUploadedFile("IMG_0042.png", png(300, 200)), approve_now=True)
    (tag,) = page_images(client, post)
    assert attr(tag, "alt") == ""


def test_section_without_approved_image_renders_nothing(
    client, media, make_post, run_worker, django_capture_on_commit_callbacks
):
    post = make_post(sections=1)
    section = post.sections.get()
    with django_capture_on_commit_callbacks(execute=True):
        (result,) = services.generate_for_section(section)
    run_worker()
    result.refresh_from_db()
    assert result.status == ResultStatus.SUCCEEDED  # finished but never approved
    assert page_images(client, post) == []
    services.approve(result)
    services.reject(section, comment="Wrong mood")
    assert page_images(client, post) == []


def test_tag_without_prefetched_images(media, make_post):
    post = make_post(sections=2)
    first, second = post.sections.all()
    result = approved_result(first)
    template = Template("{% load blogimages %}[{% blogimage first %}][{% blogimage second %}][{% blogimage none %}]")
    html = template.render(Context({"first": first, "second": second, "none": None}))
    tags = IMG.findall(html)
    assert len(tags) == 1 and attr(tags[0], "src") == get_storage().url(result.image.name)
    assert html.endswith("][][]")


def test_only_widths_smaller_than_the_original(media, make_post, settings):
    settings.BLOGIMAGES_RENDITION_WIDTHS = (300, 480, 960)
    post = make_post(sections=2)
    first, second = post.sections.all()
    wide, narrow = approved_result(first, width=700, height=350), approved_result(second, width=300, height=300)

    made = renditions.make_renditions(wide.pk)
    assert set(made) == {"300", "480"}
    with get_storage().open(made["480"]) as handle, Image.open(handle) as image:
        assert image.size == (480, 240)
    assert renditions.make_renditions(narrow.pk) == {}
    assert len(stored_renditions()) == 2


def test_renditions_are_made_once(media, make_post):
    post = make_post(sections=1)
    result = approved_result(post.sections.get())
    first = renditions.make_renditions(result.pk)
    files = stored_renditions()
    assert len(files) == 2
    assert renditions.make_renditions(result.pk) == first
    assert stored_renditions() == files
    result.refresh_from_db()
    assert result.renditions == first


class RacingStorage(FileSystemStorage):
    """A filesystem storage in which, while one call writes its first rendition, a
    second call runs to the end: the interleaving two concurrent workers can produce."""

    race_result_id: int | None = None

    def _save(self, name, content):
        saved = super()._save(name, content)
        if "/renditions/" in name and RacingStorage.race_result_id is not None:
            result_id, RacingStorage.race_result_id = RacingStorage.race_result_id, None
            RacingStorage.winner = renditions.make_renditions(result_id)
        return saved


def test_concurrent_calls_record_one_set_and_leave_no_orphans(settings, tmp_path, make_post):
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "tests.test_rendering.RacingStorage",
            "OPTIONS": {"location": str(tmp_path / "race")},
        },
    }
    post = make_post(sections=1)
    result = approved_result(post.sections.get())
    RacingStorage.race_result_id = result.pk

    loser = renditions.make_renditions(result.pk)

    result.refresh_from_db()
    assert loser == RacingStorage.winner == result.renditions
    assert set(result.renditions) == {"480", "960"}
    # Only the winner's two files remain; the loser deleted the ones it wrote.
    assert stored_renditions() == sorted(result.renditions.values())


def test_missing_file_renders_nothing_and_logs(client, media, make_post, settings, caplog):
    post = make_post(sections=2)
    first, second = post.sections.all()
    gone = approved_result(first)
    kept = approved_result(second)
    get_storage().delete(gone.image.name)

    with caplog.at_level(logging.WARNING, logger="blogimages.rendering"):
        tags = page_images(client, post)
    assert [attr(t, "src") for t in tags] == [get_storage().url(kept.image.name)]
    assert any(gone.image.name in record.getMessage() for record in caplog.records)

    settings.DEBUG = True
    html = client.get(post.get_absolute_url()).content.decode()
    assert f"<!-- blogimage for section {first.pk}: result #{gone.pk}: the file {gone.image.name} is missing" in html


def test_storage_outage_renders_nothing_and_logs(client, media, make_post, settings, caplog):
    from botocore.config import Config

    post = make_post(sections=1)
    approved_result(post.sections.get())
    with socket.socket() as s:  # a port nothing listens on: every S3 call is refused
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": "nowhere",
                "endpoint_url": dead,
                "region_name": "us-east-1",
                "access_key": "x",
                "secret_key": "x",
                "client_config": Config(retries={"max_attempts": 1}, connect_timeout=1),
            },
        },
    }
    with caplog.at_level(logging.ERROR, logger="blogimages.rendering"):
        assert page_images(client, post) == []
    assert any("Could not check image" in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize("sections", [2, 50])
def test_public_page_queries_do_not_grow_with_sections(client, media, make_post, sections, django_assert_num_queries):
    post = make_post(sections=sections, slug=f"post-{sections}")
    for section in post.sections.all():
        approved_result(section, width=640, height=480)
    renditions.make_renditions(ImageGenerationResult.objects.first().pk)
    # The post, its sections, and every approved image in one query.
    with django_assert_num_queries(3):
        tags = page_images(client, post)
    assert len(tags) == sections
    assert sum("srcset" in tag for tag in tags) == 1


def test_prefetch_helper_reports_why_a_section_has_no_image(media, make_post):
    post = make_post(sections=2)
    first, second = post.sections.all()
    ok = approved_result(first)
    broken = approved_result(second)
    ImageGenerationResult.objects.filter(pk=broken.pk).update(image="")
    images = approved_images_for_post(post)
    # Keyed by section key (text); a row's integer pk finds its entry too.
    assert list(images) == [str(first.pk)] and images[first.pk].result_id == ok.pk
    assert images[str(first.pk)] is images[first.pk] and second.pk not in images
    assert images.problems == {str(second.pk): f"result #{broken.pk} has no stored file"}


def test_s3_renditions_are_served_over_http(
    client, s3_storage, make_post, run_worker, admin_user, django_capture_on_commit_callbacks
):
    s3, bucket = s3_storage
    post = make_post(sections=1)
    section = post.sections.get()
    with django_capture_on_commit_callbacks(execute=True):
        (result,) = services.generate_for_section(section, user=admin_user)
    assert run_worker() == 1
    result.refresh_from_db()
    assert result.status == ResultStatus.SUCCEEDED, result.error_message
    with django_capture_on_commit_callbacks(execute=True):
        services.approve(result, user=admin_user)
    assert run_worker() == 1
    result.refresh_from_db()
    assert set(result.renditions) == {"480", "960"}
    keys = {obj["Key"] for obj in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    assert set(result.renditions.values()) <= keys and result.image.name in keys

    (tag,) = page_images(client, post)
    urls = {attr(tag, "src")} | {part.strip().rsplit(" ", 1)[0] for part in attr(tag, "srcset").split(",")}
    assert len(urls) == 3
    sizes = set()
    for url in urls:
        assert url.startswith(s3.meta.endpoint_url)
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.status == 200
            with Image.open(io.BytesIO(response.read())) as image:
                image.load()
                sizes.add(image.width)
    assert sizes == {480, 960, 1024}


def test_widths_added_later_are_made_without_remaking_the_others(media, make_post, settings):
    settings.BLOGIMAGES_RENDITION_WIDTHS = (480,)
    post = make_post(sections=1)
    result = approved_result(post.sections.get())
    first = renditions.make_renditions(result.pk)
    settings.BLOGIMAGES_RENDITION_WIDTHS = (480, 960)
    both = renditions.make_renditions(result.pk)
    assert both["480"] == first["480"] and set(both) == {"480", "960"}
    assert stored_renditions() == sorted(both.values())
