"""What each OpenAI image model accepts, and when OpenAI shuts it down, as data.

Model ids come and go faster than releases of this app (DALL·E 2 and 3 were retired on
2026-05-12, gpt-image-1 on 2026-10-23, gpt-image-1.5, gpt-image-1-mini and
chatgpt-image-latest on 2026-12-01), so limits and dates live in a table, not in code.
The dates are also read live: :mod:`.lifecycle` merges the ``shutdown_date`` that
``GET /v1/models`` reports over the ``retired`` dates here. An operator extends or
corrects the table through the provider's ``models`` option; an entry there is merged
over the built-in one of the same id, and ``"base": "<model id>"`` copies another entry
first (handy for an Azure deployment name)::

    BLOGIMAGES_PROVIDERS["openai"]["OPTIONS"]["models"] = {
        "my-azure-deployment": {"base": "gpt-image-2"},
        "gpt-image-2": {"quality": ["low", "medium"]},   # narrow what editors may pick
        "dall-e-3": {"retired": None},                   # a compatible server still has it
    }

Keys of an entry (all optional except a size rule or list):

``label``            shown to editors.
``retired``          ISO date OpenAI shuts the model down. From that day on a request for
                     it is refused before anything is sent (or swapped for the successor
                     in ``BLOGIMAGES_OPENAI_MODEL_REPLACEMENTS``); before it, checks and
                     the status page warn. ``GET /v1/models`` overrides it when it reports one.
``replacement``      what to use instead, named in that refusal and in the warnings.
``sizes``            fixed ``"WxH"`` sizes; a request is snapped to the nearest one.
``size_rule``        free sizes within ``multiple`` (both sides divisible by it),
                     ``min_side``, ``max_side``, ``min_pixels``, ``max_pixels`` and
                     ``max_aspect`` (long side / short side).
``auto_size``        whether ``extra["size"] = "auto"`` may be sent.
``n``                ``[min, max]`` images per call.
``quality``, ``background``, ``output_format``, ``style``, ``moderation``, ``complexity``
                     allowed values; an empty list means the model takes no such parameter.
``translate``        ``{parameter: {old value: new value}}`` for values that legacy
                     settings carry (DALL·E 3's ``quality=hd``); ``""`` drops the value.
                     Each translation is recorded as an adjustment on the result.
``max_prompt``       longest prompt in characters.
``response_format``  sent as ``response_format`` (DALL·E only: GPT image models always
                     answer in base64 and reject the parameter).
``edits``            whether ``POST /v1/images/edits`` takes the model (refine, variations
                     and new prompts with a reference; see ``OpenAIImagesProvider``).
``input_fidelity``   the ``input_fidelity`` values an edit may send; empty: the model takes
                     none, and a refine that asks for a fidelity is refused.
``partial_images``   the most partial images an edit may stream (0: not streamed).
``max_edit_prompt``  longest edit instruction in characters (``max_prompt`` when not given).

Sources, checked on 2026-12-02 (each entry below names the ones it rests on):

[SDK]      the ``openai`` Python SDK 3.57, ``openai/types/image_generate_params.py`` and
           ``openai/types/image_model.py`` (generated from OpenAI's OpenAPI spec; the same
           text is the API reference, https://developers.openai.com/api/reference/resources/images/methods/generate).
[DEPR]     OpenAI's deprecations page, https://developers.openai.com/api/docs/deprecations
           ("Upcoming deprecations" table: shutdown date, recommended replacement).
[GUIDE]    OpenAI's image generation guide, https://developers.openai.com/api/docs/guides/image-generation
           ("Size and quality options", as of 2026-07-27: gpt-image-2's size constraints).
[PROMPT26] OpenAI's GPT Image 2.6 prompting guide,
           https://developers.openai.com/api/docs/guides/image-prompting?model=gpt-image-2.6
           (Flare and Sunburst; both support transparent backgrounds; complexity exists).
[EDIT]     the same SDK's ``openai/types/image_edit_params.py`` (``images.edit``): the models the
           edits endpoint takes (the GPT image models, ``gpt-image-2.6-*`` and
           ``chatgpt-image-latest`` included); ``input_fidelity``: "Supports high and low on
           gpt-image-1.5; gpt-image-1-mini supports only low. For gpt-image-2, omit this
           parameter"; ``partial_images``: "Value must be between 0 and 3"; prompt: "The
           maximum length is 32000 characters for the GPT image models"; mask: "a valid PNG
           file, less than 4MB, and have the same dimensions as image"; image: "png, webp,
           or jpg file less than 50MB ... up to 16 images".
[DALLE]    https://developers.openai.com/api/docs/models/dall-e-2 and .../dall-e-3 ("has been
           deprecated and removed from the API. We recommend GPT-Image-2.5 Sunburst").
[3P-26]    not OpenAI's own words: https://docs.comfy.org/built-in-nodes/OpenAIGPTImageNodeV3
           (2.6 and 2.5 share size limits: multiples of 16, long edge <= 3840, aspect <= 3:1,
           655,360 to 8,294,400 pixels; complexity offered for 2.6 only), https://apidog.com/blog/gpt-image-2-6-api/
           ("built from OpenAI's docs on November 5, 2026": quality low..max, complexity
           low/medium/high, high when omitted), https://wavespeed.ai/gpt-image-2-6-api.
           Where an entry rests on these alone, its comment says "unverified".
"""

