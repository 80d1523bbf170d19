"""Admin pages cost a constant number of queries whatever the number of rows.

Each test measures a small case, then asserts the large case runs exactly as many.
"""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from blogimages import services
from blogimages.models import (
    ImageFormat,
    ImageGenerationResult,
    ImagePromptExample,
    ImageSetting,
    ImageStyle,
    PostImageSettings,
    ResultStatus,
    ReviewAction,
    ReviewEvent,
    SectionReview,
)

pytestmark = pytest.mark.django_db


def build(make_post, *, slug: str, sections: int, candidates: int, user=None):
    """A post whose sections each have ``candidates`` results (one running, the rest finished,
    the first finished one approved) and a history."""
    post = make_post(sections=sections, slug=slug, title=f"Post {slug}")
    rows = []
    for section in post.sections.all():
        review = services.review_for(section)
        for index in range(candidates):
            running = index == candidates - 1 and candidates > 1
            rows.append(
                ImageGenerationResult(
                    review=review,
                    prompt=section.body,
                    final_prompt=section.body,
                    provider="placeholder",
                    provider_used="" if running else "placeholder",
                    model="placeholder",
                    params={"width": 1024, "height": 768},
                    seed=1000 + index,
                    requested_by=user,
                    status=ResultStatus.RUNNING if running else ResultStatus.SUCCEEDED,
                    progress=50 if running else 100,
                    image="" if running else f"blogimages/images/{slug}-{section.pk}-{index}.png",
                    thumbnail="" if running else f"blogimages/thumbnails/{slug}-{section.pk}-{index}.webp",
                    width=None if running else 1024,
                    height=None if running else 768,
                )
            )
    ImageGenerationResult.objects.bulk_create(rows)
    for section in post.sections.all():
        review = services.review_for(section)
        results = list(ImageGenerationResult.objects.filter(review=review).order_by("id"))
        ReviewEvent.objects.bulk_create(
            [ReviewEvent(review=review, action=ReviewAction.GENERATED, result=r, user=user) for r in results]
        )
        services.approve(results[0], user=user)
        services.add_comment(section, user=user, text="Looks good")
    return post


