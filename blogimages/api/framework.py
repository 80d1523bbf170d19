"""What every endpoint shares: the ``@endpoint`` decorator (methods, session or token auth,
CSRF, permissions), JSON answers and errors, body parsing, field lookups and pagination.
"""

from __future__ import annotations

import hmac
import json
import math
from datetime import date, datetime, time
from functools import wraps
from typing import Any, Callable
from urllib.parse import urlencode

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, RequestDataTooBig, TooManyFieldsSent, ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse, RawPostDataException
from django.http.multipartparser import MultiPartParserError
from django.middleware.csrf import CsrfViewMiddleware
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.views.decorators.csrf import csrf_exempt

from .. import limits, services
from ..conf import app_settings
from ..costs import BudgetExceeded
from ..exceptions import ConcurrentTransition, InvalidTransition, QueueUnavailable, StorageUnavailable, UploadRejected

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
#: The highest page number asked for: beyond it an offset is no longer a sensible request
#: (and past 2**63 rows PostgreSQL cannot even express it).
MAX_PAGE = 1_000_000
#: The largest JSON body any endpoint takes, in bytes (uploads are multipart and have their own limit).
MAX_BODY_BYTES = 1024 * 1024
#: How deeply a JSON body may nest (``{"settings": {...}}`` is 2); json.loads would recurse
#: until Python stops it, far beyond anything an endpoint takes.
MAX_JSON_DEPTH = 16
#: The longest query parameter or path segment (a provider alias, a section key, a date).
MAX_PARAM_LENGTH = 1000
#: The earliest and latest date a filter may name: beyond them a date is a typo, and the
#: conversion to UTC of year 1 or 9999 overflows.
EARLIEST, LATEST = date(1900, 1, 1), date(9998, 12, 31)

PERM_GENERATE = "blogimages.generate_images"
PERM_VIEW_RESULT = "blogimages.view_imagegenerationresult"

Errors = dict[str, list[str]]


# --- answers and errors -------------------------------------------------------------------


class ApiError(Exception):
    """Ends a request with a JSON error body."""

    def __init__(self, status: int, message: str, errors: Errors | None = None, **extra: Any):
        super().__init__(message)
        self.status, self.message, self.errors, self.extra = status, message, errors, extra
        self.headers: dict[str, str] = {}

    def response(self) -> JsonResponse:
        body: dict[str, Any] = {"error": self.message}
        if self.errors is not None:
            body["errors"] = self.errors
        body.update(self.extra)
        response = json_response(body, status=self.status)
        for name, value in self.headers.items():
            response[name] = value
        return response


def json_response(data: Any, status: int = 200) -> JsonResponse:
    return JsonResponse(data, status=status, encoder=DjangoJSONEncoder, safe=not isinstance(data, list))


def invalid(errors: Errors) -> ApiError:
    """A 400 whose message is the first error."""
    first = next(iter(errors.values()))[0] if errors else "The request is not valid."
    return ApiError(400, first, errors=errors)


def errors_of(exc: ValidationError) -> Errors:
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
                check_params(request, kwargs)
                return func(request, *args, **kwargs)
            except ApiError as exc:
                return exc.response()
            except ValidationError as exc:
                return invalid(errors_of(exc)).response()
            except services.NothingToGenerate as exc:
                return invalid({"prompt": [str(exc)]}).response()
            except UploadRejected as exc:
                return invalid({"file": [f"The upload was refused: {exc}"]}).response()
            except PermissionDenied as exc:
                return ApiError(403, str(exc) or "You may not do this.").response()
            except (QueueUnavailable, StorageUnavailable) as exc:
                return ApiError(503, str(exc)).response()
            except (InvalidTransition, ConcurrentTransition) as exc:
                return ApiError(409, str(exc)).response()
            except RequestDataTooBig:
                return _too_big().response()
            except (MultiPartParserError, TooManyFieldsSent) as exc:
                return invalid({"__all__": [f"The form data could not be read ({exc})."]}).response()
            except BudgetExceeded as exc:
                # 402: the request is sound, but the month's budget cannot pay for it.
                budget = {"name": exc.budget, "limit": str(exc.limit), "left": str(exc.left), "cost": str(exc.cost)}
                return ApiError(402, str(exc), budget=budget).response()

        # Services commit their own transactions so that jobs are queued (and a Redis
        # outage is seen) before we answer, even where ATOMIC_REQUESTS is on.
        wrapped = csrf_exempt(transaction.non_atomic_requests(view))
        wrapped.api_methods = tuple(permissions)  # the OpenAPI test compares them with the document
        return wrapped

    return decorator


