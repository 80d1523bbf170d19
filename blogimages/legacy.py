"""Reading an older system's freeform image settings ("1024x1024, 30 steps, cfg 7.5").

:func:`parse_legacy_text` turns one legacy text into the structured fields of
:class:`~blogimages.models.ImageSetting`, the understood extras (``extra_settings``) and
one warning sentence per thing it could not apply. It never raises on bad input and
never touches the database: ``blogimages_migrate_settings`` and migration 0002 decide
what to write.

Stable API (migration ``0002_structure_legacy_settings`` imports it, so keep it):
``parse_legacy_text(text) -> LegacyParse`` with ``.fields``, ``.extra_settings``,
``.warnings`` and ``.status``.

The grammar is documented in the README ("Migrating legacy settings"); in short:
separators are commas, semicolons, newlines, ``|``, `` - `` and dashes; a setting is
``key: value``, ``key=value``, ``key value``, ``value key`` ("30 steps"), ``--key value``
or a JSON object; sizes are ``WxH``; aspects (``16:9``, ``portrait``) give a size when
no explicit one does; A1111 sampler names become ComfyUI names; invalid or conflicting
values are left unset with a warning; whatever no rule reads is kept in
``extra_settings["unparsed"]``.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from . import limits
from .models import ImageSetting
from .samplers import FROM_A1111

__all__ = ["LegacyParse", "parse_legacy_text", "STRUCTURED_FIELDS", "ASPECT_SIZES", "A1111_SAMPLERS"]

#: The ImageSetting fields the parser may fill, in the order ``LegacyParse.fields`` lists
#: them: the model last.
STRUCTURED_FIELDS = (*(name for name in ImageSetting.STRUCTURED_FIELDS if name != "model"), "model")

#: Aspect ratio -> the size it stands for when no explicit size is given (SDXL buckets).
ASPECT_SIZES: dict[tuple[int, int], tuple[int, int]] = {
    (1, 1): (1024, 1024),
    (16, 9): (1344, 768),
    (9, 16): (768, 1344),
    (3, 2): (1216, 832),
    (2, 3): (832, 1216),
    (4, 3): (1152, 896),
    (3, 4): (896, 1152),
    (21, 9): (1536, 640),
}
ASPECT_WORDS: dict[str, tuple[int, int]] = {"square": (1, 1), "landscape": (3, 2), "portrait": (2, 3)}

#: Automatic1111 sampler names (lower case) -> ComfyUI sampler names: the app's one table.
A1111_SAMPLERS: dict[str, str] = FROM_A1111
#: ComfyUI's own sampler names; they pass through unchanged.
COMFYUI_SAMPLERS = frozenset(
    {
        "euler",
        "euler_cfg_pp",
        "euler_ancestral",
        "euler_ancestral_cfg_pp",
        "heun",
        "heunpp2",
        "dpm_2",
        "dpm_2_ancestral",
        "lms",
        "dpm_fast",
        "dpm_adaptive",
        "dpmpp_2s_ancestral",
        "dpmpp_2s_ancestral_cfg_pp",
        "dpmpp_sde",
        "dpmpp_sde_gpu",
        "dpmpp_2m",
        "dpmpp_2m_cfg_pp",
        "dpmpp_2m_sde",
        "dpmpp_2m_sde_gpu",
        "dpmpp_3m_sde",
        "dpmpp_3m_sde_gpu",
        "ddpm",
        "lcm",
        "ipndm",
        "ipndm_v",
        "deis",
        "res_multistep",
        "res_multistep_cfg_pp",
        "gradient_estimation",
        "er_sde",
        "seeds_2",
        "seeds_3",
        "sa_solver",
        "ddim",
        "uni_pc",
        "uni_pc_bh2",
    }
)
#: ComfyUI scheduler names; A1111's "Schedule type" values normalise onto them.
COMFYUI_SCHEDULERS = frozenset(
    {
        "normal",
        "karras",
        "exponential",
        "sgm_uniform",
        "simple",
        "ddim_uniform",
        "beta",
        "linear_quadratic",
        "kl_optimal",
    }
)
# A1111 writes these where ComfyUI would simply use its default.
DEFAULT_SCHEDULER_WORDS = frozenset({"automatic", "auto", "default"})
RANDOM_SEED_WORDS = frozenset({"-1", "random", "rand", "randomize", "randomized", "none", "any"})

# --- keys -------------------------------------------------------------------------------
# Each target has a kind that says how its value is read:
#   int, float: a number; dims: WxH; aspect: 16:9 or a word; seed: a number or "random";
#   sampler / scheduler: a known name; str: text up to the next key; eol: text to the end
#   of the line; lora: name[:strength].
KINDS: dict[str, str] = {
    "width": "int",
    "height": "int",
    "size": "dims",
    "aspect": "aspect",
    "steps": "int",
    "guidance_scale": "float",
    "sampler": "sampler",
    "scheduler": "scheduler",
    "seed": "seed",
    "negative_prompt": "eol",
    "model": "str",
    # extras
    "prompt": "eol",
    "quality": "str",
    "style": "str",
    "lora": "lora",
    "denoise": "float",
    "clip_skip": "int",
    "batch_size": "int",
    "vae": "str",
    "model_hash": "str",
    "vae_hash": "str",
    "lora_hashes": "str",
    "hires_upscale": "float",
    "hires_upscaler": "str",
    "hires_steps": "int",
    "face_restoration": "str",
    "stylize": "int",
    "chaos": "int",
    "version": "str",
    "eta": "float",
}

# Normalised spelling (lower case, runs of space/_/- as "_") -> target.
KEY_SYNONYMS: dict[str, str] = {
    "width": "width",
    "w": "width",
    "height": "height",
    "h": "height",
    "size": "size",
    "resolution": "size",
    "dimensions": "size",
    "dims": "size",
    "image_size": "size",
    "ar": "aspect",
    "aspect": "aspect",
    "aspect_ratio": "aspect",
    "steps": "steps",
    "step": "steps",
    "sampling_steps": "steps",
    "num_inference_steps": "steps",
    "num_steps": "steps",
    "cfg": "guidance_scale",
    "cfg_scale": "guidance_scale",
    "cfgscale": "guidance_scale",
    "guidance": "guidance_scale",
    "guidance_scale": "guidance_scale",
    "sampler": "sampler",
    "sampler_name": "sampler",
    "sampling_method": "sampler",
    "scheduler": "scheduler",
    "schedule_type": "scheduler",
    "seed": "seed",
    "neg": "negative_prompt",
    "negative": "negative_prompt",
    "negative_prompt": "negative_prompt",
    "model": "model",
    "model_name": "model",
    "checkpoint": "model",
    "ckpt": "model",
    "base_model": "model",
    "prompt": "prompt",
    "positive_prompt": "prompt",
    "quality": "quality",
    "style": "style",
    "lora": "lora",
    "loras": "lora",
    "denoise": "denoise",
    "denoising": "denoise",
    "denoising_strength": "denoise",
    "clip_skip": "clip_skip",
    "batch_size": "batch_size",
    "batch": "batch_size",
    "n": "batch_size",
    "batch_count": "batch_size",
    "vae": "vae",
    "model_hash": "model_hash",
    "vae_hash": "vae_hash",
    "lora_hashes": "lora_hashes",
    "hires_upscale": "hires_upscale",
    "hires_upscaler": "hires_upscaler",
    "hires_steps": "hires_steps",
    "face_restoration": "face_restoration",
    "stylize": "stylize",
    "chaos": "chaos",
    "version": "version",
    "eta": "eta",
}
# Short Midjourney-style flags, only read with a leading "--" ("--s 750" but never "s 750").
FLAG_SYNONYMS: dict[str, str] = {"s": "stylize", "c": "chaos", "v": "version", "q": "quality", "no": "negative_prompt"}
# Kinds that may be written "key value" without ":" or "="; their value is checked, so
# "the steps of the header" is not misread.
WEAK_KINDS = frozenset({"int", "float", "dims", "aspect", "seed", "sampler", "scheduler"})
# Targets that may be written "value key" ("30 steps", "7.5 cfg").
VALUE_FIRST = frozenset({"steps", "guidance_scale", "clip_skip", "denoise"})

# Validation of what lands in the structured fields and numeric extras: (min, max).
# The structured fields are checked by blogimages.limits, as the admin, forms and API check them.
RANGES: dict[str, tuple[float, float]] = {
    "denoise": (0, 1),
    "clip_skip": (1, 24),
    "batch_size": (1, 64),
    "hires_steps": (0, 200),
    "hires_upscale": (1, 8),
}
MAX_LENGTHS = {"model": 200, "sampler": 64, "scheduler": 64}


def _norm_key(key: str) -> str:
    return re.sub(r"[\s_\-]+", "_", key.strip().strip("\"'").lower())


def _key_pattern(keys: list[str]) -> str:
    # Longest first so "cfg scale" wins over "cfg" and "height" over "h"; a multi-word
    # key may be written with spaces, underscores or hyphens.
    parts = [r"[\s_\-]+".join(re.escape(p) for p in k.split("_")) for k in sorted(keys, key=len, reverse=True)]
    return "|".join(parts)


_KEY_ALT = _key_pattern(list(KEY_SYNONYMS))
_FLAG_ALT = _key_pattern(list(FLAG_SYNONYMS) + list(KEY_SYNONYMS))
_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)"

RE_LABEL = re.compile(
    rf"(?P<flag>--)?(?P<key>{_FLAG_ALT})(?![A-Za-z_])"
    rf"(?P<sep>[\"']?[ \t]*[:=][ \t]*|[ \t]+|(?=[-+.\d]))",
    re.I,
)
RE_DIMS = re.compile(r"(?P<w>\d{1,6})[ \t]*(?:px)?[ \t]*[x×*][ \t]*(?P<h>\d{1,6})(?:[ \t]*px)?(?![\w.])", re.I)
RE_RATIO = re.compile(r"(?P<a>\d{1,3}(?:\.\d+)?):(?P<b>\d{1,3}(?:\.\d+)?)(?![\w.:])")
RE_NUMBER = re.compile(rf"(?P<num>{_NUM})(?:[ \t]*px)?(?![\w.])", re.I)
RE_VALUE_FIRST = re.compile(
    rf"(?P<num>{_NUM})[ \t]*(?P<key>{_key_pattern([k for k, t in KEY_SYNONYMS.items() if t in VALUE_FIRST])})"
    r"(?![A-Za-z0-9_])",
    re.I,
)
_SAMPLER_ALT = "|".join(
    r"[ \t]+".join(re.escape(p) for p in name.split(" ")) for name in sorted(A1111_SAMPLERS, key=len, reverse=True)
)
_COMFY_ALT = "|".join(re.escape(n) for n in sorted(COMFYUI_SAMPLERS, key=len, reverse=True))
_SCHED_SUFFIX = r"(?:[ \t]+(?P<sched>karras|exponential|sgm[ \t_]uniform))?"
RE_SAMPLER = re.compile(rf"(?P<name>{_SAMPLER_ALT}|{_COMFY_ALT}){_SCHED_SUFFIX}(?![\w+])", re.I)
RE_ASPECT_WORD = re.compile(r"(?P<word>square|landscape|portrait)(?![\w])", re.I)
RE_SCHED_WORD = re.compile(r"(?P<word>karras|exponential|sgm[ \t_]uniform)(?![\w])", re.I)
RE_RANDOM_VALUE = re.compile(r"(?:-1|random|rand|randomi[sz]ed?|none|any)(?![\w])", re.I)
RE_RANDOM_SEED = re.compile(r"random[ \t]+seed(?![\w])", re.I)
RE_LORA_TAG = re.compile(r"<lora:(?P<name>[^:>]+)(?::(?P<strength>[^>]*))?>", re.I)
# Characters that carry no meaning between settings: brackets, quotes, stray bullets.
NOISE = "()[]{}\"'`"
RE_LEFTOVER = re.compile(r"[^\s()\[\]{}\"'`]+")
# Where a "str" value ends: before the next "key:"/"key=" or "--flag".
RE_NEXT_LABEL = re.compile(rf"\s+(?=--[A-Za-z]|(?:{_KEY_ALT})[\"']?[ \t]*[:=])", re.I)
# "key: value" labels whose value runs to the end of the line (negative prompt, prompt).
RE_EOL_LABEL = re.compile(
    r"(?:(?<=^)|(?<=[\s,;|{(]))(?P<flag>--)?(?P<key>negative[\s_\-]*prompt|negative|neg|"
    r"(?:positive[\s_\-]*)?prompt)[\"']?[ \t]*[:=][ \t]*(?P<value>[^\n]*)",
    re.I | re.M,
)
RE_NO_FLAG = re.compile(r"(?:(?<=^)|(?<=\s))--no[ \t]+(?P<value>.*?)(?=[ \t]+--[A-Za-z]|$)", re.I | re.M)


@dataclass
class LegacyParse:
    """What one legacy text says: fields to set, extras, and why anything was not applied."""

    text: str
    fields: dict[str, Any] = field(default_factory=dict)
    extra_settings: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def understood(self) -> bool:
        return bool(self.fields) or any(k != "unparsed" for k in self.extra_settings)

    @property
    def status(self) -> str:
        """``empty``, ``parsed`` (no warnings), ``partial`` or ``unparsable`` (nothing understood)."""
        if not self.text.strip():
            return "empty"
        if not self.warnings:
            return "parsed"
        return "partial" if self.understood else "unparsable"

    def as_dict(self) -> dict[str, Any]:
        return {"fields": self.fields, "extra_settings": self.extra_settings, "warnings": self.warnings}


@dataclass
class _Candidate:
    value: Any
    source: str  # the text it came from, for warnings


class _Collector:
    def __init__(self) -> None:
        self.values: dict[str, list[_Candidate]] = {}
        self.aspects: list[tuple[tuple[float, float], str, bool]] = []  # (ratio, source, is_word)
        self.loras: list[dict[str, Any]] = []
        self.leftovers: list[str] = []
        self.warnings: list[str] = []
        self.seen_random_seed = False
        self.lines: list[str] = []  # the text's lines where it has several, to say where a value is

    def where(self, source: str) -> str:
        """The line a value was read from (" (line N)") where the text has several, else ""."""
        if len(self.lines) > 1 and source:
            for number, line in enumerate(self.lines, start=1):
                if source in line:
                    return f" (line {number})"
        return ""

    def add(self, target: str, value: Any, source: str) -> None:
        self.values.setdefault(target, []).append(_Candidate(value, source.strip()))

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)


def parse_legacy_text(text: str | None) -> LegacyParse:
    """Read one legacy text. Never raises on bad input; see the module docstring."""
    text = text or ""
    result = LegacyParse(text=text)
    if not text.strip():
        return result
    col = _Collector()
    col.lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    data = _as_json_object(text)
    if data is not None:
        _read_json(data, col)
    else:
        _read_text(text, col)
    _resolve(col, result)
    return result


# --- JSON ---------------------------------------------------------------------------------


def _as_json_object(text: str) -> dict[str, Any] | None:
    stripped = text.strip()
    if not stripped.startswith("{"):
        return None
    try:
        data = json.loads(stripped)
    except ValueError:
        return None  # JS-ish objects ({width: 1024}) are read as free text instead
    return data if isinstance(data, dict) else None


def _read_json(data: dict[str, Any], col: _Collector) -> None:
    leftover: dict[str, Any] = {}
    for raw_key, value in data.items():
        target = KEY_SYNONYMS.get(_norm_key(str(raw_key)))
        if target is None:
            leftover[raw_key] = value
            continue
        if value is None or value == "":
            continue
        source = f"{raw_key}: {json.dumps(value, ensure_ascii=False)}"
        kind = KINDS[target]
        if target == "lora" and isinstance(value, list):
            for entry in value:
                if isinstance(entry, dict) and entry.get("name"):
                    _add_lora(col, str(entry["name"]), entry.get("strength", 1.0), source)
                elif isinstance(entry, str):
                    _read_lora_value(col, entry, source)
                else:
                    col.warn(f"LoRA entry {json.dumps(entry)} has no name; not applied.")
            continue
        if target == "size" and isinstance(value, (list, tuple)) and len(value) == 2:
            value = f"{value[0]}x{value[1]}"
        if isinstance(value, bool) or isinstance(value, (dict, list)):
            if kind == "str" and target not in STRUCTURED_FIELDS:
                col.add(target, value, source)  # kept as given: extras may be structured
            else:
                col.warn(f"{_label(target)} {json.dumps(value)} is not a valid value; not applied.")
            continue
        if isinstance(value, (int, float)) and kind in ("int", "float", "seed"):
            _add_number(col, target, value, source)
            continue
        _read_value(col, target, str(value).strip(), source, strong=True)
    if leftover:
        col.leftovers.append(json.dumps(leftover, ensure_ascii=False))


# --- free text ------------------------------------------------------------------------------


def _read_text(text: str, col: _Collector) -> None:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    # Negative prompts (and prompts) run to the end of their line whatever they contain,
    # so they are taken out before the line is split on commas.
    text = RE_EOL_LABEL.sub(lambda m: _take_eol(m, col), text)
    text = RE_NO_FLAG.sub(lambda m: _take_no_flag(m, col), text)
    for segment in _segments(text):
        _read_segment(segment, col)


def _take_eol(match: re.Match, col: _Collector) -> str:
    target = KEY_SYNONYMS[_norm_key(match["key"])]
    value = _clean_str(match["value"]).rstrip(",;|").strip()
    if value:
        col.add(target, value, match.group(0))
    return " " * len(match.group(0))


def _take_no_flag(match: re.Match, col: _Collector) -> str:
    value = _clean_str(match["value"]).rstrip(",;|").strip()
    if value:
        col.add("negative_prompt", value, match.group(0))
    return " " * len(match.group(0))


def _segments(text: str) -> list[str]:
    """Split on , ; | newline, " - " and dashes, but not inside double quotes."""
    segments, current, quoted = [], [], False
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == '"':
            quoted = not quoted
        elif ch == "\n":
            quoted = False  # an unbalanced quote (5" x 7") must not swallow the rest of the text
        if not quoted and (
            ch in ",;|\n—–" or (ch == "-" and 0 < i < len(text) - 1 and text[i - 1] in " \t" and text[i + 1] in " \t")
        ):
            segments.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    segments.append("".join(current))
    return [s for s in (seg.strip() for seg in segments) if s]


def _read_segment(segment: str, col: _Collector) -> None:
    pos, leftover_start, leftover_end = 0, None, None

    def flush() -> None:
        nonlocal leftover_start, leftover_end
        if leftover_start is not None:
            col.leftovers.append(segment[leftover_start:leftover_end].strip(NOISE + " \t"))
        leftover_start = leftover_end = None

    while pos < len(segment):
        ch = segment[pos]
        if ch.isspace() or ch in NOISE:
            pos += 1
            continue
        if ch in "-*•" and (pos + 1 == len(segment) or segment[pos + 1].isspace()):
            pos += 1  # a list bullet
            continue
        end = _match_rule(segment, pos, col)
        if end is not None:
            flush()
            pos = end
            continue
        word = RE_LEFTOVER.match(segment, pos)
        end = word.end() if word else pos + 1
        if leftover_start is None:
            leftover_start = pos
        leftover_end = end
        pos = end
    flush()


def _match_rule(segment: str, pos: int, col: _Collector) -> int | None:
    """Read one setting starting at ``pos``; return where it ends, or None."""
    if m := RE_LORA_TAG.match(segment, pos):
        _add_lora(col, m["name"], m["strength"] if m["strength"] not in (None, "") else 1.0, m.group(0))
        return m.end()
    if m := RE_DIMS.match(segment, pos):
        col.add("size", (int(m["w"]), int(m["h"])), m.group(0))
        return m.end()
    if m := RE_RATIO.match(segment, pos):
        _add_aspect(col, m["a"], m["b"], m.group(0))
        return m.end()
    if m := RE_VALUE_FIRST.match(segment, pos):
        target = KEY_SYNONYMS[_norm_key(m["key"])]
        _add_number(col, target, _to_number(m["num"]), m.group(0))
        return m.end()
    if m := RE_LABEL.match(segment, pos):
        end = _read_labelled(segment, m, col)
        if end is not None:
            return end
    if m := RE_SAMPLER.match(segment, pos):
        _add_sampler(col, m["name"], m["sched"], m.group(0))
        return m.end()
    if m := RE_ASPECT_WORD.match(segment, pos):
        col.aspects.append((ASPECT_WORDS[m["word"].lower()], m.group(0), True))
        return m.end()
    if m := RE_RANDOM_SEED.match(segment, pos):
        col.seen_random_seed = True
        return m.end()
    if m := RE_SCHED_WORD.match(segment, pos):
        col.add("scheduler", _norm_key(m["word"]), m.group(0))
        return m.end()
    return None


def _read_labelled(segment: str, m: re.Match, col: _Collector) -> int | None:
    key = _norm_key(m["key"])
    target = FLAG_SYNONYMS.get(key) if m["flag"] and key in FLAG_SYNONYMS else KEY_SYNONYMS.get(key)
    if target is None:
        return None  # a flag-only short key ("s", "v") written without "--"
    kind = KINDS[target]
    strong = bool(m["flag"]) or ":" in m["sep"] or "=" in m["sep"]
    start = m.end()
    if not strong and kind not in WEAK_KINDS:
        return None
    if kind == "eol":
        # Only reached for "--neg value": the value runs to the next flag or the end.
        end = _str_value_end(segment, start)
        value = _clean_str(segment[start:end])
        if value:
            col.add(target, value, segment[m.start() : end])
        return end
    if kind in ("int", "float", "seed", "dims", "aspect"):
        if kind == "seed" and (w := RE_RANDOM_VALUE.match(segment, start)):
            col.seen_random_seed = True
            return w.end()
        if kind == "dims" and (d := RE_DIMS.match(segment, start)):
            col.add("size", (int(d["w"]), int(d["h"])), segment[m.start() : d.end()])
            return d.end()
        if kind == "aspect":
            if r := RE_RATIO.match(segment, start):
                _add_aspect(col, r["a"], r["b"], segment[m.start() : r.end()])
                return r.end()
            if a := RE_ASPECT_WORD.match(segment, start):
                col.aspects.append((ASPECT_WORDS[a["word"].lower()], segment[m.start() : a.end()], True))
                return a.end()
        if kind in ("int", "float", "seed") and (n := RE_NUMBER.match(segment, start)):
            _add_number(col, target, _to_number(n["num"]), segment[m.start() : n.end()])
            return n.end()
        if not strong:
            return None
        # "steps: many": the label is certain, the value is not readable.
        raw = RE_LEFTOVER.match(segment, start)
        end = raw.end() if raw else start
        shown = segment[start:end] or "(nothing)"
        col.warn(f"{_label(target)}: {shown!r} is not a valid value; not applied.")
        return end
    if kind == "sampler" and not strong:
        s = RE_SAMPLER.match(segment, start)
        if s is None:
            return None
        _add_sampler(col, s["name"], s["sched"], segment[m.start() : s.end()])
        return s.end()
    if kind == "scheduler" and not strong:
        s = re.match(r"[A-Za-z][\w]*(?:[ \t]uniform|[ \t]optimal|[ \t]quadratic)?", segment[start:])
        if not s or _norm_key(s.group(0)) not in COMFYUI_SCHEDULERS | DEFAULT_SCHEDULER_WORDS:
            return None
        _read_value(col, target, s.group(0), segment[m.start() : start + s.end()], strong=True)
        return start + s.end()
    end = _str_value_end(segment, start)
    _read_value(col, target, segment[start:end], segment[m.start() : end], strong=True)
    return end


def _str_value_end(segment: str, start: int) -> int:
    nxt = RE_NEXT_LABEL.search(segment, start)
    return nxt.start() if nxt else len(segment)


# --- values ----------------------------------------------------------------------------------


def _read_value(col: _Collector, target: str, raw: str, source: str, *, strong: bool) -> None:
    """A value given by key (JSON, or after "key:"): read it according to the target's kind."""
    kind = KINDS[target]
    value = _clean_str(raw)
    if value == "":
        if kind not in ("eol", "str"):
            col.warn(f"{_label(target)} has no value; not applied.")
        return
    if kind in ("int", "float"):
        n = RE_NUMBER.fullmatch(value)
        if n is None:
            col.warn(f"{_label(target)}: {value!r} is not a number; not applied.")
            return
        _add_number(col, target, _to_number(n["num"]), source)
    elif kind == "seed":
        if value.lower() in RANDOM_SEED_WORDS:
            col.seen_random_seed = True
            return
        n = RE_NUMBER.fullmatch(value)
        if n is None:
            col.warn(f"Seed {value!r} is not a number; not applied.")
            return
        _add_number(col, target, _to_number(n["num"]), source)
    elif kind == "dims":
        d = RE_DIMS.fullmatch(value)
        if d is None:
            col.warn(f"Size {value!r} is not WIDTHxHEIGHT; not applied.")
            return
        col.add("size", (int(d["w"]), int(d["h"])), source)
    elif kind == "aspect":
        if r := RE_RATIO.fullmatch(value):
            _add_aspect(col, r["a"], r["b"], source)
        elif value.lower() in ASPECT_WORDS:
            col.aspects.append((ASPECT_WORDS[value.lower()], source, True))
        else:
            col.warn(f"Aspect {value!r} is not a ratio such as 16:9; not applied.")
    elif kind == "sampler":
        s = RE_SAMPLER.fullmatch(value)
        if s is not None:
            _add_sampler(col, s["name"], s["sched"], source)
        elif re.fullmatch(r"[a-z0-9]+(?:_[a-z0-9]+)+", value):
            col.add("sampler", value, source)  # a ComfyUI name we do not know yet: pass it through
        else:
            col.warn(f"Sampler {value!r} is not a known Automatic1111 or ComfyUI sampler; not applied.")
    elif kind == "scheduler":
        name = _norm_key(value)
        if name in DEFAULT_SCHEDULER_WORDS:
            return
        if name in COMFYUI_SCHEDULERS:
            col.add("scheduler", name, source)
        else:
            col.warn(f"Scheduler {value!r} is not a known ComfyUI scheduler; not applied.")
    elif kind == "lora":
        _read_lora_value(col, value, source)
    else:  # str, eol
        col.add(target, value, source)


