"""Batched candidates, one JSON line: run as ``.venv/bin/python bench/bench_batch.py``.

* ``batch_candidates_speedup``: 4 candidates for one section as one batched prompt
  (``batch_size`` 4, the shipped SDXL workflow) against the same 4 candidates as 4 prompts
  (the same workflow less its ``batch_size`` mapping, so they are 4 jobs), each through the
  real path (service call, Redis, an RQ worker, the ComfyUI provider, storage) against the
  fake ComfyUI. Measured from the server's own busy timeline (each prompt's
  ``execution_start`` to its end): the 4 prompts' busy seconds divided by the batch's. The
  fake runs a prompt in ``--seconds`` and a batch of N in ``seconds * (1 + 0.25 * (N - 1))``,
  so the modelled figure is 4 / 1.75 = 2.29; what the line shows beyond that is the
  pipeline's own cost. ``wall_*`` are the seconds from the request to the last stored image.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

CANDIDATES = 4


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=0.5, help="the fake's time for one single prompt")
    parser.add_argument("--size", type=int, default=256, help="image width and height, in pixels")
    args = parser.parse_args()

    from _setup import setup_django

    setup_django()
    from django.test import override_settings

    from blogimages import services
    from blogimages.comfyui.workflows import SHIPPED_DIR
    from blogimages.conf import app_settings
    from blogimages.models import ImageGenerationResult, ResultStatus
    from project.blog.models import Post, Section
    from tests.servers.comfyui import FakeComfyUI

    mapping = json.loads((SHIPPED_DIR / "sdxl.mapping.json").read_text())
    del mapping["parameters"]["batch_size"]
    single = {**mapping, "graph": json.loads((SHIPPED_DIR / "sdxl.json").read_text())}

    import django_rq
    from rq import SimpleWorker

    queue = django_rq.get_queue(app_settings.QUEUE, commit_mode="auto")
    queue.empty()
    post = Post.objects.create(title="Bench", slug=f"bench-batch-{os.getpid()}")
    section = Section.objects.create(post=post, position=0, heading="One", body="A lighthouse at dusk")

    figures = {}
    with FakeComfyUI(run_time=args.seconds) as server:
        providers = {
            "comfyui": {
                "BACKEND": "blogimages.providers.comfyui.ComfyUIProvider",
                "OPTIONS": {"urls": [server.url], "workflow": "sdxl", "workflows": {"single": single}},
            }
        }
        with override_settings(BLOGIMAGES_PROVIDERS=providers):
            for label, model in (("batched", "sdxl"), ("separate", "single")):
                before = set(server.prompts)
                started = time.monotonic()
                spec = services.GenerationSpec(
                    prompt="A lighthouse on a cliff at dusk",
                    providers=["comfyui"],
                    model=model,
                    overrides={"width": args.size, "height": args.size, "steps": 4},
                    candidates=CANDIDATES,
                )
                results = services.request_generation(spec, section=section)
                SimpleWorker([queue], connection=queue.connection).work(burst=True, logging_level="WARNING")
                wall = time.monotonic() - started
                rows = ImageGenerationResult.objects.filter(pk__in=[result.pk for result in results])
                statuses = {row.status for row in rows}
                if statuses != {ResultStatus.SUCCEEDED}:
                    print(f"{label}: not every candidate succeeded: {sorted(statuses)}", file=sys.stderr)
                    return 1
                prompts = [prompt_id for prompt_id in server.prompts if prompt_id not in before]
                busy = sum(server.timeline[p]["finished"] - server.timeline[p]["started"] for p in prompts)
                figures[label] = {"prompts": len(prompts), "busy": busy, "wall": wall}

    batched, separate = figures["batched"], figures["separate"]
    print(
        json.dumps(
            {
                "metric": "batch_candidates_speedup",
                "value": round(separate["busy"] / batched["busy"], 3),
                "unit": "x (server busy seconds, 4 prompts / 1 batched prompt)",
                "candidates": CANDIDATES,
                "modelled": round(CANDIDATES / (1 + 0.25 * (CANDIDATES - 1)), 3),
                "prompts_batched": batched["prompts"],
                "prompts_separate": separate["prompts"],
                "busy_batched_s": round(batched["busy"], 3),
                "busy_separate_s": round(separate["busy"], 3),
                "wall_batched_s": round(batched["wall"], 3),
                "wall_separate_s": round(separate["wall"], 3),
                "single_prompt_s": args.seconds,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