# --- input ----------------------------------------------------------------------------------
#
# Every text a request carries is checked here, before an endpoint sees it: NUL characters
# and lone surrogates (PostgreSQL cannot store either; json.loads makes both from escapes),
# over-long values, JSON nested deeper than any endpoint takes. The text rules themselves
# are blogimages.limits', shared with the forms.


def _too_big() -> ApiError:
    return ApiError(413, f"The request body is larger than {MAX_BODY_BYTES // 1024} KiB.")


def printable(name: str) -> str:
    """A field name safe to put in an answer (NUL and lone surrogates escaped)."""
    return name.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


def check_params(request: HttpRequest, kwargs: dict[str, Any]) -> None:
    """Refuse path segments, query parameters and form fields (names and values, file names)
    that cannot be text, or are too long (400 naming them)."""
    short, long = MAX_PARAM_LENGTH, limits.TEXT_MAX
    values = [(name, value, short) for name, value in kwargs.items() if isinstance(value, str)]
    values += [(name, value, short) for name, items in request.GET.lists() for value in [name, *items]]
    if request.method == "POST" and request.content_type in FORM_TYPES:
        values += [(name, value, long) for name, items in request.POST.lists() for value in [name, *items]]
        values += [(name, getattr(upload, "name", "") or "", short) for name, upload in request.FILES.items()]
    errors: Errors = {}
    for name, value, limit in values:
        if problem := limits.text_problem(value, max_length=limit):
            errors.setdefault(printable(name), []).append(f"{printable(name)} {problem}.")
    if errors:
        raise invalid(errors)


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text} is too large")
    return value


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def check_json_value(data: Any, errors: Errors) -> None:
    """Walk a parsed JSON value (without recursion): depth, and every key and string against
    :func:`blogimages.limits.text_problem`, naming the field (``settings.sampler``, ``providers.0``)."""
    stack: list[tuple[Any, str, int]] = [(data, "", 0)]
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, (dict, list)):
            if depth >= MAX_JSON_DEPTH:
                errors.setdefault(path.split(".")[0] or "__all__", []).append(
                    f"The JSON is nested more than {MAX_JSON_DEPTH} levels deep."
                )
                continue
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                name = f"{path}.{key}" if path else str(key)
                if isinstance(key, str) and (problem := limits.text_problem(key, max_length=MAX_PARAM_LENGTH)):
                    errors.setdefault(printable(name), []).append(f"The field name {problem}.")
                    continue
                stack.append((item, name, depth + 1))
        elif isinstance(value, str) and (problem := limits.text_problem(value)):
            field = printable(path) or "__all__"
            errors.setdefault(field, []).append(f"{field} {problem}.")


def read_body(request: HttpRequest, *, required: bool = True) -> dict[str, Any]:
    """The request's JSON object (``{}`` for an empty optional body), or a 400 naming the
    field at fault (413 for a body over MAX_BODY_BYTES)."""
    try:
        raw = request.body
    except RequestDataTooBig:
        raise _too_big() from None
    except RawPostDataException:  # multipart form data, already parsed: not what this endpoint takes
        raise invalid({"__all__": ["Send a JSON object as the request body, not form data."]}) from None
    if len(raw) > MAX_BODY_BYTES:
        raise _too_big()
    if not raw.strip():
        if required:
            raise invalid({"__all__": ["Send a JSON object as the request body."]})
        return {}
    try:
        data = json.loads(raw, parse_float=_finite, parse_constant=_refuse_constant)
    except RecursionError:
        raise invalid({"__all__": [f"The JSON is nested more than {MAX_JSON_DEPTH} levels deep."]}) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise invalid({"__all__": [f"The body is not valid JSON ({exc})."]}) from None
    if not isinstance(data, dict):
        raise invalid({"__all__": ["The body must be a JSON object."]})
    errors: Errors = {}
    check_json_value(data, errors)
    if errors:
        raise invalid(errors)
    return data