def _clean_str(raw: str) -> str:
    value = raw.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1].strip()
    return value


def _to_number(raw: str) -> int | float:
    value = float(raw)
    if re.fullmatch(r"[-+]?\d+", raw.strip()):
        return int(raw)
    return value


def _add_number(col: _Collector, target: str, value: int | float, source: str) -> None:
    kind = KINDS[target]
    if kind == "seed" and value == -1:
        col.seen_random_seed = True  # -1 is how UIs write "random"
        return
    if kind in ("int", "seed"):
        if isinstance(value, float):
            if not value.is_integer():
                col.warn(f"{_label(target)} {value:g} is not a whole number; not applied.")
                return
            value = int(value)
    else:
        value = float(value)
    col.add(target, value, source)


def _add_aspect(col: _Collector, a: str, b: str, source: str) -> None:
    fa, fb = float(a), float(b)
    if fa <= 0 or fb <= 0:
        col.warn(f"Aspect {a}:{b} is not a valid ratio; not applied.")
        return
    col.aspects.append(((fa, fb), source, False))


def _add_sampler(col: _Collector, name: str, sched: str | None, source: str) -> None:
    key = re.sub(r"\s+", " ", name.strip().lower())
    col.add("sampler", A1111_SAMPLERS.get(key, key), source)
    if sched:
        col.add("scheduler", _norm_key(sched), source)


