"""Admin review page figures for a 50-section post with 6 candidates per section (one JSON line each).

- admin_review_page_ms: median server time to render the review page (logged-in superuser).
- admin_review_page_kb: its HTML size (thumbnails are referenced, never inlined).
- admin_review_page_queries: SQL queries for that page (constant whatever the post's length).
- admin_review_status_ms: median time of the JSON status endpoint the page polls every second.
"""

from __future__ import annotations

import io
import json
import statistics
import time

from _setup import setup_django

setup_django()

from django.contrib.auth import get_user_model  # noqa: E402
from django.core.files.base import ContentFile  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from blogimages import services  # noqa: E402
from blogimages.models import ImageGenerationResult, ResultStatus, ReviewAction, ReviewEvent  # noqa: E402
from blogimages.storage import get_storage  # noqa: E402
from project.blog.models import Post, Section  # noqa: E402

SECTIONS = 50
CANDIDATES = 6
RUNS = 7


def emit(metric: str, value: float, unit: str, **extra) -> None:
    print(json.dumps({"metric": metric, "value": round(value, 3), "unit": unit, **extra}), flush=True)


def build() -> Post:
    post = Post.objects.create(title="Bench review", slug=f"bench-review-{time.time_ns()}")
    Section.objects.bulk_create(
        Section(post=post, position=i, heading=f"S{i}", body=f"A harbour at dawn, view {i}") for i in range(SECTIONS)
    )
    reviews = {section.pk: services.review_for(section) for section in post.sections.all()}
    rows = [
        ImageGenerationResult(
            review=reviews[section.pk],
            prompt=section.body,
            final_prompt=section.body,
            provider="placeholder",
            provider_used="placeholder",
            model="placeholder",
            params={"width": 1024, "height": 768},
            seed=n,
            status=ResultStatus.SUCCEEDED,
            progress=100,
            image=f"blogimages/images/b{section.pk}-{n}.png",
            thumbnail=f"blogimages/thumbnails/b{section.pk}-{n}.webp",
            width=1024,
            height=768,
        )
        for section in post.sections.all()
        for n in range(CANDIDATES)
    ]
    ImageGenerationResult.objects.bulk_create(rows)
    for review in reviews.values():
        results = list(ImageGenerationResult.objects.filter(review=review).order_by("id"))
        ReviewEvent.objects.bulk_create(
            ReviewEvent(review=review, action=ReviewAction.GENERATED, result=r) for r in results
        )
        # Approving publishes the image under a readable name, which reads its file: the
        # approved candidate gets a real one (the page only references the others).
        results[0].image.name = get_storage().save(results[0].image.name, ContentFile(PNG))
        results[0].save(update_fields=["image"])
        services.approve(results[0])
    return post


def png() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (90, 120, 150)).save(buffer, format="PNG")
    return buffer.getvalue()


PNG = png()


def timed(client: Client, url: str) -> tuple[float, bytes, int]:
    with CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        response = client.get(url)
        elapsed = time.perf_counter() - started
    assert response.status_code == 200, url
    return elapsed, response.content, len(queries)


def main() -> None:
    post = build()
    user = get_user_model().objects.create_superuser(f"bench-{time.time_ns()}", "b@example.com", "x")
    client = Client(HTTP_HOST="127.0.0.1")  # a host the example project allows
    client.force_login(user)
    url = f"/admin/blog/post/{post.pk}/images/"
    timed(client, url)  # warm the template cache
    runs = [timed(client, url) for _ in range(RUNS)]
    shape = {"sections": SECTIONS, "candidates_per_section": CANDIDATES}
    emit("admin_review_page_ms", statistics.median(r[0] for r in runs) * 1000, "ms", **shape)
    emit("admin_review_page_kb", len(runs[0][1]) / 1024, "KiB", **shape)
    emit("admin_review_page_queries", runs[0][2], "queries", **shape)
    status = [timed(client, url + "status/")[0] for _ in range(RUNS)]
    emit("admin_review_status_ms", statistics.median(status) * 1000, "ms", **shape)


if __name__ == "__main__":
    main()
