"""What every endpoint shares: the ``@endpoint`` decorator (methods, session or token auth,
CSRF, permissions), JSON answers and errors, body parsing, field lookups and pagination.
"""

from __future__ import annotations

import hmac
import json
from functools import wraps
from typing import Any, Callable
from urllib.parse import urlencode

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.views.decorators.csrf import csrf_exempt

from .. import services
from ..conf import app_settings
from ..costs import BudgetExceeded
from ..exceptions import InvalidTransition, QueueUnavailable

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200

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
                return func(request, *args, **kwargs)
            except ApiError as exc:
                return exc.response()
            except ValidationError as exc:
                return invalid(errors_of(exc)).response()
            except services.NothingToGenerate as exc:
                return invalid({"prompt": [str(exc)]}).response()
            except QueueUnavailable as exc:
                return ApiError(503, str(exc)).response()
            except InvalidTransition as exc:
                return ApiError(409, str(exc)).response()
            except BudgetExceeded as exc:
                # 402: the request is sound, but the month's budget cannot pay for it.
                budget = {"name": exc.budget, "limit": str(exc.limit), "left": str(exc.left), "cost": str(exc.cost)}
                return ApiError(402, str(exc), budget=budget).response()

        # Services commit their own transactions so that jobs are queued (and a Redis
        # outage is seen) before we answer, even where ATOMIC_REQUESTS is on.
        return csrf_exempt(transaction.non_atomic_requests(view))

    return decorator


# --- input ----------------------------------------------------------------------------------


def read_body(request: HttpRequest, *, required: bool = True) -> dict[str, Any]:
    """The request's JSON object (``{}`` for an empty optional body), or a 400."""
    raw = request.body
    if not raw.strip():
        if required:
            raise invalid({"__all__": ["Send a JSON object as the request body."]})
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise invalid({"__all__": [f"The body is not valid JSON ({exc})."]}) from None
    if not isinstance(data, dict):
        raise invalid({"__all__": ["The body must be a JSON object."]})
    return data


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
    for name in sorted(set(data) - allowed):
        errors[name] = [f"Unknown field {name!r}; allowed: {', '.join(sorted(allowed))}."]


def absolute(request: HttpRequest, url: str | None) -> str | None:
    return request.build_absolute_uri(url) if url else None


# --- pagination ---------------------------------------------------------------------------


def paginate(request: HttpRequest, queryset, errors: Errors):
    """``(items, meta)`` for ``?page=&page_size=``: two queries, whatever the page holds."""
    page = _positive_int(request.GET.get("page", "1"), "page", errors)
    size = _positive_int(request.GET.get("page_size", str(DEFAULT_PAGE_SIZE)), "page_size", errors)
    if size and size > MAX_PAGE_SIZE:
        errors["page_size"] = [f"page_size is at most {MAX_PAGE_SIZE}."]
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


def _positive_int(raw: str, field: str, errors: Errors) -> int:
    try:
        value = int(raw)
    except (TypeError, ValueError):
        value = 0
    if value < 1:
        errors[field] = [f"{field} must be a whole number from 1, not {raw!r}."]
        return 1
    return value
