"""Upgrading a database of the schema before host adapters keeps every row.

The database is built with the migrations as they were released (foreign keys from
reviews, results and post settings to the blog's Post and Section), filled with reviews,
approvals, rejections, history, playground images and a result whose section never had
a review row, then migrated to today's schema.
"""

from __future__ import annotations

import pytest
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import override_settings
from django.utils import timezone

from blogimages import services
from blogimages.admin_views import load_panels
from blogimages.models import ImageGenerationResult, PostImageSettings, ReviewEvent, SectionReview
from blogimages.rendering import approved_images_for_post
from project.blog.models import Post, Section


def _previous_modules() -> dict:
    # blogimages' own contrib apps (blogimages_wagtail, ...) build on today's migrations;
    # while the previous ones are loaded, they count as apps without migrations.
    from django.apps import apps

    contrib = {config.label: None for config in apps.get_app_configs() if config.label.startswith("blogimages_")}
    return {"blogimages": "tests.previous_migrations", **contrib}


LAST_PREVIOUS = ("blogimages", "0002_structure_legacy_settings")


def _fill_previous_schema() -> dict:
    """Rows as the previous release wrote them, through its historical models."""
    state = MigrationExecutor(connection).loader.project_state(LAST_PREVIOUS)
    Review = state.apps.get_model("blogimages", "SectionReview")
    Result = state.apps.get_model("blogimages", "ImageGenerationResult")
    Event = state.apps.get_model("blogimages", "ReviewEvent")
    Settings = state.apps.get_model("blogimages", "PostImageSettings")
    Example = state.apps.get_model("blogimages", "ImagePromptExample")

    post = Post.objects.create(title="Old post", slug="old-post")
    other = Post.objects.create(title="Other post", slug="other-post")
    sections = [Section.objects.create(post=post, position=i, heading=f"Part {i}", body=f"Text {i}") for i in range(3)]
    lone = Section.objects.create(post=other, position=0, heading="Lone", body="Lone text")
    now = timezone.now()

    def result(section, **fields):
        row = dict(prompt="p", final_prompt="p", provider="placeholder", params={}, queued_at=now, **fields)
        if section is not None:
            row.update(section_id=section.pk, post_id=section.post_id)
        return Result.objects.create(**row)

    # Section 0: two candidates, the second approved.
    r0a = result(sections[0], status="succeeded", image="blogimages/a.png")
    r0b = result(sections[0], status="succeeded", image="blogimages/b.png", is_approved=True)
    review0 = Review.objects.create(
        section_id=sections[0].pk,
        post_id=post.pk,
        status="approved",
        approved_result_id=r0b.pk,
        alt_text="A harbour",
        prompt_override="harbour at dawn",
    )
    for action, res in (("generated", r0a), ("generated", r0b), ("approved", r0b)):
        Event.objects.create(review_id=review0.pk, action=action, result_id=res.pk)
    # Section 1: rejected with a comment, one failed candidate.
    r1 = result(sections[1], status="failed", error_message="boom", error_kind="permanent")
    review1 = Review.objects.create(section_id=sections[1].pk, post_id=post.pk, status="rejected", comment="No")
    Event.objects.create(review_id=review1.pk, action="rejected", result_id=r1.pk, comment="No")
    # Section 2: no review row, but a queued result (rows made before reviews existed).
    r2 = result(sections[2], status="queued")
    # Another post's section, pending; a playground image with no section.
    r_lone = result(lone, status="running")
    review_lone = Review.objects.create(section_id=lone.pk, post_id=other.pk)
    r_play = result(None, status="succeeded", image="blogimages/play.png")
    example = Example.objects.create(name="Example", prompt="a prompt")
    Settings.objects.create(post_id=post.pk, prompt_example_id=example.pk)
    return {
        "post": post,
        "other": other,
        "sections": sections,
        "lone": lone,
        "results": {"r0a": r0a.pk, "r0b": r0b.pk, "r1": r1.pk, "r2": r2.pk, "lone": r_lone.pk, "play": r_play.pk},
        "reviews": {"review0": review0.pk, "review1": review1.pk, "lone": review_lone.pk},
        "example": example.pk,
    }


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_previous_schema_upgrades_without_losing_a_row():
    call_command("migrate", "blogimages", "zero", verbosity=0)
    try:
        with override_settings(MIGRATION_MODULES=_previous_modules()):
            call_command("migrate", "blogimages", LAST_PREVIOUS[1], verbosity=0)
            columns = {
                c.name
                for c in connection.introspection.get_table_description(connection.cursor(), "blogimages_sectionreview")
            }
            assert {"section_id", "post_id"} <= columns and "section_key" not in columns
            data = _fill_previous_schema()
        events_before = ReviewEvent.objects.count()
    finally:
        call_command("migrate", verbosity=0)

    post_type = ContentType.objects.get_for_model(Post)
    sections, ids = data["sections"], data["results"]
    review0 = SectionReview.objects.get(pk=data["reviews"]["review0"])
    assert (review0.post_type, review0.post_id, review0.section_key) == (
        post_type,
        str(data["post"].pk),
        str(sections[0].pk),
    )
    assert review0.status == "approved" and review0.approved_result_id == ids["r0b"]
    assert (review0.alt_text, review0.prompt_override) == ("A harbour", "harbour at dawn")
    assert ImageGenerationResult.objects.get(pk=ids["r0b"]).is_approved
    assert not ImageGenerationResult.objects.get(pk=ids["r0a"]).is_approved
    assert set(review0.results.values_list("pk", flat=True)) == {ids["r0a"], ids["r0b"]}
    assert list(review0.events.values_list("action", flat=True)) == ["generated", "generated", "approved"]

    review1 = SectionReview.objects.get(pk=data["reviews"]["review1"])
    assert (review1.section_key, review1.status, review1.comment) == (str(sections[1].pk), "rejected", "No")
    assert list(review1.results.values_list("pk", flat=True)) == [ids["r1"]]

    # The result whose section had no review row got one, and keeps its section.
    r2 = ImageGenerationResult.objects.select_related("review").get(pk=ids["r2"])
    assert (r2.review.post_id, r2.review.section_key, r2.review.status) == (
        str(data["post"].pk),
        str(sections[2].pk),
        "pending",
    )

    lone = SectionReview.objects.get(pk=data["reviews"]["lone"])
    assert (lone.post_id, lone.section_key) == (str(data["other"].pk), str(data["lone"].pk))
    assert ImageGenerationResult.objects.get(pk=ids["lone"]).review_id == lone.pk
    assert ImageGenerationResult.objects.get(pk=ids["play"]).review_id is None
    assert ReviewEvent.objects.count() == events_before == 4
    assert ImageGenerationResult.objects.count() == 6 and SectionReview.objects.count() == 4

    settings_row = PostImageSettings.objects.get()
    assert settings_row.post == data["post"] and settings_row.prompt_example_id == data["example"]

    # The upgraded rows are what today's code reads: the review page and the public page.
    panels = {p.key: p for p in load_panels(data["post"])}
    assert panels[str(sections[0].pk)].approved.result.pk == ids["r0b"]
    assert [c.result.pk for c in panels[str(sections[2].pk)].candidates] == [ids["r2"]]
    assert set(approved_images_for_post(data["post"]).problems) == {str(sections[0].pk)}  # no file on disk
    assert services.prompt_example_for(review1).pk == data["example"]
