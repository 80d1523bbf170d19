"""Asking for images: ``generate`` (a prompt, one or more providers) and ``generate_for_post``."""

from __future__ import annotations

from typing import Any, Callable

from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse

from .. import limits, services
from ..hosts import get_host
from ..models import ImageFormat, ImageGenerationResult, ImagePromptExample, ImageSetting, ImageStyle
from ..providers import providers
from .framework import (
    PERM_GENERATE,
    ApiError,
    Errors,
    endpoint,
    errors_of,
    invalid,
    is_int,
    json_response,
    lookup,
    read_body,
    unknown_fields,
)
from .results import queued_json, result_url

MAX_PROVIDERS = 8

SETTING_TYPES: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "width": ("a whole number", is_int),
    "height": ("a whole number", is_int),
    "steps": ("a whole number", is_int),
    "seed": ("a whole number", is_int),
    "guidance_scale": ("a number", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)),
    "sampler": ("a string", lambda v: isinstance(v, str)),
    "scheduler": ("a string", lambda v: isinstance(v, str)),
    "model": ("a string", lambda v: isinstance(v, str)),
    "negative_prompt": ("a string", lambda v: isinstance(v, str)),
}
#: The longest text each text setting may be: the columns they are stored in (a result's
#: model; a saved setting's sampler and scheduler), the prompt limit for the negative prompt.
SETTING_TEXT_MAX = {
    "model": ImageGenerationResult._meta.get_field("model").max_length,
    "sampler": ImageSetting._meta.get_field("sampler").max_length,
    "scheduler": ImageSetting._meta.get_field("scheduler").max_length,
    "negative_prompt": limits.PROMPT_MAX,
}
GENERATE_FIELDS = {
    "prompt", "provider", "providers", "settings", "prompt_example", "style", "format", "setting", "section", "post",
    "candidates",
}  # fmt: skip


def _settings_overrides(data: dict[str, Any], errors: Errors) -> dict[str, Any]:
    """Overrides from ``"settings": {...}`` and/or the same names at the top level."""
    nested = data.get("settings") or {}
    if not isinstance(nested, dict):
        errors["settings"] = ['settings must be an object such as {"width": 1024, "steps": 30}.']
        nested = {}
    for name in sorted(set(nested) - set(SETTING_TYPES)):
        errors[f"settings.{name}"] = [f"Unknown setting {name!r}; allowed: {', '.join(sorted(SETTING_TYPES))}."]
    overrides = {}
    for name, (kind, ok) in SETTING_TYPES.items():
        values = [source[name] for source in (data, nested) if source.get(name) is not None]
        if len(values) == 2 and values[0] != values[1]:
            errors[name] = [f"{name} is given twice with different values."]
            continue
        if values:
            if not ok(values[0]):
                errors[name] = [f"{name} must be {kind}, not {values[0]!r}."]
            elif name in SETTING_TEXT_MAX and len(values[0]) > SETTING_TEXT_MAX[name]:
                errors[name] = [f"{name} is {len(values[0])} characters; the limit is {SETTING_TEXT_MAX[name]}."]
            elif name in limits.NUMBERS and (problem := limits.number_errors({name: values[0]})):
                errors[name] = [problem[name]]
            else:
                overrides[name] = values[0]
    return overrides


def _provider_aliases(data: dict[str, Any], errors: Errors) -> tuple[list[str], str]:
    field = "providers" if "providers" in data else "provider"
    if "provider" in data and "providers" in data:
        errors["providers"] = ["Give either provider or providers, not both."]
        return [], field
    raw = data.get(field)
    if raw is None or raw == "" or raw == []:
        return [], field
    aliases = [raw] if field == "provider" else raw
    if not isinstance(aliases, list) or not all(isinstance(a, str) and a.strip() for a in aliases):
        wanted = "a provider alias" if field == "provider" else "a list of provider aliases"
        errors[field] = [f"{field} must be {wanted}."]
        return [], field
    aliases = list(dict.fromkeys(a.strip() for a in aliases))
    if len(aliases) > MAX_PROVIDERS:
        errors[field] = [f"At most {MAX_PROVIDERS} providers per request, not {len(aliases)}."]
    unknown = [a for a in aliases if a not in providers]
    if unknown:
        defined = ", ".join(providers.aliases) or "none"
        errors[field] = [f"No provider {a!r}; BLOGIMAGES_PROVIDERS defines {defined}." for a in unknown]
    return aliases, field


def _section(data: dict[str, Any], errors: Errors):
    """The section named by ``section`` (its key), within ``post`` where one is given."""
    key, post_id = data.get("section"), data.get("post")
    if key is None:
        if post_id is not None:
            errors["section"] = ["Name the post's section as well as the post."]
        return None
    if not isinstance(key, (str, int)) or isinstance(key, bool) or not str(key).strip():
        errors["section"] = [f"Give the section's key (text or a whole number), not {key!r}."]
        return None
    host = get_host()
    if post_id is None:
        section = host.find_section(str(key))
        if section is None:
            errors["section"] = [f'No section {key!r}; name its post too ("post": id) if section keys need one.']
        return section
    post = host.find_post(str(post_id))
    if post is None:
        errors["post"] = [f"No post with id {post_id!r}."]
        return None
    section = host.section(post, str(key))
    if section is None:
        errors["section"] = [f"Post {post_id} has no section {key!r}."]
    return section


