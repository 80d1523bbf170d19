"""What each OpenAI image model accepts, as data.

Model ids come and go faster than releases of this app (DALL·E 2 and 3 were retired on
2026-05-12, gpt-image-1 on 2026-10-23), so limits live in a table, not in code. An
operator extends or corrects it through the provider's ``models`` option; an entry
there is merged over the built-in one of the same id, and ``"base": "<model id>"``
copies another entry first (handy for an Azure deployment name)::

    BLOGIMAGES_PROVIDERS["openai"]["OPTIONS"]["models"] = {
        "my-azure-deployment": {"base": "gpt-image-2"},
        "gpt-image-2": {"quality": ["low", "medium"]},   # narrow what editors may pick
        "dall-e-3": {"retired": None},                   # a compatible server still has it
    }

Keys of an entry (all optional except a size rule or list):

``label``            shown to editors.
``retired``          ISO date; a retired model is refused before any request is sent.
``replacement``      what to use instead, named in that refusal.
``sizes``            fixed ``"WxH"`` sizes; a request is snapped to the nearest one.
``size_rule``        free sizes within ``multiple`` (both sides divisible by it),
                     ``min_side``, ``max_side``, ``min_pixels``, ``max_pixels`` and
                     ``max_aspect`` (long side / short side).
``auto_size``        whether ``extra["size"] = "auto"`` may be sent.
``n``                ``[min, max]`` images per call.
``quality``, ``background``, ``output_format``, ``style``, ``moderation``
                     allowed values; an empty list means the model takes no such parameter.
``translate``        ``{parameter: {old value: new value}}`` for values that legacy
                     settings carry (DALL·E 3's ``quality=hd``); ``""`` drops the value.
                     Each translation is recorded as an adjustment on the result.
``max_prompt``       longest prompt in characters.
``response_format``  sent as ``response_format`` (DALL·E only: GPT image models always
                     answer in base64 and reject the parameter).

These limits are our reading of the ``openai`` SDK's documentation (3.54) at the time
of writing; where it promises nothing (gpt-image-2.6) we list only the standard sizes.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ImproperlyConfigured

DEFAULT_MODEL = "gpt-image-2"

STANDARD_SIZES = ["1024x1024", "1536x1024", "1024x1536"]
GPT_QUALITY = ["auto", "low", "medium", "high"]
GPT_BACKGROUND = ["auto", "opaque", "transparent"]
# gif and svg exist but need preview access and are not images Pillow can store and thumbnail.
GPT_OUTPUT_FORMAT = ["png", "jpeg", "webp"]
# Old DALL·E values found in legacy settings: quality maps onto the GPT scale, style has
# no GPT counterpart (describe it in the prompt) and is dropped with a note.
GPT_TRANSLATE = {"quality": {"hd": "high", "standard": "medium"}, "style": {"vivid": "", "natural": ""}}

# Arbitrary WxH for gpt-image-2 and 2.5: sides divisible by 16, aspect within 3:1,
# at most 3840x2160 worth of pixels and 3840 on a side.
GPT2_SIZE_RULE = {"multiple": 16, "max_side": 3840, "max_pixels": 3840 * 2160, "max_aspect": 3.0}

_GPT_IMAGE = {
    "sizes": STANDARD_SIZES,
    "auto_size": True,
    "n": [1, 10],
    "quality": GPT_QUALITY,
    "background": GPT_BACKGROUND,
    "output_format": GPT_OUTPUT_FORMAT,
    "style": [],
    "moderation": ["auto", "low"],
    "translate": GPT_TRANSLATE,
    "max_prompt": 32000,
    "response_format": None,
}
# Both DALL·E models: no GPT-only parameters, answers in base64 only when asked.
_DALL_E = {
    "retired": "2026-05-12",
    "replacement": "gpt-image-2",
    "auto_size": False,
    "background": [],
    "output_format": [],
    "style": [],
    "moderation": [],
    "response_format": "b64_json",
}
_GPT2 = {**_GPT_IMAGE, "sizes": None, "size_rule": GPT2_SIZE_RULE}
_GPT25 = {**_GPT2, "quality": [*GPT_QUALITY, "xhigh", "max"]}

DEFAULT_MODELS: dict[str, dict[str, Any]] = {
    # --- current: the gpt-image-2 family -------------------------------------------------
    "gpt-image-2": {**_GPT2, "label": "GPT Image 2"},
    "gpt-image-2-2026-04-21": {**_GPT2, "label": "GPT Image 2 (2026-04-21 snapshot)"},
    "gpt-image-2.5-sunburst": {**_GPT25, "label": "GPT Image 2.5 Sunburst"},
    "gpt-image-2.5-sunburst-2026-09-08": {**_GPT25, "label": "GPT Image 2.5 Sunburst (2026-09-08 snapshot)"},
    "gpt-image-2.5-flare": {**_GPT25, "label": "GPT Image 2.5 Flare"},
    "gpt-image-2.5-flare-2026-09-08": {**_GPT25, "label": "GPT Image 2.5 Flare (2026-09-08 snapshot)"},
    "gpt-image-2.6-sunburst": {**_GPT_IMAGE, "label": "GPT Image 2.6 Sunburst"},
    "gpt-image-2.6-flare": {**_GPT_IMAGE, "label": "GPT Image 2.6 Flare"},
    # --- older but still served ------------------------------------------------------------
    "gpt-image-1.5": {**_GPT_IMAGE, "label": "GPT Image 1.5"},
    "gpt-image-1-mini": {**_GPT_IMAGE, "label": "GPT Image 1 mini"},
    "chatgpt-image-latest": {**_GPT_IMAGE, "label": "ChatGPT image (latest)"},
    # --- retired: kept so that old settings get a clear refusal, not a 404 from the API ---
    "gpt-image-1": {
        **_GPT_IMAGE,
        "label": "GPT Image 1",
        "retired": "2026-10-23",
        "replacement": "gpt-image-2.5-sunburst or gpt-image-2.5-flare",
    },
    "dall-e-3": {
        **_DALL_E,
        "label": "DALL·E 3",
        "sizes": ["1024x1024", "1792x1024", "1024x1792"],
        "n": [1, 1],
        "quality": ["standard", "hd"],
        "style": ["vivid", "natural"],
        "max_prompt": 4000,
    },
    "dall-e-2": {
        **_DALL_E,
        "label": "DALL·E 2",
        "sizes": ["256x256", "512x512", "1024x1024"],
        "n": [1, 10],
        "quality": ["standard"],
        "max_prompt": 1000,
    },
}

CHOICE_KEYS = ("quality", "background", "output_format", "style", "moderation")
ENTRY_KEYS = {
    "label",
    "retired",
    "replacement",
    "sizes",
    "size_rule",
    "auto_size",
    "n",
    *CHOICE_KEYS,
    "translate",
    "max_prompt",
    "response_format",
    "base",
}
SIZE_RULE_KEYS = {"multiple", "min_side", "max_side", "min_pixels", "max_pixels", "max_aspect"}


@dataclass(frozen=True)
class ModelCaps:
    """One model's limits, read from a table entry."""

    model: str
    label: str = ""
    retired: str | None = None
    replacement: str = ""
    sizes: tuple[tuple[int, int], ...] = ()
    size_rule: dict[str, Any] | None = None
    auto_size: bool = False
    n: tuple[int, int] = (1, 1)
    quality: tuple[str, ...] = ()
    background: tuple[str, ...] = ()
    output_format: tuple[str, ...] = ()
    style: tuple[str, ...] = ()
    moderation: tuple[str, ...] = ()
    translate: dict[str, dict[str, str]] | None = None
    max_prompt: int | None = None
    response_format: str | None = None

    def allowed(self, parameter: str) -> tuple[str, ...]:
        return getattr(self, parameter)

    def snap_size(self, width: int, height: int) -> tuple[int, int, str]:
        """The allowed size nearest to ``width`` x ``height``, and why it changed ("" if not).

        The reason reads after the model id: "gpt-image-2 needs sides divisible by 16".
        """
        if self.size_rule:
            return _snap_to_rule(width, height, self.size_rule)
        if not self.sizes:
            return width, height, ""
        if (width, height) in self.sizes:
            return width, height, ""
        # Keep the shape first (a wide image stays wide), then the size.
        want_aspect, want_area = math.log(width / height), math.log(width * height)
        best = min(
            self.sizes,
            key=lambda s: (round(abs(math.log(s[0] / s[1]) - want_aspect), 6), abs(math.log(s[0] * s[1]) - want_area)),
        )
        allowed = ", ".join(f"{w}x{h}" for w, h in self.sizes)
        return best[0], best[1], f"only makes {allowed}"