from __future__ import annotations

import copy
import datetime
import math
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ImproperlyConfigured

DEFAULT_MODEL = "gpt-image-2"

#: Where OpenAI lists shutdowns; named in refusals for a model with no recorded successor.
DEPRECATIONS_URL = "https://developers.openai.com/api/docs/deprecations"

# [SDK] size: "The standard sizes 1024x1024, 1536x1024, and 1024x1536 are supported by the
# GPT image models; auto is supported for models that allow automatic sizing."
STANDARD_SIZES = ["1024x1024", "1536x1024", "1024x1536"]
# [SDK] quality: "high, medium and low are supported for the GPT image models"; auto is the default.
GPT_QUALITY = ["auto", "low", "medium", "high"]
# [SDK] background: transparent, opaque or auto; "When using transparent, set the output
# format to png or webp" (checked in the provider). For gpt-image-2 and its 2026-04-21
# snapshot transparency "is in preview" [SDK]; [GUIDE] of July said it was not supported.
GPT_BACKGROUND = ["auto", "opaque", "transparent"]
# [SDK] output_format png, webp, jpeg, gif, svg. gif and svg need preview access ("Requires
# access to the GIF preview"), and are not images Pillow can store and thumbnail: left out.
GPT_OUTPUT_FORMAT = ["png", "jpeg", "webp"]
# [SDK] moderation: "Must be either low for less restrictive filtering or auto (default value)."
GPT_MODERATION = ["auto", "low"]
# [SDK] complexity: low, medium, high, "Computation spent planning the image, independently
# of rendering quality"; the SDK does not say which models take it. [PROMPT26] documents it
# for GPT Image 2.6; [3P-26]: not offered for 2.5, "high" when omitted. gpt-image-2 and 2.5:
# unverified, so not allowed here (an operator can add it under the 'models' option).
GPT26_COMPLEXITY = ["low", "medium", "high"]
# Old DALL·E values found in legacy settings: quality maps onto the GPT scale, style has
# no GPT counterpart ([SDK] style: "Unsupported for GPT image models; describe the desired
# style in the prompt instead") and is dropped with a note.
GPT_TRANSLATE = {"quality": {"hd": "high", "standard": "medium"}, "style": {"vivid": "", "natural": ""}}

# [GUIDE] "gpt-image-2 accepts any resolution in the size parameter when it satisfies the
# constraints below": maximum edge length <= 3840px, both edges multiples of 16px, long edge
# to short edge ratio not above 3:1, total pixels at least 655,360 and no more than
# 8,294,400 (3840x2160). [SDK] says the same for gpt-image-2, its 2026-04-21 snapshot and
# the 2.5 models and their 2026-09-08 snapshots ("Resolutions above 2560x1440 are
# experimental, and the maximum supported resolution is 3840x2160"). For 2.6: [3P-26] only.
GPT2_SIZE_RULE = {
    "multiple": 16,
    "max_side": 3840,
    "min_pixels": 655_360,
    "max_pixels": 3840 * 2160,
    "max_aspect": 3.0,
}