def _read_lora_value(col: _Collector, value: str, source: str) -> None:
    for part in re.split(r"\s*[+&]\s*", value):
        if not part:
            continue
        if tag := RE_LORA_TAG.fullmatch(part):
            _add_lora(col, tag["name"], tag["strength"] or 1.0, source)
            continue
        m = re.fullmatch(rf"(?P<name>.+?)(?:\s*[:@ ]\s*(?P<strength>{_NUM}))?", part.strip())
        _add_lora(col, m["name"], m["strength"] if m and m["strength"] else 1.0, source)


def _add_lora(col: _Collector, name: str, strength: Any, source: str) -> None:
    name = name.strip().strip("\"'")
    try:
        value = float(strength)
    except (TypeError, ValueError):
        col.warn(f"LoRA {name!r}: strength {strength!r} is not a number; not applied.")
        return
    if not -5 <= value <= 5:
        col.warn(f"LoRA {name!r}: strength {value:g} is outside -5..5; not applied.")
        return
    entry = {"name": name, "strength": value}
    if entry not in col.loras:
        col.loras.append(entry)


def _label(target: str) -> str:
    return target.replace("_", " ").capitalize()


def _valid(col: _Collector, target: str, value: Any, source: str = "") -> bool:
    if target in limits.NUMBERS:
        if problem := limits.number_problem(target, value, saved=True):
            col.warn(f"{_label(target)} {_show(value)}{col.where(source)} {problem}; not applied.")
            return False
        return True
    if target in RANGES and isinstance(value, (int, float)):
        low, high = RANGES[target]
        if not low <= value <= high:
            col.warn(f"{_label(target)} {_show(value)} is outside {_show(low)}..{_show(high)}; not applied.")
            return False
    if target in MAX_LENGTHS and len(str(value)) > MAX_LENGTHS[target]:
        col.warn(f"{_label(target)} is longer than {MAX_LENGTHS[target]} characters; not applied.")
        return False
    return True


