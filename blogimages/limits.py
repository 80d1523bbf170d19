"""What may be asked for, in one place: sizes, steps, guidance, seeds, prompt lengths,
extra settings and provider names.

The models' ``clean()`` (so every ModelAdmin form), the playground form, the JSON API,
the service layer and the legacy parser all check against these functions, so a value
is refused the same way, with the same sentence, wherever it comes from. Each check
raises :class:`~django.core.exceptions.ValidationError` keyed by the field it is about.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError

from .conf import app_settings


@dataclass(frozen=True)
class NumberLimit:
    """The allowed values of one numeric generation parameter."""

    low: int | float
    high: int | float
    whole: bool = True
    #: Only for values saved in the library (formats, settings, legacy text): a preset
    #: should be exact. A one-off request may ask for any size in range; the provider
    #: rounds it to what its model takes and says so in the result's adjustments.
    multiple_of: int = 1


#: Saved sizes are multiples of 8 because latent-diffusion models work on 8x8 pixel blocks.
NUMBERS: dict[str, NumberLimit] = {
    "width": NumberLimit(64, 4096, multiple_of=8),
    "height": NumberLimit(64, 4096, multiple_of=8),
    "steps": NumberLimit(1, 200),
    "guidance_scale": NumberLimit(0, 30, whole=False),
    "seed": NumberLimit(0, 2**63 - 1),
}

#: The longest prompt a request may carry (forms, the API, prompt examples and drafts keep to it too).
PROMPT_MAX = 4000


def bounds(name: str) -> dict[str, int | float]:
    """``min_value``/``max_value`` for a form field of parameter ``name``."""
    return {"min_value": NUMBERS[name].low, "max_value": NUMBERS[name].high}


def label(name: str) -> str:
    return name.replace("_", " ").capitalize()


def show(value: Any) -> str:
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else f"{value:g}"
    return str(value) if isinstance(value, int) else repr(value)


def number_problem(name: str, value: Any, *, saved: bool = False) -> str | None:
    """What is wrong with ``value`` for parameter ``name``, as the end of a sentence
    ("is outside 64..4096"), or None where it is allowed. ``None`` (unset) is allowed.
    ``saved``: the value is stored in the library, so ``multiple_of`` applies too."""
    limit = NUMBERS[name]
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int if limit.whole else (int, float)):
        return "is not a whole number" if limit.whole else "is not a number"
    if value != value or not limit.low <= value <= limit.high:  # NaN included
        return f"is outside {show(limit.low)}..{show(limit.high)}"
    if saved and limit.multiple_of > 1 and value % limit.multiple_of:
        return f"is not a multiple of {limit.multiple_of}"
    return None


def number_errors(values: dict[str, Any], *, saved: bool = False) -> dict[str, str]:
    """One sentence per parameter of ``values`` (those of :data:`NUMBERS`) that is not allowed."""
    errors = {}
    for name, value in values.items():
        if name in NUMBERS and (problem := number_problem(name, value, saved=saved)):
            errors[name] = f"{label(name)} {show(value)} {problem}."
    return errors


def check_numbers(values: dict[str, Any], *, saved: bool = False) -> None:
    """Raise ValidationError naming each parameter of ``values`` that is out of bounds."""
    if errors := number_errors(values, saved=saved):
        raise ValidationError(errors)


def check_prompt(prompt: str, field: str = "prompt") -> None:
    if len(prompt or "") > PROMPT_MAX:
        raise ValidationError({field: f"The prompt is {len(prompt)} characters; the limit is {PROMPT_MAX}."})


def extra_settings_problem(value: Any) -> str | None:
    """Why ``value`` cannot be a setting's ``extra_settings`` (a JSON object with string keys), or None."""
    if value is None or isinstance(value, dict) and all(isinstance(key, str) for key in value):
        return None
    if isinstance(value, dict):
        return "Extra settings must have text keys."
    kind = {list: "a list", str: "a string", bool: "true/false", int: "a number", float: "a number"}.get(
        type(value), type(value).__name__
    )
    return f'Extra settings must be a JSON object such as {{"clip_skip": 2}}, not {kind}.'


def check_extra_settings(value: Any, field: str = "extra_settings") -> None:
    if problem := extra_settings_problem(value):
        raise ValidationError({field: problem})


def provider_problem(alias: str) -> str | None:
    """Why ``alias`` is not a provider one may name (blank means the default), or None."""
    alias = (alias or "").strip()
    if not alias or alias in app_settings.PROVIDERS:
        return None
    defined = ", ".join(app_settings.PROVIDERS) or "none"
    return f"provider {alias!r} is not in BLOGIMAGES_PROVIDERS ({defined})"


def check_provider(alias: str, *, owner: str, field: str = "provider") -> None:
    """Refuse a provider alias BLOGIMAGES_PROVIDERS does not define, naming the object
    it was saved on (``owner``, e.g. "Image setting 'Hero'"), so the error is found
    where it was made and not at generation time."""
    if problem := provider_problem(alias):
        raise ValidationError({field: f"{owner}: {problem}."})


