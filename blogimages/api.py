"""The JSON API under ``/api/v1/``: plain Django views over the service layer.

Staff only. A request authenticates with the admin session (CSRF enforced for unsafe
methods, as in admin) or with ``Authorization: Bearer <token>`` where
``BLOGIMAGES_API_TOKENS`` maps the token to a username (no CSRF: a script holds no
cookies a third-party page could ride on). Each method needs the same Django permission
admin asks for. Every error is JSON: ``{"error": "one sentence"}``, and for bad input
``{"error": ..., "errors": {"field": ["message", ...]}}`` with status 400.
"""

from __future__ import annotations

import hmac
import json
import logging
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, time
from functools import wraps
from typing import Any, Callable
from urllib.parse import urlencode

from django import forms
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import Q
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.views.decorators.csrf import csrf_exempt

from . import services
from .conf import app_settings
from .exceptions import InvalidTransition, QueueUnavailable
from .hosts import get_host
from .models import (
    ImageFormat,
    ImageGenerationResult,
    ImagePromptExample,
    ImageSetting,
    ImageStyle,
    ResultStatus,
)
from .providers import providers
from .renditions import rendition_urls
from .storage import get_storage

logger = logging.getLogger("blogimages.api")

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
MAX_PROVIDERS = 8

PERM_GENERATE = "blogimages.generate_images"
PERM_VIEW_RESULT = "blogimages.view_imagegenerationresult"


class ApiError(Exception):
    """Ends a request with a JSON error body."""

    def __init__(self, status: int, message: str, errors: dict[str, list[str]] | None = None, **extra: Any):
        super().__init__(message)
        self.status, self.message, self.errors, self.extra = status, message, errors, extra
        self.headers: dict[str, str] = {}

    def response(self) -> JsonResponse:
        body: dict[str, Any] = {"error": self.message}
        if self.errors is not None:
            body["errors"] = self.errors
        body.update(self.extra)
        response = _json(body, status=self.status)
        for name, value in self.headers.items():
            response[name] = value
        return response


def _json(data: Any, status: int = 200) -> JsonResponse:
    return JsonResponse(data, status=status, encoder=DjangoJSONEncoder, safe=not isinstance(data, list))


def _invalid(errors: dict[str, list[str]]) -> ApiError:
    first = next(iter(errors.values()))[0] if errors else "The request is not valid."
    return ApiError(400, first, errors=errors)


def _errors_of(exc: ValidationError) -> dict[str, list[str]]:
    if hasattr(exc, "error_dict"):
        return {field: [str(m) for m in messages] for field, messages in exc.message_dict.items()}
    return {"__all__": [str(m) for m in exc.messages]}


# --- authentication and permissions --------------------------------------------------


class _CsrfCheck(CsrfViewMiddleware):
    """Django's own CSRF check, run by hand for session requests (as DRF does)."""

    def _reject(self, request, reason):
        return reason


def _csrf_failure(request: HttpRequest) -> str | None:
    check = _CsrfCheck(lambda req: None)
    check.process_request(request)
    return check.process_view(request, None, (), {})


def _username_for_token(token: str) -> str | None:
    presented = token.encode()
    found = None
    # Compare with every configured token in constant time; no early exit.
    for candidate, username in app_settings.API_TOKENS.items():
        if hmac.compare_digest(presented, str(candidate).encode()) and found is None:
            found = username
    return found


