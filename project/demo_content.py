"""The demo data both CMS demos load (``wagtailblog_demo``, ``cmsblog_demo``): the admin
user, the blogimages library and the post's sections, all from ``fixtures/demo.json``, so
every demo shows the same post. Safe to rerun: existing rows are left as they are.
"""

from __future__ import annotations

import json
from pathlib import Path

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "demo.json"
LIBRARY = {
    "blogimages.imagestyle",
    "blogimages.imageformat",
    "blogimages.imagesetting",
    "blogimages.imagepromptexample",
}
USERNAME, PASSWORD = "admin", "blogimages-demo"
SLUG = "cornish-coast"


def load() -> list[dict]:
    return json.loads(FIXTURE.read_text())


def admin_and_library(data: list[dict]):
    """The demo's superuser (created with PASSWORD if missing) and the library's rows that
    are not there yet; returns the user."""
    from django.contrib.auth import get_user_model
    from django.core import serializers

    user, created = get_user_model().objects.get_or_create(
        username=USERNAME, defaults={"email": "admin@example.com", "is_staff": True, "is_superuser": True}
    )
    if created:
        user.set_password(PASSWORD)
        user.save()
    library = [row for row in data if row["model"] in LIBRARY]
    for obj in serializers.deserialize("json", json.dumps(library)):
        if not type(obj.object)._default_manager.filter(pk=obj.object.pk).exists():
            obj.save()
    return user


def post_and_sections(data: list[dict]) -> tuple[dict, list[dict]]:
    """The demo post's fields and its sections' fields, in order."""
    post = next(row for row in data if row["model"] == "blog.post")
    sections = sorted((row["fields"] for row in data if row["model"] == "blog.section"), key=lambda f: f["position"])
    return post["fields"], sections


def attach_prompt_example(post) -> None:
    """The library's first prompt example as the post's, unless the post has settings already."""
    from blogimages.hosts import post_reference
    from blogimages.models import ImagePromptExample, PostImageSettings

    example = ImagePromptExample.objects.order_by("pk").first()
    if example is not None:
        post_type, post_id = post_reference(post)
        PostImageSettings.objects.get_or_create(
            post_type=post_type, post_id=post_id, defaults={"prompt_example": example}
        )