def merge(*checks: Any) -> None:
    """Run several checks (callables), raising one ValidationError with all their errors."""
    errors: dict[str, list] = {}
    for check in checks:
        try:
            check()
        except ValidationError as exc:
            for name, messages in exc.message_dict.items():
                errors.setdefault(name, []).extend(messages)
    if errors:
        raise ValidationError(errors)


# --- refining: sources, masks, strength and scale (blogimages.refining) ----------------------------

#: The largest source a refine, variation, upscale or reference may start from, per side and in
#: all: the largest size a request may ask for (NUMBERS), so any stored result qualifies and an
#: oversized upload (up to BLOGIMAGES_UPLOAD_MAX_PIXELS) is refused before anything is sent.
EDIT_SOURCE_MAX_SIDE = int(NUMBERS["width"].high)
EDIT_SOURCE_MAX_PIXELS = int(NUMBERS["width"].high) * int(NUMBERS["height"].high)
#: Upscale factors: above 1 (else it is not an upscale), at most 4 (no model does more in one pass).
SCALE_LIMIT = NumberLimit(1, 4, whole=False)
#: img2img strength (denoise): 0 keeps the source, 1 ignores it.
STRENGTH_LIMIT = NumberLimit(0, 1, whole=False)
#: OpenAI's input_fidelity values; a provider or model that takes none refuses any.
FIDELITIES = ("low", "high")


def edit_source_problem(width: int, height: int) -> str | None:
    """Why an image of ``width`` x ``height`` cannot be refined, as a sentence, or None."""
    if max(width, height) > EDIT_SOURCE_MAX_SIDE or width * height > EDIT_SOURCE_MAX_PIXELS:
        return (
            f"The image is {width}x{height} pixels; a refine, variation, upscale or reference starts from "
            f"at most {EDIT_SOURCE_MAX_SIDE} px a side."
        )
    return None


def check_strength(value: Any, field: str = "strength") -> float | None:
    """``value`` as a float in 0..1 (None stays None), else ValidationError naming ``field``."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise ValidationError({field: f"Strength must be a number from 0 to 1, not {value!r}."})
    if not STRENGTH_LIMIT.low <= value <= STRENGTH_LIMIT.high:
        raise ValidationError({field: f"Strength {show(value)} is outside 0..1."})
    return float(value)


def check_scale(value: Any, width: int, height: int, field: str = "scale") -> tuple[int, int]:
    """The size an upscale of a ``width`` x ``height`` image by ``value`` gives, within the size
    limits (NUMBERS); ValidationError naming ``field`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise ValidationError({field: f"The upscale factor must be a number above 1 and at most 4, not {value!r}."})
    if not SCALE_LIMIT.low < value <= SCALE_LIMIT.high:
        raise ValidationError({field: f"The upscale factor {show(value)} must be above 1 and at most 4."})
    new_w, new_h = round(width * value), round(height * value)
    high_w, high_h = NUMBERS["width"].high, NUMBERS["height"].high
    if new_w > high_w or new_h > high_h:
        raise ValidationError(
            {
                field: f"Upscaling {width}x{height} by {show(value)} gives {new_w}x{new_h}; "
                f"the limit is {show(high_w)}x{show(high_h)}."
            }
        )
    return new_w, new_h


def check_fidelity(value: Any, field: str = "fidelity") -> str:
    value = "" if value is None else value
    if not isinstance(value, str) or value.strip().lower() not in ("", *FIDELITIES):
        raise ValidationError({field: f"Fidelity must be one of {', '.join(FIDELITIES)} (or empty), not {value!r}."})
    return value.strip().lower()


# --- text: what any text field may hold (the JSON API, forms) ------------------------------------

#: The longest text any one field of a request may carry where the field sets no lower
#: limit of its own (a prompt: PROMPT_MAX; a model name: its column). Longer is a typo or an attack.
TEXT_MAX = 20_000


def text_problem(value: str, *, max_length: int | None = TEXT_MAX) -> str | None:
    """What stops ``value`` from being stored as text, as the end of a sentence ("contains
    a NUL character ..."), or None. PostgreSQL refuses NUL in text columns, and a lone UTF-16
    surrogate (which JSON's ``\\ud800`` escapes can carry) is no character at all: both are
    refused here, on every database, before anything is stored."""
    if "\x00" in value:
        return "contains a NUL character (\\u0000), which text cannot hold"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"contains a lone surrogate (\\u{ord(value[exc.start]):04x}), which is not a character"
    if max_length is not None and len(value) > max_length:
        return f"is {len(value)} characters; the limit is {max_length}"
    return None


def check_text(value: Any, field: str, *, label: str | None = None, max_length: int | None = TEXT_MAX) -> None:
    """Raise ValidationError naming ``field`` if ``value`` (a string; anything else passes)
    cannot be stored as text (see :func:`text_problem`)."""
    if isinstance(value, str) and (problem := text_problem(value, max_length=max_length)):
        raise ValidationError({field: f"{label or field} {problem}."})