def _authenticate(request: HttpRequest) -> tuple[Any, bool]:
    """``(user, by_token)`` or ApiError 401."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if header:
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise _unauthenticated("Send the API token as 'Authorization: Bearer <token>'.")
        username = _username_for_token(token)
        if username is None:
            raise _unauthenticated("The API token is not valid.")
        user = get_user_model()._default_manager.filter(**{get_user_model().USERNAME_FIELD: username}).first()
        if user is None or not user.is_active:
            raise _unauthenticated(f"The API token's user {username!r} does not exist or is inactive.")
        return user, True
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        raise _unauthenticated("Log in to admin, or send 'Authorization: Bearer <token>'.")
    return user, False


def _unauthenticated(message: str) -> ApiError:
    error = ApiError(401, message)
    error.headers["WWW-Authenticate"] = 'Bearer realm="blogimages"'
    return error


def endpoint(permissions: dict[str, tuple[str, ...]]) -> Callable:
    """Wrap a view: method check, auth, CSRF, staff and per-method permissions, JSON errors.

    ``permissions`` maps each allowed method to the permissions it needs.
    """

    def decorator(func: Callable) -> Callable:
        @wraps(func)
        def view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            try:
                method = "GET" if request.method == "HEAD" else request.method
                if method not in permissions:
                    error = ApiError(405, f"{request.method} is not allowed here; use {', '.join(permissions)}.")
                    error.headers["Allow"] = ", ".join(permissions)
                    raise error
                user, by_token = _authenticate(request)
                if not by_token and method not in SAFE_METHODS:
                    reason = _csrf_failure(request)
                    if reason:
                        raise ApiError(403, f"CSRF check failed ({reason}); send the X-CSRFToken header.")
                request.user = user
                if not user.is_staff:
                    raise ApiError(403, "The API is for staff users only.")
                missing = [perm for perm in permissions[method] if not user.has_perm(perm)]
                if missing:
                    raise ApiError(403, f"You need the permission {', '.join(missing)} for this.")
                return func(request, *args, **kwargs)
            except ApiError as exc:
                return exc.response()
            except ValidationError as exc:
                return _invalid(_errors_of(exc)).response()
            except services.NothingToGenerate as exc:
                return _invalid({"prompt": [str(exc)]}).response()
            except QueueUnavailable as exc:
                return ApiError(503, str(exc)).response()
            except InvalidTransition as exc:
                return ApiError(409, str(exc)).response()

        # Services commit their own transactions so that jobs are queued (and a Redis
        # outage is seen) before we answer, even where ATOMIC_REQUESTS is on.
        return csrf_exempt(transaction.non_atomic_requests(view))

    return decorator


# --- input helpers ----------------------------------------------------------------------


def _body(request: HttpRequest, *, required: bool = True) -> dict[str, Any]:
    raw = request.body
    if not raw.strip():
        if required:
            raise _invalid({"__all__": ["Send a JSON object as the request body."]})
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _invalid({"__all__": [f"The body is not valid JSON ({exc})."]}) from None
    if not isinstance(data, dict):
        raise _invalid({"__all__": ["The body must be a JSON object."]})
    return data


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _lookup(model, value: Any, field: str, errors: dict[str, list[str]], label: str):
    if value is None:
        return None
    if not _is_int(value):
        errors[field] = [f"Give the {label}'s id as a whole number, not {value!r}."]
        return None
    obj = model._default_manager.filter(pk=value).first()
    if obj is None:
        errors[field] = [f"No {label} with id {value}."]
    return obj


def _section(data: dict[str, Any], errors: dict[str, list[str]]):
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
            errors["section"] = [f"No section {key!r}; name its post too (\"post\": id) if section keys need one."]
        return section
    post = host.find_post(str(post_id))
    if post is None:
        errors["post"] = [f"No post with id {post_id!r}."]
        return None
    section = host.section(post, str(key))
    if section is None:
        errors["section"] = [f"Post {post_id} has no section {key!r}."]
    return section


def _unknown_fields(data: dict[str, Any], allowed: set[str], errors: dict[str, list[str]]) -> None:
    for name in sorted(set(data) - allowed):
        errors[name] = [f"Unknown field {name!r}; allowed: {', '.join(sorted(allowed))}."]


def _abs(request: HttpRequest, url: str | None) -> str | None:
    return request.build_absolute_uri(url) if url else None


def _file_url(request: HttpRequest, fieldfile) -> str | None:
    if not fieldfile:
        return None
    try:
        # get_storage(), not fieldfile.url: the field's storage was resolved when models loaded.
        return _abs(request, get_storage().url(fieldfile.name))
    except Exception:  # noqa: BLE001 - a storage hiccup costs a URL, not the answer
        logger.exception("No URL for %s", fieldfile.name)
        return None


def _page(request: HttpRequest, queryset, errors: dict[str, list[str]]):
    """``(items, meta)`` for ``?page=&page_size=``: two queries, whatever the page holds."""
    page = _positive_int(request.GET.get("page", "1"), "page", errors)
    size = _positive_int(request.GET.get("page_size", str(DEFAULT_PAGE_SIZE)), "page_size", errors)
    if size and size > MAX_PAGE_SIZE:
        errors["page_size"] = [f"page_size is at most {MAX_PAGE_SIZE}."]
    if errors:
        raise _invalid(errors)
    count = queryset.count()
    items = list(queryset[(page - 1) * size: page * size])
    pages = max(1, -(-count // size))

    def link(number: int) -> str:
        query = request.GET.copy()
        query["page"] = str(number)
        return request.build_absolute_uri(f"{request.path}?{urlencode(query, doseq=True)}")

    meta = {
        "count": count, "page": page, "pages": pages, "page_size": size,
        "next": link(page + 1) if page < pages else None, "previous": link(page - 1) if 1 < page <= pages + 1 else None,
    }
    return items, meta


def _positive_int(raw: str, field: str, errors: dict[str, list[str]]) -> int:
    try:
        value = int(raw)
    except (TypeError, ValueError):
        value = 0
    if value < 1:
        errors[field] = [f"{field} must be a whole number from 1, not {raw!r}."]
        return 1
    return value


# --- serialisers --------------------------------------------------------------------------


def _result_url(request: HttpRequest, pk: int) -> str:
    return request.build_absolute_uri(reverse("blogimages:api-result", args=[pk]))


def result_json(request: HttpRequest, result: ImageGenerationResult) -> dict[str, Any]:
    """Everything a client needs about one result; reads no related rows."""
    renditions = {}
    if result.renditions:
        renditions = {str(width): _abs(request, url) for width, url in rendition_urls(result)}
    return {
        "id": result.pk,
        "url": _result_url(request, result.pk),
        "group": result.group,
        "status": result.status,
        "progress": result.progress,
        "progress_message": result.progress_message,
        "error": result.error_message or None,
        "error_kind": result.error_kind or None,
        "image_url": _file_url(request, result.image),
        "thumbnail_url": _file_url(request, result.thumbnail),
        "renditions": renditions,
        "width": result.width,
        "height": result.height,
        "seed": result.seed,
        "provider": result.provider,
        "provider_used": result.provider_used or None,
        "model": result.model,
        "prompt": result.prompt,
        "final_prompt": result.final_prompt,
        "negative_prompt": result.negative_prompt,
        "params": result.params,
        "source": result.source,
        "post": result.review.post_id if result.review_id else None,
        "section": result.review.section_key if result.review_id else None,
        "prompt_example": result.prompt_example_id,
        "is_approved": result.is_approved,
        "created_at": result.created_at,
        "queued_at": result.queued_at,
        "started_at": result.started_at,
        "finished_at": result.finished_at,
    }


def _queued_json(request: HttpRequest, result: ImageGenerationResult) -> dict[str, Any]:
    return {
        "id": result.pk, "status": result.status, "url": _result_url(request, result.pk),
        "provider": result.provider, "section": result.review.section_key if result.review_id else None,
    }


def _raise_for_queue(request: HttpRequest, results: list[ImageGenerationResult]) -> None:
    errors = services.queue_errors(results)
    if errors:
        # The rows exist and stay queued; the client can re-queue them later.
        raise ApiError(503, errors[0], results=[_queued_json(request, r) for r in results])


# --- generation ---------------------------------------------------------------------------

SETTING_TYPES: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "width": ("a whole number", _is_int),
    "height": ("a whole number", _is_int),
    "steps": ("a whole number", _is_int),
    "seed": ("a whole number", _is_int),
    "guidance_scale": ("a number", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)),
    "sampler": ("a string", lambda v: isinstance(v, str)),
    "scheduler": ("a string", lambda v: isinstance(v, str)),
    "model": ("a string", lambda v: isinstance(v, str)),
    "negative_prompt": ("a string", lambda v: isinstance(v, str)),
}
GENERATE_FIELDS = {
    "prompt", "provider", "providers", "settings", "prompt_example", "style", "format", "setting", "section", "post",
}


def _settings_overrides(data: dict[str, Any], errors: dict[str, list[str]]) -> dict[str, Any]:
    """Overrides from ``"settings": {...}`` and/or the same names at the top level."""
    nested = data.get("settings") or {}
    if not isinstance(nested, dict):
        errors["settings"] = ["settings must be an object such as {\"width\": 1024, \"steps\": 30}."]
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
            else:
                overrides[name] = values[0]
    return overrides


def _provider_aliases(data: dict[str, Any], errors: dict[str, list[str]]) -> tuple[list[str], str]:
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


@endpoint({"POST": (PERM_GENERATE,)})
def generate(request: HttpRequest) -> HttpResponse:
    data = _body(request)
    errors: dict[str, list[str]] = {}
    _unknown_fields(data, GENERATE_FIELDS | set(SETTING_TYPES), errors)
    prompt = data.get("prompt", "")
    if prompt is None:
        prompt = ""
    if not isinstance(prompt, str):
        errors["prompt"] = [f"prompt must be a string, not {prompt!r}."]
        prompt = ""
    aliases, provider_field = _provider_aliases(data, errors)
    overrides = _settings_overrides(data, errors)
    example = _lookup(ImagePromptExample, data.get("prompt_example"), "prompt_example", errors, "prompt example")
    style = _lookup(ImageStyle, data.get("style"), "style", errors, "style")
    image_format = _lookup(ImageFormat, data.get("format"), "format", errors, "format")
    setting = _lookup(ImageSetting, data.get("setting"), "setting", errors, "setting")
    section = _section(data, errors)
    if not prompt.strip() and example is None and "prompt" not in errors and "prompt_example" not in errors:
        errors["prompt"] = ["Write a prompt, or name a prompt_example that has one."]
    if errors:
        raise _invalid(errors)
    spec = services.GenerationSpec(
        prompt=prompt, providers=aliases, style=style, image_format=image_format, setting=setting,
        prompt_example=example, model=overrides.pop("model", ""), overrides=overrides,
    )
    try:
        results = services.request_generation(spec, section=section, user=request.user)
    except ValidationError as exc:
        found = _errors_of(exc)
        if "provider" in found and provider_field == "providers":
            found["providers"] = found.pop("provider")
        raise _invalid(found) from None
    _raise_for_queue(request, results)
    body = {"results": [_queued_json(request, r) for r in results], "group": results[0].group if results else None}
    response = _json(body, status=202)
    if len(results) == 1:
        response["Location"] = _result_url(request, results[0].pk)
    return response


@endpoint({"POST": (PERM_GENERATE,)})
def generate_for_post(request: HttpRequest, pk: int) -> HttpResponse:
    data = _body(request, required=False)
    errors: dict[str, list[str]] = {}
    _unknown_fields(data, {"provider", "only_missing"}, errors)
    aliases, _ = _provider_aliases({"provider": data.get("provider")}, errors)
    only_missing = data.get("only_missing", False)
    if not isinstance(only_missing, bool):
        errors["only_missing"] = [f"only_missing must be true or false, not {only_missing!r}."]
    if errors:
        raise _invalid(errors)
    post = get_host().find_post(str(pk))
    if post is None:
        raise ApiError(404, f"No post with id {pk}.")
    outcome = services.generate_for_post(
        post, user=request.user, provider=aliases[0] if aliases else None, only_missing=only_missing
    )
    _raise_for_queue(request, outcome.results)
    body = {
        "post": str(post.pk),
        "results": [_queued_json(request, r) for r in outcome.results],
        "skipped": [
            {"section": section.key, "title": section.title, "reason": reason}
            for section, reason in outcome.skipped
        ],
    }
    return _json(body, status=202 if outcome.results else 200)


# --- results -------------------------------------------------------------------------------


@endpoint({"GET": (PERM_VIEW_RESULT,)})
def result_detail(request: HttpRequest, pk: int) -> HttpResponse:
    result = ImageGenerationResult.objects.select_related("review").filter(pk=pk).first()
    if result is None:
        raise ApiError(404, f"No result with id {pk}.")
    return _json(result_json(request, result))


RESULT_FILTERS = {"status", "provider", "post", "section", "group", "since", "page", "page_size"}


def _parse_since(raw: str):
    value = parse_datetime(raw)
    if value is None:
        day = parse_date(raw)
        if day is not None:
            value = datetime.combine(day, time.min)
    if value is not None and timezone.is_naive(value):
        value = timezone.make_aware(value)
    return value


@endpoint({"GET": (PERM_VIEW_RESULT,)})
def result_list(request: HttpRequest) -> HttpResponse:
    """Results, newest first, filtered by ``status`` (comma-separated), ``provider``,
    ``post``, ``section``, ``group`` and ``since`` (ISO 8601), paginated."""
    errors: dict[str, list[str]] = {}
    _unknown_fields(request.GET, RESULT_FILTERS, errors)
    queryset = ImageGenerationResult.objects.select_related("review")
    params = request.GET
    if params.get("status"):
        wanted = [s.strip() for s in params["status"].split(",") if s.strip()]
        bad = [s for s in wanted if s not in ResultStatus.values]
        if bad:
            errors["status"] = [f"Unknown status {', '.join(map(repr, bad))}; use {', '.join(ResultStatus.values)}."]
        queryset = queryset.filter(status__in=wanted)
    if params.get("provider"):
        alias = params["provider"]
        queryset = queryset.filter(Q(provider=alias) | Q(provider_used=alias))
    if params.get("post"):
        queryset = queryset.filter(review__post_id=params["post"])
    if params.get("section"):
        queryset = queryset.filter(review__section_key=params["section"])
    if params.get("group"):
        try:
            queryset = queryset.filter(group=uuid.UUID(params["group"]))
        except ValueError:
            errors["group"] = [f"group must be a UUID, not {params['group']!r}."]
    if params.get("since"):
        since = _parse_since(params["since"])
        if since is None:
            errors["since"] = [
                f"since must be an ISO 8601 date or time such as 2025-01-31T12:00:00Z, not {params['since']!r}."
            ]
        else:
            queryset = queryset.filter(created_at__gte=since)
    items, meta = _page(request, queryset, errors)
    return _json({**meta, "results": [result_json(request, r) for r in items]})


# --- prompt examples ---------------------------------------------------------------------


class PromptExampleForm(forms.ModelForm):
    class Meta:
        model = ImagePromptExample
        fields = ["name", "prompt", "style", "image_format", "setting", "provider", "model", "notes"]

    def clean_provider(self) -> str:
        alias = (self.cleaned_data.get("provider") or "").strip()
        if alias and alias not in providers:
            raise ValidationError(
                f"No provider {alias!r}; BLOGIMAGES_PROVIDERS defines {', '.join(providers.aliases) or 'none'}."
            )
        return alias


# JSON name -> model field name. "format" matches the generate endpoint.
EXAMPLE_FIELDS = {
    "name": "name", "prompt": "prompt", "style": "style", "format": "image_format", "setting": "setting",
    "provider": "provider", "model": "model", "notes": "notes",
}
EXAMPLE_FOREIGN_KEYS = {"style", "format", "setting"}


def example_json(request: HttpRequest, example: ImagePromptExample) -> dict[str, Any]:
    return {
        "id": example.pk,
        "url": request.build_absolute_uri(reverse("blogimages:api-prompt-example", args=[example.pk])),
        "name": example.name, "prompt": example.prompt, "style": example.style_id, "format": example.image_format_id,
        "setting": example.setting_id, "provider": example.provider, "model": example.model, "notes": example.notes,
        "created_by": example.created_by.get_username() if example.created_by else None,
        "created_at": example.created_at, "updated_at": example.updated_at,
    }


def _save_example(request: HttpRequest, data: dict[str, Any], instance: ImagePromptExample | None, partial: bool):
    errors: dict[str, list[str]] = {}
    _unknown_fields(data, set(EXAMPLE_FIELDS) | {"id", "url", "created_by", "created_at", "updated_at"}, errors)
    for read_only in ("id", "url", "created_by", "created_at", "updated_at"):
        errors.pop(read_only, None)
        data.pop(read_only, None)
    current = example_json(request, instance) if (instance is not None and partial) else {}
    form_data = {}
    for key, field in EXAMPLE_FIELDS.items():
        value = data[key] if key in data else current.get(key)
        if key in EXAMPLE_FOREIGN_KEYS:
            if value is not None and not _is_int(value):
                errors[key] = [f"Give the {key}'s id as a whole number or null, not {value!r}."]
        elif value is not None and not isinstance(value, str):
            errors[key] = [f"{key} must be a string, not {value!r}."]
        form_data[field] = "" if value is None or key in errors else value
    # The form runs even after a type error so that one answer names every bad field.
    form = PromptExampleForm(data=form_data, instance=instance)
    if not form.is_valid() or errors:
        reverse_names = {field: key for key, field in EXAMPLE_FIELDS.items()}
        for field, messages in form.errors.items():
            errors.setdefault(reverse_names.get(field, field), [str(m) for m in messages])
        raise _invalid(errors)
    example = form.save(commit=False)
    if instance is None:
        example.created_by = request.user
    example.save()
    return example


@endpoint({
    "GET": ("blogimages.view_imagepromptexample",),
    "POST": ("blogimages.add_imagepromptexample",),
})
def prompt_examples(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        example = _save_example(request, _body(request), None, partial=False)
        response = _json(example_json(request, example), status=201)
        response["Location"] = example_json(request, example)["url"]
        return response
    errors: dict[str, list[str]] = {}
    _unknown_fields(request.GET, {"page", "page_size"}, errors)
    items, meta = _page(request, ImagePromptExample.objects.select_related("created_by"), errors)
    return _json({**meta, "results": [example_json(request, e) for e in items]})


@endpoint({
    "GET": ("blogimages.view_imagepromptexample",),
    "PUT": ("blogimages.change_imagepromptexample",),
    "PATCH": ("blogimages.change_imagepromptexample",),
    "DELETE": ("blogimages.delete_imagepromptexample",),
})
def prompt_example(request: HttpRequest, pk: int) -> HttpResponse:
    example = ImagePromptExample.objects.select_related("created_by").filter(pk=pk).first()
    if example is None:
        raise ApiError(404, f"No prompt example with id {pk}.")
    if request.method == "DELETE":
        example.delete()
        return HttpResponse(status=204)
    if request.method in ("PUT", "PATCH"):
        example = _save_example(request, _body(request), example, partial=request.method == "PATCH")
    return _json(example_json(request, example))


# --- ComfyUI status --------------------------------------------------------------------------


def _is_comfyui(provider) -> bool:
    try:
        # Imported here: the ComfyUI provider is optional and may not import.
        from .providers.comfyui import ComfyUIProvider
    except ImportError:
        ComfyUIProvider = None  # noqa: N806
    if ComfyUIProvider is not None and isinstance(provider, ComfyUIProvider):
        return True
    return "comfyui" in str(getattr(provider, "label", "")).lower()


def _health(provider) -> dict[str, Any]:
    try:
        health = provider.health()
        info = json.loads(json.dumps(health.info or {}, cls=DjangoJSONEncoder, default=str))
        return {"ok": bool(health.ok), "detail": health.detail, "info": info}
    except Exception as exc:  # noqa: BLE001 - one broken server must not hide the others
        logger.exception("Health check of provider %s failed", getattr(provider, "alias", provider))
        return {"ok": False, "detail": f"The health check failed: {exc.__class__.__name__}: {exc}", "info": {}}


@endpoint({"GET": (PERM_VIEW_RESULT,)})
def comfyui_status(request: HttpRequest) -> HttpResponse:
    """``health()`` of each configured ComfyUI provider, checked in parallel."""
    found: dict[str, Any] = {}
    misconfigured: dict[str, dict[str, Any]] = {}
    for alias in providers.aliases:
        try:
            provider = providers[alias]
        except ImproperlyConfigured as exc:
            if "comfyui" in str(app_settings.PROVIDERS.get(alias, {}).get("BACKEND", "")).lower():
                misconfigured[alias] = {"ok": False, "detail": str(exc), "info": {}}
            continue
        if _is_comfyui(provider):
            found[alias] = provider
    statuses: dict[str, dict[str, Any]] = dict(misconfigured)
    if found:
        # Health checks wait on the network; a down server should cost one timeout, not one each.
        with ThreadPoolExecutor(max_workers=min(8, len(found))) as pool:
            for alias, status in zip(found, pool.map(_health, found.values()), strict=True):
                statuses[alias] = status
    return _json({"providers": dict(sorted(statuses.items()))})


__all__ = [
    "ApiError", "comfyui_status", "endpoint", "generate", "generate_for_post", "prompt_example",
    "prompt_examples", "result_detail", "result_json", "result_list",
]