def idempotency_key(request: HttpRequest) -> str | None:
    """The ``Idempotency-Key`` header: a client that sends a request again (its answer was
    lost, a retry loop) with the same key gets the first request's results, nothing new."""
    key = request.headers.get("Idempotency-Key") or None
    if key is not None and (problem := limits.text_problem(key, max_length=services.REQUEST_KEY_MAX)):
        raise invalid({"idempotency_key": [f"The Idempotency-Key header {problem}."]})
    return key


def _raise_for_queue(request: HttpRequest, results: list[ImageGenerationResult]) -> None:
    errors = services.queue_errors(results)
    if errors:
        # The rows exist and stay queued; the client can re-queue them later.
        raise ApiError(503, errors[0], results=[queued_json(request, r) for r in results])


@endpoint({"POST": (PERM_GENERATE,)})
def generate(request: HttpRequest) -> HttpResponse:
    data = read_body(request)
    errors: Errors = {}
    unknown_fields(data, GENERATE_FIELDS | set(SETTING_TYPES), errors)
    prompt = data.get("prompt", "")
    if prompt is None:
        prompt = ""
    if not isinstance(prompt, str):
        errors["prompt"] = [f"prompt must be a string, not {prompt!r}."]
        prompt = ""
    else:
        try:
            limits.check_prompt(prompt.strip())
        except ValidationError as exc:
            errors.update(errors_of(exc))
    aliases, provider_field = _provider_aliases(data, errors)
    overrides = _settings_overrides(data, errors)
    example = lookup(ImagePromptExample, data.get("prompt_example"), "prompt_example", errors, "prompt example")
    style = lookup(ImageStyle, data.get("style"), "style", errors, "style")
    image_format = lookup(ImageFormat, data.get("format"), "format", errors, "format")
    setting = lookup(ImageSetting, data.get("setting"), "setting", errors, "setting")
    section = _section(data, errors)
    if not prompt.strip() and example is None and "prompt" not in errors and "prompt_example" not in errors:
        errors["prompt"] = ["Write a prompt, or name a prompt_example that has one."]
    if errors:
        raise invalid(errors)
    if section is not None:
        services.require(request.user, "generate", section.post)  # the host's say, as on the review page
    spec = services.GenerationSpec(
        prompt=prompt,
        providers=aliases,
        style=style,
        image_format=image_format,
        setting=setting,
        prompt_example=example,
        model=overrides.pop("model", ""),
        overrides=overrides,
        candidates=data.get("candidates", 1),  # checked by the service (BLOGIMAGES_MAX_CANDIDATES)
    )
    try:
        results = services.request_generation(
            spec, section=section, user=request.user, idempotency_key=idempotency_key(request)
        )
    except ValidationError as exc:
        found = errors_of(exc)
        if "provider" in found and provider_field == "providers":
            found["providers"] = found.pop("provider")
        raise invalid(found) from None
    _raise_for_queue(request, results)
    body = {"results": [queued_json(request, r) for r in results], "group": results[0].group if results else None}
    response = json_response(body, status=202)
    if len(results) == 1:
        response["Location"] = result_url(request, results[0].pk)
    if any(getattr(result, "repeated", False) for result in results):
        response["Idempotent-Replayed"] = "true"  # the first request's results; nothing new was queued
    return response


@endpoint({"POST": (PERM_GENERATE,)})
def generate_for_post(request: HttpRequest, pk: int) -> HttpResponse:
    data = read_body(request, required=False)
    errors: Errors = {}
    unknown_fields(data, {"provider", "only_missing"}, errors)
    aliases, _ = _provider_aliases({"provider": data.get("provider")}, errors)
    only_missing = data.get("only_missing", False)
    if not isinstance(only_missing, bool):
        errors["only_missing"] = [f"only_missing must be true or false, not {only_missing!r}."]
    if errors:
        raise invalid(errors)
    post = get_host().find_post(str(pk))
    if post is None:
        raise ApiError(404, f"No post with id {pk}.")
    services.require(request.user, "generate", post)
    outcome = services.generate_for_post(
        post,
        user=request.user,
        provider=aliases[0] if aliases else None,
        only_missing=only_missing,
        idempotency_key=idempotency_key(request),
    )
    _raise_for_queue(request, outcome.results)
    body = {
        "post": str(post.pk),
        "results": [queued_json(request, r) for r in outcome.results],
        "skipped": [
            {"section": section.key, "title": section.title, "reason": reason} for section, reason in outcome.skipped
        ],
    }
    response = json_response(body, status=202 if outcome.results else 200)
    if outcome.repeated:
        response["Idempotent-Replayed"] = "true"
    return response
