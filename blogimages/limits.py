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
