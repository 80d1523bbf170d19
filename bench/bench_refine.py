"""Refining, one JSON line per figure: run as ``.venv/bin/python bench/bench_refine.py``.

* ``refine_request_ms``: ``refining.refine`` for a 1024x1024 parent with a painted mask: the
  checks (the parent's file read and decoded, the mask normalised, the provider's offline
  ``edit_refusal`` and ``prepare``), the mask stored and the row committed; the median of
  ``--runs``. What an editor waits for after pressing Refine, before the job runs.
* ``mask_normalise_ms``: ``refining.normalise_mask`` alone for a 1024x1024 canvas mask.
* ``preview_store_ms``: one partial image (a 1024x1024 PNG) downscaled to WebP and kept in
  Redis (``refining.store_preview``), as the job does for each of OpenAI's partial images.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def timed(fn, runs: int) -> float:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(samples), 2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()

    from _setup import setup_django

    setup_django()
    from django.test import override_settings
    from PIL import Image, ImageDraw

    from blogimages import refining
    from blogimages.models import ImageGenerationResult
    from project.blog.models import Post, Section
    from tests.conftest import generated_result

    post = Post.objects.create(title="Bench", slug=f"bench-refine-{os.getpid()}")
    section = Section.objects.create(post=post, position=0, heading="One", body="A lighthouse at dusk")
    parent = generated_result(section, prompt="A lighthouse at dusk", width=1024, height=1024)
    canvas = Image.new("RGBA", (1024, 1024), (0, 0, 0, 0))
    ImageDraw.Draw(canvas).ellipse((200, 200, 700, 600), fill=(255, 255, 255, 255))
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG")
    mask = buffer.getvalue()
    partial = io.BytesIO()
    Image.new("RGB", (1024, 1024), (40, 90, 160)).save(partial, format="PNG")

    editing = {
        "placeholder": {"BACKEND": "blogimages.providers.placeholder.PlaceholderProvider", "OPTIONS": {}},
        "echo": {"BACKEND": "tests.test_refine.EchoEditProvider", "OPTIONS": {}},
    }
    figures = {}
    with override_settings(BLOGIMAGES_PROVIDERS=editing):
        figures["refine_request_ms"] = timed(
            lambda: refining.refine(parent, operation="refine", instruction="add a moon", mask=mask, provider="echo"),
            args.runs,
        )
    figures["mask_normalise_ms"] = timed(lambda: refining.normalise_mask(mask, (1024, 1024)), args.runs)
    figures["preview_store_ms"] = timed(lambda: refining.store_preview([parent.pk], partial.getvalue()), args.runs)
    ImageGenerationResult.objects.filter(parent=parent).delete()
    for name, value in figures.items():
        print(json.dumps({"metric": name, "value": value, "unit": "ms", "runs": args.runs, "size": "1024x1024"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