_GPT_IMAGE = {
    "sizes": STANDARD_SIZES,
    "auto_size": True,
    "n": [1, 10],  # [SDK] n: "Must be between 1 and 10."
    "quality": GPT_QUALITY,
    "background": GPT_BACKGROUND,
    "output_format": GPT_OUTPUT_FORMAT,
    "style": [],
    "moderation": GPT_MODERATION,
    "complexity": [],
    "translate": GPT_TRANSLATE,
    "max_prompt": 32000,  # [SDK] prompt: "The maximum length is 32000 characters."
    "response_format": None,  # [SDK] "Unsupported for GPT image models, which always return base64"
    "edits": True,  # [EDIT] every GPT image model
    "input_fidelity": [],  # [EDIT] "For gpt-image-2, omit this parameter"; 2.5 and 2.6: not said, so none
    "partial_images": 3,  # [EDIT] "between 0 and 3"
    "max_edit_prompt": 32000,  # [EDIT]
}
# Both DALL·E models: no GPT-only parameters, answers in base64 only when asked.
_DALL_E = {
    # [SDK] "dall-e-2", "dall-e-3": "This model was retired on May 12, 2026."
    "retired": "2026-05-12",
    # [SDK] "Use a GPT image model instead": gpt-image-2, current and the provider's default.
    # [DALLE] pages now recommend GPT-Image-2.5 Sunburst; the [DEPR] notice of 2025-11-14 named
    # gpt-image-1 and gpt-image-1-mini, both shut down since.
    "replacement": "gpt-image-2",
    "auto_size": False,
    "background": [],
    "output_format": [],
    "style": [],
    "moderation": [],
    "complexity": [],
    "response_format": "b64_json",
    "edits": False,  # dall-e-3 never edited; dall-e-2's edits went with it (retired)
    "input_fidelity": [],
    "partial_images": 0,
}
# [DEPR] Dec 1, 2026: gpt-image-1-mini; gpt-image-1.5, gpt-image-1.5-2025-12-16;
# chatgpt-image-latest. Deprecated (notice Jun 2, 2026), recommended replacement
# "gpt-image-2.6-sunburst or gpt-image-2.6-flare". (A dev.to summary of October names the
# 2.5 models instead; OpenAI's page is what is followed here.)
_FIDELITY = ["low", "high"]
_SHUT_DOWN_2026_12_01 = {"retired": "2026-12-01", "replacement": "gpt-image-2.6-sunburst or gpt-image-2.6-flare"}
_GPT2 = {**_GPT_IMAGE, "sizes": None, "size_rule": GPT2_SIZE_RULE}
# [SDK] quality: "gpt-image-2.5-sunburst and gpt-image-2.5-flare, including their 2026-09-08
# snapshots, also support xhigh and max."
_GPT25 = {**_GPT2, "quality": [*GPT_QUALITY, "xhigh", "max"]}
# gpt-image-2.6: quality low..max, the size rule of 2.5 and complexity: [3P-26], unverified
# in OpenAI's own text (the SDK lists the 2.6 ids but names only 2 and 2.5 in its size and
# quality notes); complexity and transparent backgrounds: [PROMPT26].
_GPT26 = {**_GPT25, "complexity": GPT26_COMPLEXITY}