def read_form(request: HttpRequest) -> tuple[dict[str, str], dict[str, Any]]:
    """A multipart/form-data (or urlencoded) body: ``(fields, files)`` with each field's last value."""
    content_type = request.META.get("CONTENT_TYPE", "")
    if not content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        raise invalid({"__all__": ["Send the file as multipart/form-data."]})
    # Every field and file name was checked as text by check_params() before the view ran.
    fields = {name: request.POST.get(name) for name in request.POST}
    files = {name: request.FILES.get(name) for name in request.FILES}
    return fields, files


def parse_when(raw: str, field: str, errors: Errors) -> datetime | None:
    """An ISO 8601 date or date-time (a date means its midnight, a naive time the site's
    time zone), strictly: an impossible date (2025-02-30, hour 25) or one outside
    EARLIEST..LATEST goes to ``errors[field]``."""
    example = "2025-01-31 or 2025-01-31T12:00:00Z"
    try:
        value = parse_datetime(raw)
        if value is None and (day := parse_date(raw)) is not None:
            value = datetime.combine(day, time.min)
    except ValueError as exc:  # the format is right, the date is not (Django names why)
        errors[field] = [f"{field} {raw!r} is not a real date ({exc}); use ISO 8601 such as {example}."]
        return None
    if value is None:
        errors[field] = [f"{field} must be an ISO 8601 date or time such as {example}, not {raw!r}."]
        return None
    if not EARLIEST <= value.date() <= LATEST:
        errors[field] = [f"{field} must be between {EARLIEST} and {LATEST}, not {raw!r}."]
        return None
    return timezone.make_aware(value) if timezone.is_naive(value) else value


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def lookup(model, value: Any, field: str, errors: Errors, label: str):
    """The ``model`` row whose pk is ``value`` (None for None); a bad or unknown id goes to ``errors[field]``."""
    if value is None:
        return None
    if not is_int(value):
        errors[field] = [f"Give the {label}'s id as a whole number, not {value!r}."]
        return None
    obj = model._default_manager.filter(pk=value).first()
    if obj is None:
        errors[field] = [f"No {label} with id {value}."]
    return obj


def unknown_fields(data: dict[str, Any], allowed: set[str], errors: Errors) -> None:
    takes = f"allowed: {', '.join(sorted(allowed))}" if allowed else "this takes none"
    for name in sorted(set(data) - allowed):
        errors[name] = [f"Unknown field {name!r}; {takes}."]


def absolute(request: HttpRequest, url: str | None) -> str | None:
    return request.build_absolute_uri(url) if url else None


# --- pagination ---------------------------------------------------------------------------


def paginate(request: HttpRequest, queryset, errors: Errors):
    """``(items, meta)`` for ``?page=&page_size=``: two queries, whatever the page holds."""
    page = _positive_int(request.GET.get("page", "1"), "page", errors, MAX_PAGE)
    size = _positive_int(request.GET.get("page_size", str(DEFAULT_PAGE_SIZE)), "page_size", errors, MAX_PAGE_SIZE)
    if errors:
        raise invalid(errors)
    count = queryset.count()
    items = list(queryset[(page - 1) * size : page * size])
    pages = max(1, -(-count // size))

    def link(number: int) -> str:
        query = request.GET.copy()
        query["page"] = str(number)
        return request.build_absolute_uri(f"{request.path}?{urlencode(query, doseq=True)}")

    meta = {
        "count": count,
        "page": page,
        "pages": pages,
        "page_size": size,
        "next": link(page + 1) if page < pages else None,
        "previous": link(page - 1) if 1 < page <= pages + 1 else None,
    }
    return items, meta


def _positive_int(raw: str, field: str, errors: Errors, high: int) -> int:
    value = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 12 else 0
    if not 1 <= value <= high:
        shown = raw if len(raw) <= 40 else f"{raw[:40]}..."
        errors[field] = [f"{field} must be a whole number from 1 to {high}, not {shown!r}."]
        return 1
    return value


# --- anything else under api/v1/ -----------------------------------------------------------------


@csrf_exempt  # it changes nothing; a POST to a wrong path is told so, not refused for want of a token
def not_found(request: HttpRequest, rest: str = "") -> HttpResponse:
    """A JSON 404 for a path under ``api/v1/`` that names no endpoint (a client's typo, an id
    that is not a number), so that every answer of the API is JSON."""
    return ApiError(404, f"There is no API endpoint at {request.path}.").response()