def count(client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200, url
    return len(queries)


@pytest.fixture
def two_posts(make_post, admin_user):
    small = build(make_post, slug="small", sections=2, candidates=1, user=admin_user)
    large = build(make_post, slug="large", sections=10, candidates=6, user=admin_user)
    return small, large


def test_review_page_queries_do_not_grow_with_sections_or_candidates(
    client, admin_user, two_posts, django_assert_num_queries
):
    small, large = two_posts
    client.force_login(admin_user)
    expected = count(client, f"/admin/blog/post/{small.pk}/images/")
    assert expected <= 12  # session, user, post, sections, reviews, post settings, results, events
    with django_assert_num_queries(expected):
        response = client.get(f"/admin/blog/post/{large.pk}/images/")
    assert response.content.decode().count('class="bi-card ') == 60


def test_review_page_queries_for_an_editor(client, make_editor, two_posts, django_assert_num_queries):
    small, large = two_posts
    client.force_login(make_editor("ed", perms=["review_images", "generate_images"]))
    expected = count(client, f"/admin/blog/post/{small.pk}/images/")
    with django_assert_num_queries(expected):
        client.get(f"/admin/blog/post/{large.pk}/images/")


def test_status_endpoint_and_section_fragment_queries(client, admin_user, two_posts, django_assert_num_queries):

    small, large = two_posts
    client.force_login(admin_user)
    expected = count(client, f"/admin/blog/post/{small.pk}/images/status/")
    with django_assert_num_queries(expected):
        client.get(f"/admin/blog/post/{large.pk}/images/status/")
    small_section = small.sections.first().pk
    large_section = large.sections.first().pk
    expected = count(client, f"/admin/blog/post/{small.pk}/images/section/{small_section}/")
    with django_assert_num_queries(expected):
        client.get(f"/admin/blog/post/{large.pk}/images/section/{large_section}/")


@pytest.mark.parametrize(
    "url",
    [
        "/admin/blogimages/imagegenerationresult/",
        "/admin/blogimages/sectionreview/",
        "/admin/blog/post/",
        "/admin/blogimages/imagepromptexample/",
        "/admin/blogimages/imagesetting/",
        "/admin/blogimages/imagestyle/",
        "/admin/blogimages/imageformat/",
        "/admin/blogimages/postimagesettings/",
    ],
)
def test_change_lists_use_constant_queries(client, admin_user, make_post, url, django_assert_num_queries):
    """One row, then many rows of everything: the same number of queries."""

    def add_rows(tag: str, n: int) -> None:
        for i in range(n):
            style = ImageStyle.objects.create(name=f"style {tag}{i}", prompt_template="{prompt}, ink")
            fmt = ImageFormat.objects.create(name=f"format {tag}{i}", width=1024, height=576 + i)
            setting = ImageSetting.objects.create(
                name=f"setting {tag}{i}", steps=20, legacy_text="steps 20", legacy_warnings=["odd token"]
            )
            example = ImagePromptExample.objects.create(
                name=f"example {tag}{i}",
                prompt="a boat",
                style=style,
                image_format=fmt,
                setting=setting,
                created_by=admin_user,
            )
            post = build(make_post, slug=f"p-{tag}{i}", sections=1, candidates=2, user=admin_user)
            PostImageSettings.objects.create(post=post, prompt_example=example)

    client.force_login(admin_user)
    add_rows("a", 1)
    expected = count(client, url)
    add_rows("b", 12)
    with django_assert_num_queries(expected):
        response = client.get(url)
    rows = len(re.findall(r'<tr>\s*<td class="action-checkbox">', response.content.decode()))
    assert rows >= 13


def test_fifty_sections_of_six_stay_light(client, admin_user, make_post):
    post = build(make_post, slug="long", sections=50, candidates=6, user=admin_user)
    client.force_login(admin_user)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(f"/admin/blog/post/{post.pk}/images/")
    html = response.content.decode()
    images = re.findall(r"<img [^>]*>", html)
    assert len(images) == 50 * 5  # every finished candidate, as a thumbnail
    assert all("/thumbnails/" in tag and 'loading="lazy"' in tag and "width=" in tag for tag in images)
    assert "/blogimages/images/" not in "".join(images)  # never the full-size files
    assert len(queries) <= 12
    # About 2.4 KB per candidate, history included (it was 967 KB before the cards' tools and the
    # upload forms became page-wide templates; bench/bench_admin.py measures it).
    assert len(response.content) < 760_000, len(response.content)
    assert SectionReview.objects.for_post(post).count() == 50


# --- live previews: one Redis command for the whole page -------------------------------------------


def redis_commands(redis, action) -> list[str]:
    """The commands Redis received (MONITOR, a real server's own log of them) while ``action`` ran,
    those naming a preview key only (other tests' helpers may share the server)."""
    import threading
    import uuid

    marker = f"bi-monitor-end-{uuid.uuid4().hex}"
    seen: list[str] = []
    with redis.monitor() as monitor:

        def listen():
            while True:
                command = monitor.next_command()["command"]
                if marker in command:
                    return
                if "blogimages:preview:" in command:
                    seen.append(command)

        listener = threading.Thread(target=listen, daemon=True)
        listener.start()
        action()
        redis.echo(marker)
        listener.join(10)
    assert not listener.is_alive()
    return seen


def test_status_names_previews_of_running_cards_in_one_redis_command(
    client, admin_user, two_posts, django_assert_num_queries
):
    from blogimages import refining
    from tests.conftest import png_bytes

    small, large = two_posts
    client.force_login(admin_user)
    running = list(ImageGenerationResult.objects.for_post(large).filter(status=ResultStatus.RUNNING).order_by("pk"))
    assert len(running) == 10
    redis = refining._redis()
    for key in redis.scan_iter("blogimages:preview:*"):
        redis.delete(key)
    try:
        refining.store_preview([r.pk for r in running[:3]], png_bytes())
        refining.store_preview([running[0].pk], png_bytes())
        expected = count(client, f"/admin/blog/post/{small.pk}/images/status/")
        answers = []

        def poll():
            with django_assert_num_queries(expected):  # no query for the previews
                answers.append(client.get(f"/admin/blog/post/{large.pk}/images/status/").json())

        commands = redis_commands(redis, poll)
        assert len(commands) == 1 and commands[0].startswith("MGET ")  # all 10 running cards at once
        by_id = {r["id"]: r for r in answers[0]["results"]}
        assert by_id[running[0].pk]["preview"] == 2 and by_id[running[1].pk]["preview"] == 1
        assert by_id[running[1].pk]["preview_url"] == f"/api/v1/images/results/{running[1].pk}/preview?n=1"
        assert all("preview" not in by_id[r.pk] for r in running[3:])
        # The URL answers with the admin session (as in Wagtail and django CMS: the same session).
        image = client.get(by_id[running[0].pk]["preview_url"])
        assert image.status_code == 200 and image["Content-Type"] == "image/webp" and image["X-Preview-Count"] == "2"
        # A page with nothing running asks Redis nothing.
        assert redis_commands(redis, lambda: client.get(f"/admin/blog/post/{small.pk}/images/status/")) == []
    finally:
        for key in redis.scan_iter("blogimages:preview:*"):
            redis.delete(key)