DEFAULT_MODELS: dict[str, dict[str, Any]] = {
    # --- current: the gpt-image-2 family ([SDK] ImageModel; no shutdown announced in [DEPR]) ---
    "gpt-image-2": {**_GPT2, "label": "GPT Image 2"},
    "gpt-image-2-2026-04-21": {**_GPT2, "label": "GPT Image 2 (2026-04-21 snapshot)"},
    "gpt-image-2.5-sunburst": {**_GPT25, "label": "GPT Image 2.5 Sunburst"},
    "gpt-image-2.5-sunburst-2026-09-08": {**_GPT25, "label": "GPT Image 2.5 Sunburst (2026-09-08 snapshot)"},
    "gpt-image-2.5-flare": {**_GPT25, "label": "GPT Image 2.5 Flare"},
    "gpt-image-2.5-flare-2026-09-08": {**_GPT25, "label": "GPT Image 2.5 Flare (2026-09-08 snapshot)"},
    "gpt-image-2.6-sunburst": {**_GPT26, "label": "GPT Image 2.6 Sunburst"},
    "gpt-image-2.6-flare": {**_GPT26, "label": "GPT Image 2.6 Flare"},
    # --- shut down: kept so that old settings get a clear refusal, not a 404 from the API ---
    # [EDIT] input_fidelity: high and low on gpt-image-1.5, only low on gpt-image-1-mini.
    "gpt-image-1.5": {**_GPT_IMAGE, **_SHUT_DOWN_2026_12_01, "label": "GPT Image 1.5", "input_fidelity": _FIDELITY},
    "gpt-image-1.5-2025-12-16": {
        **_GPT_IMAGE,
        **_SHUT_DOWN_2026_12_01,
        "label": "GPT Image 1.5 (2025-12-16)",
        "input_fidelity": _FIDELITY,
    },
    "gpt-image-1-mini": {**_GPT_IMAGE, **_SHUT_DOWN_2026_12_01, "label": "GPT Image 1 mini", "input_fidelity": ["low"]},
    "chatgpt-image-latest": {**_GPT_IMAGE, **_SHUT_DOWN_2026_12_01, "label": "ChatGPT image (latest)"},
    "gpt-image-1": {
        **_GPT_IMAGE,
        "label": "GPT Image 1",
        # [SDK] "gpt-image-1 was shut down on October 23, 2026. Use gpt-image-2.5-sunburst or
        # gpt-image-2.5-flare instead."
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

CHOICE_KEYS = ("quality", "background", "output_format", "style", "moderation", "complexity")
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
    "edits",
    "input_fidelity",
    "partial_images",
    "max_edit_prompt",
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
    complexity: tuple[str, ...] = ()
    translate: dict[str, dict[str, str]] | None = None
    max_prompt: int | None = None
    response_format: str | None = None
    edits: bool = False
    input_fidelity: tuple[str, ...] = ()
    partial_images: int = 0
    max_edit_prompt: int | None = None

    @property
    def edit_prompt_limit(self) -> int | None:
        return self.max_edit_prompt or self.max_prompt

    def allowed(self, parameter: str) -> tuple[str, ...]:
        return getattr(self, parameter)

    @property
    def shutdown(self) -> datetime.date | None:
        """The table's shutdown date (``retired``); :mod:`.lifecycle` merges the live one over it."""
        return datetime.date.fromisoformat(self.retired) if self.retired else None

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
    # Rounding can push the area or the aspect just past a limit; step the longer side down
    # (or, below the smallest area, the shorter side up).
    while (max_pixels and new_w * new_h > max_pixels) or (
        max_aspect and max(new_w, new_h) / min(new_w, new_h) > max_aspect
    ):
        if new_w >= new_h:
            new_w -= multiple
        else:
            new_h -= multiple
    while min_pixels and new_w * new_h < min_pixels:
        if new_w <= new_h:
            new_w += multiple
        else:
            new_h += multiple
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
    retired = entry.get("retired") or None
    if retired is not None:
        try:
            datetime.date.fromisoformat(str(retired))
        except ValueError:
            raise bad(f"retired must be an ISO date like '2026-12-01' (or None), not {retired!r}.") from None
    n = entry.get("n", [1, 1])
    if not (isinstance(n, (list, tuple)) and len(n) == 2 and 1 <= int(n[0]) <= int(n[1])):
        raise bad(f"n must be [min, max], not {n!r}.")
    choices = {}
    for key in CHOICE_KEYS:
        values = entry.get(key) or ()
        if isinstance(values, str) or not all(isinstance(v, str) for v in values):
            raise bad(f"{key} must be a list of strings.")
        choices[key] = tuple(values)
    fidelity = entry.get("input_fidelity") or ()
    if isinstance(fidelity, str) or not all(value in ("low", "high") for value in fidelity):
        raise bad(f"input_fidelity must be a list of 'low' and/or 'high', not {fidelity!r}.")
    partial = entry.get("partial_images", 0) or 0
    if isinstance(partial, bool) or not isinstance(partial, int) or not 0 <= partial <= 3:
        raise bad(f"partial_images must be a whole number from 0 to 3, not {partial!r}.")
    return ModelCaps(
        model=model,
        label=entry.get("label") or model,
        retired=str(retired) if retired else None,
        replacement=entry.get("replacement") or "",
        sizes=sizes,
        size_rule=dict(rule) if rule else None,
        auto_size=bool(entry.get("auto_size")),
        n=(int(n[0]), int(n[1])),
        translate=entry.get("translate") or None,
        max_prompt=entry.get("max_prompt"),
        response_format=entry.get("response_format") or None,
        edits=bool(entry.get("edits")),
        input_fidelity=tuple(fidelity),
        partial_images=partial,
        max_edit_prompt=entry.get("max_edit_prompt"),
        **choices,
    )