# --- putting it together -------------------------------------------------------------------


def _resolve(col: _Collector, result: LegacyParse) -> None:
    sizes = col.values.pop("size", [])
    for cand in sizes:
        w, h = cand.value
        col.values.setdefault("width", []).insert(0, _Candidate(w, cand.source))
        col.values.setdefault("height", []).insert(0, _Candidate(h, cand.source))

    resolved: dict[str, Any] = {}
    given = set(col.values)  # fields the text names, applied or not
    for target, cands in col.values.items():
        valid = [c for c in cands if _valid(col, target, c.value, c.source)]
        distinct: list[Any] = []
        for c in valid:
            if c.value not in distinct:
                distinct.append(c.value)
        if len(distinct) > 1:
            shown = ", ".join(_show(v) for v in distinct)
            col.warn(f"{_label(target)} is given with different values ({shown}); left unset.")
        elif distinct:
            resolved[target] = distinct[0]

    if col.seen_random_seed and "seed" in resolved:
        col.warn(f"Seed is given both as random and as {resolved.pop('seed')}; left unset.")

    _resolve_aspect(col, resolved, given)

    for target in STRUCTURED_FIELDS:
        if target in resolved:
            result.fields[target] = resolved.pop(target)
    result.extra_settings.update(resolved)
    if col.loras:
        result.extra_settings["lora"] = col.loras
    leftovers = [part for part in col.leftovers if part]
    if leftovers:
        unparsed = ", ".join(leftovers)
        result.extra_settings["unparsed"] = unparsed
        col.warn(f"Not understood, kept in extra_settings['unparsed']: {unparsed!r}.")
    result.warnings = col.warnings