def _snap_to_rule(width: int, height: int, rule: dict[str, Any]) -> tuple[int, int, str]:
    multiple = int(rule.get("multiple") or 1)
    max_aspect = float(rule.get("max_aspect") or 0)
    max_side = int(rule.get("max_side") or 0)
    min_side = int(rule.get("min_side") or 0)
    max_pixels = int(rule.get("max_pixels") or 0)
    min_pixels = int(rule.get("min_pixels") or 0)
    reasons = []
    w, h = float(width), float(height)
    if max_aspect and max(w, h) / min(w, h) > max_aspect:
        if w > h:
            w = h * max_aspect
        else:
            h = w * max_aspect
        reasons.append(f"an aspect ratio of at most {max_aspect:g}:1")
    scale = 1.0
    if max_side and max(w, h) > max_side:
        scale = min(scale, max_side / max(w, h))
    if max_pixels and w * h > max_pixels:
        scale = min(scale, math.sqrt(max_pixels / (w * h)))
    if scale < 1:
        reasons.append(f"at most {max_side or '-'} px a side and {max_pixels or '-'} pixels")
    if min_side and min(w, h) < min_side:
        scale = max(scale, min_side / min(w, h))
        reasons.append(f"at least {min_side} px a side")
    if min_pixels and w * h * scale * scale < min_pixels:
        scale = max(scale, math.sqrt(min_pixels / (w * h)))
        reasons.append(f"at least {min_pixels} pixels")
    w, h = w * scale, h * scale

    def fit(value: float, upper: int) -> int:
        snapped = max(multiple, round(value / multiple) * multiple)
        if upper and snapped > upper:
            snapped = upper // multiple * multiple
        return snapped

    new_w, new_h = fit(w, max_side), fit(h, max_side)
    # Rounding can push the area or the aspect just past a limit; step the longer side down.
    while (max_pixels and new_w * new_h > max_pixels) or (
        max_aspect and max(new_w, new_h) / min(new_w, new_h) > max_aspect
    ):
        if new_w >= new_h:
            new_w -= multiple
        else:
            new_h -= multiple
    if (new_w, new_h) == (width, height):
        return width, height, ""
    if multiple > 1 and (width % multiple or height % multiple):
        reasons.append(f"sides divisible by {multiple}")
    return new_w, new_h, "needs " + " and ".join(reasons or ["a different size"])


