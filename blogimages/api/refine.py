"""Refining a result (``POST .../results/<id>/refine``) and its live preview (``GET .../preview``).

The refine endpoint takes a JSON object, or multipart/form-data with the same fields and the
mask as a file (``mask``); in JSON the mask is a PNG as base64 or a ``data:`` URL (what a
canvas's ``toDataURL()`` gives). Every rule is :func:`blogimages.refining.refine`'s.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse

from .. import refining
from ..models import ImageGenerationResult
from .framework import PERM_GENERATE, PERM_VIEW_RESULT, ApiError, Errors, endpoint, invalid, json_response, read_body
from .generation import _raise_for_queue, idempotency_key
from .results import queued_json, result_url

REFINE_FIELDS = {"operation", "instruction", "mask", "strength", "fidelity", "scale", "provider", "candidates"}
#: Fields given as numbers; a form sends them as text.
NUMBER_FIELDS = {"strength": float, "scale": float, "candidates": int}


def _form_data(request: HttpRequest, errors: Errors) -> dict[str, Any]:
    """A multipart request's fields as the JSON body would give them."""
    data: dict[str, Any] = {}
    for name in request.POST:
        value = request.POST.get(name, "")
        if name in NUMBER_FIELDS:
            if value.strip() == "":
                continue
            try:
                data[name] = NUMBER_FIELDS[name](value)
            except ValueError:
                kind = "a whole number" if NUMBER_FIELDS[name] is int else "a number"
                errors[name] = [f"{name} must be {kind}, not {value!r}."]
            continue
        data[name] = value
    for name in request.FILES:
        data[name] = request.FILES[name]
    return data


def _parent(pk: int) -> ImageGenerationResult:
    parent = ImageGenerationResult.objects.select_related("review").filter(pk=pk).first()
    if parent is None:
        raise ApiError(404, f"No result with id {pk}.")
    return parent


@endpoint({"POST": (PERM_GENERATE,)})
def refine(request: HttpRequest, pk: int) -> HttpResponse:
    parent = _parent(pk)
    errors: Errors = {}
    if request.content_type == "multipart/form-data":
        data = _form_data(request, errors)
    else:
        data = read_body(request)
    for name in sorted(set(data) - REFINE_FIELDS):
        errors[name] = [f"Unknown field {name!r}; allowed: {', '.join(sorted(REFINE_FIELDS))}."]
    operation = data.get("operation")
    if not isinstance(operation, str) or not operation:
        errors.setdefault("operation", ["Name the operation: refine, variations, upscale or reference."])
    for name in ("instruction", "fidelity", "provider"):
        if data.get(name) is not None and not isinstance(data[name], str):
            errors[name] = [f"{name} must be a string, not {data[name]!r}."]
    if errors:
        raise invalid(errors)
    mask = data.get("mask")
    results = refining.refine(
        parent,
        operation=operation,
        instruction=data.get("instruction") or "",
        mask=mask if mask not in ("", None) else None,
        strength=data.get("strength"),
        fidelity=data.get("fidelity") or "",
        scale=data.get("scale"),
        provider=data.get("provider") or None,
        candidates=data.get("candidates", 1),
        user=request.user,
        idempotency_key=idempotency_key(request),
    )
    _raise_for_queue(request, results)
    body = {
        "parent": parent.pk,
        "operation": operation,
        "results": [queued_json(request, result) for result in results],
    }
    response = json_response(body, status=202)
    if len(results) == 1:
        response["Location"] = result_url(request, results[0].pk)
    if any(getattr(result, "repeated", False) for result in results):
        response["Idempotent-Replayed"] = "true"
    return response


@endpoint({"GET": (PERM_VIEW_RESULT,)})
def preview(request: HttpRequest, pk: int) -> HttpResponse:
    """The newest partial image of a running result (small WebP), or 404 while there is none."""
    if not ImageGenerationResult.objects.filter(pk=pk).exists():
        raise ApiError(404, f"No result with id {pk}.")
    data = refining.preview(pk)
    if data is None:
        raise ApiError(404, f"Result #{pk} has no preview (yet).")
    response = HttpResponse(data, content_type="image/webp")
    response["Cache-Control"] = "no-store"
    response["X-Preview-Count"] = str(refining.preview_count(pk))
    return response