def _resolve_aspect(col: _Collector, resolved: dict[str, Any], given: set[str]) -> None:
    if not col.aspects:
        return
    ratios: list[tuple[float, float]] = []
    for ratio, _source, _is_word in col.aspects:
        if not any(_same_ratio(ratio, r) for r in ratios):
            ratios.append(ratio)
    sources = ", ".join(source.strip() for _, source, _ in col.aspects)
    if len(ratios) > 1:
        col.warn(f"The text gives different aspects ({sources}); none applied.")
        return
    ratio, source, is_word = col.aspects[0]
    width, height = resolved.get("width"), resolved.get("height")
    if width is not None and height is not None:
        # Explicit dimensions win; an aspect that agrees with them is just a description.
        if not _agrees(ratio, is_word, width, height):
            col.warn(f"Aspect {source.strip()!r} does not match the size {width}x{height}; the size wins.")
        return
    if "width" in given and width is None or "height" in given and height is None:
        return  # a dimension was given but invalid or conflicting: already warned, don't paper over it
    if width is None and height is None:
        size = _size_for(ratio)
        if size is None:
            col.warn(f"Aspect {source.strip()!r} has no standard size; give a size such as 1024x1024.")
            return
        resolved["width"], resolved["height"] = size
        return
    # One side given: the aspect gives the other, rounded to a multiple of 8.
    if width is not None:
        other, name = round(width * ratio[1] / ratio[0] / 8) * 8, "height"
    else:
        other, name = round(height * ratio[0] / ratio[1] / 8) * 8, "width"
    if _valid(col, name, other):
        resolved[name] = other


