"""The offline development provider: a deterministic, seeded, clearly labelled image.

Like Django's console email backend, it lets the whole pipeline run without a GPU or
an API key. The same request and seed always give the same bytes.
"""

from __future__ import annotations

import hashlib
import io
import random
import textwrap
import time

from PIL import Image, ImageDraw, ImageFont

from ..contract import GeneratedImage, GenerationRequest, ProgressReporter, ProviderHealth, seed_for
from ..exceptions import GenerationCancelled
from .base import BaseProvider

# Placeholders are drawn small and scaled to the asked size: big enough to read,
# cheap enough that a 50-section post generates in seconds.
MAX_SIDE = 2048


class PlaceholderProvider(BaseProvider):
    label = "Placeholder (offline)"
    kind = "placeholder"
    default_options = {
        "delay": 0.0,  # seconds to sleep, spread over progress steps, to mimic a real server
        "steps": 4,  # progress reports per image
    }
    # Every edit, so refining can be tried (and tested) without a GPU: the source comes
    # back at the asked size, a refine's painted area tinted and the operation written on it.
    operations = frozenset({"refine", "variations", "upscale", "reference"})

    def generate(self, request: GenerationRequest, reporter: ProgressReporter) -> GeneratedImage:
        seed = seed_for(request, 2**32)
        steps = max(1, int(self.options["steps"]))
        for step in range(steps):
            if reporter.cancelled():
                raise GenerationCancelled("Cancelled while generating.")
            if self.options["delay"]:
                time.sleep(float(self.options["delay"]) / steps)
            reporter.progress(100 * (step + 1) / (steps + 1), f"step {step + 1}/{steps}")
        if request.edit is not None:
            content = render_edit(request, seed)
        else:
            content = render_placeholder(request, seed, provider=self.alias)
        return GeneratedImage(
            content=content,
            seed=seed,
            model=request.model or "placeholder",
            provider=self.alias,
        )

    def health(self) -> ProviderHealth:
        return ProviderHealth(ok=True, detail="offline placeholder, always available")

    def models(self) -> list[str]:
        return ["placeholder"]


def render_placeholder(request: GenerationRequest, seed: int, provider: str = "placeholder") -> bytes:
    width = max(64, min(MAX_SIDE, request.width))
    height = max(64, min(MAX_SIDE, request.height))
    digest = hashlib.sha256(f"{seed}:{request.prompt}".encode()).digest()
    background = tuple(40 + b % 120 for b in digest[:3])
    image = Image.new("RGB", (width, height), background)
    draw = ImageDraw.Draw(image)
    rng = random.Random(seed)
    for _ in range(12):  # seeded shapes so two seeds look different at a glance
        x0, y0 = rng.randrange(width), rng.randrange(height)
        r = rng.randrange(8, max(9, min(width, height) // 4))
        colour = tuple(min(255, c + rng.randrange(30, 90)) for c in background)
        draw.ellipse((x0 - r, y0 - r, x0 + r, y0 + r), fill=colour)
    font_size = max(10, min(width, height) // 24)
    font = ImageFont.load_default(size=font_size)
    chars = max(10, int(width / (font_size * 0.6)))
    lines = ["PLACEHOLDER - not a real image", ""]
    lines += textwrap.wrap(request.prompt, chars)[:8]
    lines += [
        "",
        f"provider: {provider}  model: {request.model or '-'}",
        f"{request.width}x{request.height}  steps: {request.steps or '-'}  "
        f"guidance: {request.guidance_scale if request.guidance_scale is not None else '-'}",
        f"sampler: {request.sampler or '-'} {request.scheduler}  seed: {seed}",
    ]
    y = font_size
    for line in lines:
        draw.text((font_size, y), line, fill=(255, 255, 255), font=font, stroke_width=1, stroke_fill=(0, 0, 0))
        y += int(font_size * 1.3)
    draw.rectangle((0, 0, width - 1, height - 1), outline=(255, 255, 255), width=max(2, font_size // 4))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)  # a stand-in: speed over size
    return buffer.getvalue()


def render_edit(request: GenerationRequest, seed: int) -> bytes:
    """The source at the asked size (or scaled by the factor), a refine's masked area (white)
    tinted magenta, and a label saying what was asked, so a person and a test both see it."""
    edit = request.edit
    with Image.open(io.BytesIO(edit.source.content)) as source:
        image = source.convert("RGB")
    if edit.mask is not None:
        with Image.open(io.BytesIO(edit.mask)) as mask:
            tint = Image.new("RGB", image.size, (255, 0, 255))
            image.paste(tint, mask=mask.convert("L").resize(image.size))
    if edit.scale:
        size = (round(image.width * edit.scale), round(image.height * edit.scale))
    else:
        size = (request.width, request.height)
    image = image.resize((max(1, min(MAX_SIDE * 2, size[0])), max(1, min(MAX_SIDE * 2, size[1]))))
    draw = ImageDraw.Draw(image)
    font_size = max(10, min(image.size) // 24)
    font = ImageFont.load_default(size=font_size)
    label = f"PLACEHOLDER {edit.operation}: {request.prompt}"[:80] + f"  seed: {seed}"
    draw.text((font_size, font_size), label, fill=(255, 255, 255), font=font, stroke_width=1, stroke_fill=(0, 0, 0))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()
