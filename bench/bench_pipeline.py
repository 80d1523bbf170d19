"""Spine figures with the offline placeholder provider (one JSON line per figure).

- enqueue_ms_per_section: `generate_for_post` for a 50-section post (rows, history and
  Redis enqueues, committed), per section.
- worker_overhead_ms_per_job: a real RQ worker running those 50 jobs, per job, minus
  the time the placeholder spends drawing (measured separately), i.e. what blogimages
  and RQ add around a provider.
- post_page_ms: rendering the public page of that post with 50 approved images.
"""

from __future__ import annotations

import json
import time

from _setup import setup_django

setup_django()

from django.test import Client  # noqa: E402
from rq import SimpleWorker  # noqa: E402

from blogimages import services  # noqa: E402
from blogimages.models import ImageGenerationResult  # noqa: E402
from blogimages.providers.base import GenerationRequest  # noqa: E402
from blogimages.providers.placeholder import render_placeholder  # noqa: E402
from project.blog.models import Post, Section  # noqa: E402

SECTIONS = 50


def emit(metric: str, value: float, unit: str, **extra) -> None:
    print(json.dumps({"metric": metric, "value": round(value, 3), "unit": unit, **extra}), flush=True)


def main() -> None:
    import django_rq

    queue = django_rq.get_queue("default", commit_mode="auto")
    queue.empty()
    post = Post.objects.create(title="Bench", slug=f"bench-{time.time_ns()}")
    Section.objects.bulk_create(
        Section(post=post, position=i, heading=f"S{i}", body=f"A harbour at dawn, view {i}") for i in range(SECTIONS)
    )
    started = time.perf_counter()
    outcome = services.generate_for_post(post)
    enqueue_s = time.perf_counter() - started
    assert len(outcome.results) == SECTIONS
    emit("enqueue_ms_per_section", enqueue_s * 1000 / SECTIONS, "ms", sections=SECTIONS)

    draw_started = time.perf_counter()
    for i in range(SECTIONS):
        render_placeholder(GenerationRequest(prompt=f"A harbour at dawn, view {i}"), seed=i)
    draw_s = time.perf_counter() - draw_started

    started = time.perf_counter()
    SimpleWorker([queue], connection=queue.connection).work(burst=True, logging_level="WARNING")
    work_s = time.perf_counter() - started
    ok = ImageGenerationResult.objects.for_post(post).filter(status="succeeded").count()
    assert ok == SECTIONS, f"only {ok} of {SECTIONS} succeeded"
    emit(
        "worker_overhead_ms_per_job",
        (work_s - draw_s) * 1000 / SECTIONS,
        "ms",
        jobs=SECTIONS,
        total_ms_per_job=round(work_s * 1000 / SECTIONS, 3),
        note="includes storing the PNG and a WebP thumbnail",
    )

    for result in ImageGenerationResult.objects.for_post(post):
        services.approve(result)
    client = Client(HTTP_HOST="127.0.0.1")
    client.get(f"/blog/{post.slug}/")  # warm templates
    runs = 20
    started = time.perf_counter()
    for _ in range(runs):
        assert client.get(f"/blog/{post.slug}/").status_code == 200
    emit("post_page_ms", (time.perf_counter() - started) * 1000 / runs, "ms", sections=SECTIONS)


if __name__ == "__main__":
    main()