def _as_int_ratio(ratio: tuple[float, float]) -> tuple[int, int]:
    a, b = float(ratio[0]), float(ratio[1])
    if a.is_integer() and b.is_integer():
        g = math.gcd(int(a), int(b))
        return int(a) // g, int(b) // g
    return (0, 0)


def _size_for(ratio: tuple[float, float]) -> tuple[int, int] | None:
    # 21:9 reduces to 7:3, so compare reduced ratios.
    reduced = _as_int_ratio(ratio)
    for key, size in ASPECT_SIZES.items():
        if _as_int_ratio(key) == reduced:
            return size
    return None


def _same_ratio(r1: tuple[float, float], r2: tuple[float, float]) -> bool:
    return abs(math.log(r1[0] / r1[1]) - math.log(r2[0] / r2[1])) < 1e-9


def _agrees(ratio: tuple[float, float], is_word: bool, width: int, height: int) -> bool:
    if is_word:
        # "portrait 768x1344": the words name an orientation, not an exact ratio.
        return (ratio[0] > ratio[1]) == (width > height) and (ratio[0] == ratio[1]) == (width == height)
    if _size_for(ratio) == (width, height):
        return True
    # Sizes are rounded to multiples of 64 (1344x768 for 16:9), so allow a few percent.
    return abs(math.log(width / height) - math.log(ratio[0] / ratio[1])) < 0.05


def _show(value: Any) -> str:
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else f"{value:g}"
    return str(value)
