"""Turning the editors' library (prompt example, style, format, setting) into one request.

Precedence, lowest first: app defaults, the setting, the format's size, the prompt
example's provider and model, then explicit overrides from the editor.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError

from . import limits
from .conf import app_settings
from .contract import GenerationRequest, Lora

if TYPE_CHECKING:
    from .models import ImageFormat, ImageSetting, ImageStyle

PARAM_FIELDS = ("width", "height", "steps", "guidance_scale", "sampler", "scheduler", "seed", "model")


def validate_lora_stack(loras: Any) -> list[Lora]:
    """Parse a style's LoRA stack, raising ValidationError with the bad entry named."""
    if loras in (None, ""):
        return []
    if not isinstance(loras, list):
        raise ValidationError({"loras": "The LoRA stack must be a list of {name, strength} objects."})
    parsed = []
    for index, entry in enumerate(loras, start=1):
        if not isinstance(entry, dict) or not str(entry.get("name", "")).strip():
            raise ValidationError({"loras": f"LoRA {index} needs a 'name' (the LoRA file name)."})
        try:
            strength = float(entry.get("strength", 1.0))
        except (TypeError, ValueError):
            raise ValidationError({"loras": f"LoRA {index}: strength must be a number."}) from None
        if not -5 <= strength <= 5:
            raise ValidationError({"loras": f"LoRA {index}: strength {strength} is outside -5..5."})
        parsed.append(Lora(name=str(entry["name"]).strip(), strength=strength, role=entry.get("role", "style")))
    return parsed


def resolve_params(
    *,
    style: ImageStyle | None = None,
    image_format: ImageFormat | None = None,
    setting: ImageSetting | None = None,
    model: str = "",
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The parameter snapshot stored on a result (JSON-serialisable)."""
    params: dict[str, Any] = {
        "width": app_settings.DEFAULT_WIDTH,
        "height": app_settings.DEFAULT_HEIGHT,
        "steps": None,
        "guidance_scale": None,
        "sampler": "",
        "scheduler": "",
        "seed": None,
        "model": "",
        "negative_prompt": "",
        "loras": [],
        "extra": {},
    }
    if setting is not None:
        for name in PARAM_FIELDS:
            value = getattr(setting, name)
            if value not in (None, ""):
                params[name] = value
        params["negative_prompt"] = setting.negative_prompt
        if problem := setting.extra_settings_problem:  # a row saved before extra settings were checked
            raise ValidationError({"setting": f"Image setting {setting.name!r}: {problem}"})
        params["extra"] = {k: v for k, v in (setting.extra_settings or {}).items() if k != "unparsed"}
    if image_format is not None:
        params["width"], params["height"] = image_format.width, image_format.height
    if style is not None:
        params["loras"] = [asdict(lora) for lora in validate_lora_stack(style.loras)]
        if style.negative_prompt:
            params["negative_prompt"] = ", ".join(p for p in (style.negative_prompt, params["negative_prompt"]) if p)
    if model:
        params["model"] = model
    for name, value in (overrides or {}).items():
        if name not in params:
            raise ValidationError({name: f"Unknown generation parameter {name!r}."})
        if value not in (None, ""):
            params[name] = value
    _validate_params(params)
    return params


def _validate_params(params: dict[str, Any]) -> None:
    limits.check_numbers({name: params[name] for name in limits.NUMBERS})


def request_from_snapshot(prompt: str, params: dict[str, Any], *, seed: int | None, result_id: int | None):
    """Rebuild the provider request from a result's stored snapshot."""
    return GenerationRequest(
        prompt=prompt,
        negative_prompt=params.get("negative_prompt", ""),
        width=params["width"],
        height=params["height"],
        steps=params.get("steps"),
        guidance_scale=params.get("guidance_scale"),
        sampler=params.get("sampler", ""),
        scheduler=params.get("scheduler", ""),
        seed=seed,
        model=params.get("model", ""),
        loras=tuple(Lora(**lora) for lora in params.get("loras", [])),
        extra=dict(params.get("extra", {})),
        result_id=result_id,
    )
