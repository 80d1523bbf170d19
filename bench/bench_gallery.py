"""Gallery figures on 20,000 results (one JSON line each).

- gallery_first_page_ms: median server time of the gallery's first page (48 cards, superuser).
- gallery_deep_page_ms: the same for a page 19,000 images in (a keyset page: no OFFSET).
- gallery_filtered_page_ms: the first page filtered by decision=undecided and provider.
- gallery_page_queries: SQL queries of a page (the same for every page and filter).
"""

from __future__ import annotations

import json
import statistics
import time
import uuid
from datetime import timedelta

from _setup import setup_django

setup_django()

from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.utils import timezone  # noqa: E402

from blogimages.admin_views.gallery import _cursor  # noqa: E402
from blogimages.models import ImageGenerationResult, ResultStatus  # noqa: E402

ROWS = 20_000
RUNS = 7
URL = "/admin/blogimages/imagegenerationresult/gallery/"


def emit(metric: str, value: float, unit: str, **extra) -> None:
    print(json.dumps({"metric": metric, "value": round(value, 3), "unit": unit, **extra}), flush=True)


def build(user) -> None:
    start = timezone.now() - timedelta(days=30)
    group = uuid.uuid4()
    rows = [
        ImageGenerationResult(
            group=group,
            prompt=f"A harbour at dawn, view {n}",
            final_prompt=f"A harbour at dawn, view {n}",
            provider="placeholder" if n % 3 else "sketch",
            provider_used="placeholder" if n % 3 else "sketch",
            model=f"model-{n % 5}",
            params={"width": 1024, "height": 768},
            seed=n,
            status=ResultStatus.SUCCEEDED,
            progress=100,
            image=f"blogimages/images/g{n}.png",
            thumbnail=f"blogimages/thumbnails/g{n}.webp",
            width=1024,
            height=768,
            requested_by=user,
            created_at=start + timedelta(seconds=n * 7),
        )
        for n in range(ROWS)
    ]
    ImageGenerationResult.objects.bulk_create(rows, batch_size=2000)


def timed(client: Client, url: str) -> tuple[float, int]:
    times = []
    for _ in range(RUNS):
        begin = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - begin) * 1000)
        assert response.status_code == 200
    with CaptureQueriesContext(connection) as queries:
        client.get(url)
    return statistics.median(times), len(queries)


def main() -> None:
    user = get_user_model().objects.create_superuser(f"bench-{time.time_ns()}", "b@example.com", "x")
    build(user)
    client = Client(HTTP_HOST="127.0.0.1")  # a host the example project allows
    client.force_login(user)
    client.get(URL)
    ms, queries = timed(client, URL)
    emit("gallery_first_page_ms", ms, "ms", rows=ROWS, runs=RUNS)
    emit("gallery_page_queries", queries, "queries", rows=ROWS)
    deep = ImageGenerationResult.objects.order_by("-created_at", "-id")[19_000]
    ms, deep_queries = timed(client, URL + "?after=" + _cursor(deep).replace("+", "%2B"))
    emit("gallery_deep_page_ms", ms, "ms", rows=ROWS, offset=19_000, queries=deep_queries)
    ms, filtered_queries = timed(client, URL + "?decision=undecided&provider=sketch")
    emit("gallery_filtered_page_ms", ms, "ms", rows=ROWS, queries=filtered_queries)


if __name__ == "__main__":
    main()