def parse_size(value: str) -> tuple[int, int]:
    try:
        w, h = str(value).lower().replace("×", "x").split("x")
        return int(w), int(h)
    except ValueError:
        raise ValueError(f"{value!r} is not a WIDTHxHEIGHT size") from None


def build_table(overrides: dict[str, Any] | None, *, alias: str = "openai") -> dict[str, ModelCaps]:
    """The built-in table with the operator's ``models`` option merged over it."""
    where = f"BLOGIMAGES_PROVIDERS[{alias!r}]['OPTIONS']['models']"
    if overrides is not None and not isinstance(overrides, dict):
        raise ImproperlyConfigured(f"{where} must be a dict of {{model id: {{limits}}}}.")
    raw: dict[str, dict[str, Any]] = copy.deepcopy(DEFAULT_MODELS)
    for model, entry in (overrides or {}).items():
        if not isinstance(entry, dict):
            raise ImproperlyConfigured(f"{where}[{model!r}] must be a dict of limits.")
        unknown = sorted(set(entry) - ENTRY_KEYS)
        if unknown:
            raise ImproperlyConfigured(
                f"{where}[{model!r}]: unknown key(s) {', '.join(unknown)}; "
                f"known keys are {', '.join(sorted(ENTRY_KEYS))}."
            )
        base = entry.get("base")
        if base is not None:
            if base not in raw:
                raise ImproperlyConfigured(f"{where}[{model!r}]: base {base!r} is not a known model.")
            merged = {**copy.deepcopy(raw[base]), "label": model}
        else:
            merged = copy.deepcopy(raw.get(model, {}))
        merged.update({k: v for k, v in entry.items() if k != "base"})
        if "size_rule" in entry and "sizes" not in entry:
            merged["sizes"] = None  # a rule given alone replaces a fixed list, not joins it
        if "sizes" in entry and "size_rule" not in entry:
            merged["size_rule"] = None
        raw[model] = merged
    return {model: _caps(model, entry, where) for model, entry in raw.items()}


def _caps(model: str, entry: dict[str, Any], where: str) -> ModelCaps:
    def bad(message: str) -> ImproperlyConfigured:
        return ImproperlyConfigured(f"{where}[{model!r}]: {message}")

    try:
        sizes = tuple(parse_size(s) for s in entry.get("sizes") or ())
    except ValueError as exc:
        raise bad(f"sizes: {exc}.") from None
    rule = entry.get("size_rule")
    if rule is not None:
        if not isinstance(rule, dict) or set(rule) - SIZE_RULE_KEYS:
            raise bad(f"size_rule must be a dict with keys from {', '.join(sorted(SIZE_RULE_KEYS))}.")
    if not sizes and not rule:
        raise bad("give 'sizes' (a list of 'WxH') or a 'size_rule'.")
    n = entry.get("n", [1, 1])
    if not (isinstance(n, (list, tuple)) and len(n) == 2 and 1 <= int(n[0]) <= int(n[1])):
        raise bad(f"n must be [min, max], not {n!r}.")
    choices = {}
    for key in CHOICE_KEYS:
        values = entry.get(key) or ()
        if isinstance(values, str) or not all(isinstance(v, str) for v in values):
            raise bad(f"{key} must be a list of strings.")
        choices[key] = tuple(values)
    return ModelCaps(
        model=model,
        label=entry.get("label") or model,
        retired=entry.get("retired") or None,
        replacement=entry.get("replacement") or "",
        sizes=sizes,
        size_rule=dict(rule) if rule else None,
        auto_size=bool(entry.get("auto_size")),
        n=(int(n[0]), int(n[1])),
        translate=entry.get("translate") or None,
        max_prompt=entry.get("max_prompt"),
        response_format=entry.get("response_format") or None,
        **choices,
    )
