"""Drafts from the writer (``BLOGIMAGES_WRITER``, :mod:`blogimages.writer`): a section's prompt
and an image's alt text, returned for the caller to check and never saved here.

``POST /api/v1/drafts/prompt`` ``{"post": id, "section": key}`` -> ``{"prompt", "model", ...}``
(needs the generate permission, as generating does); ``POST /api/v1/drafts/alt-text``
``{"result": id}`` -> ``{"alt_text", "model", ...}`` (needs the review permission, as
approving does). Drafting off: 404 saying so. The writer failing: 502 (an error or a
nonsense answer), 503 (rate limited, with ``Retry-After``; or unreachable), 504 (no answer in
time), each with one sentence that starts "Could not draft:".
"""

from __future__ import annotations

import math

from django.http import HttpRequest, HttpResponse

from .. import services, writer
from ..hosts import Section
from ..models import ImageGenerationResult
from .framework import (
    PERM_GENERATE,
    ApiError,
    Errors,
    endpoint,
    invalid,
    json_response,
    lookup,
    read_body,
    unknown_fields,
)
from .generation import _section

PERM_REVIEW = "blogimages.review_images"


def _draft_error(exc: writer.DraftError) -> ApiError:
    error = ApiError(exc.status, str(exc))
    if exc.retry_after is not None:
        error.headers["Retry-After"] = str(math.ceil(exc.retry_after))
    return error


@endpoint({"POST": (PERM_GENERATE,)})
def draft_prompt(request: HttpRequest) -> HttpResponse:
    if not writer.enabled():
        raise _draft_error(writer.WriterNotConfigured())
    data = read_body(request)
    errors: Errors = {}
    unknown_fields(data, {"post", "section"}, errors)
    if data.get("section") is None:
        errors["section"] = ['Name the section ("section": key, with "post": id).']
    section: Section | None = _section(data, errors) if "section" not in errors else None
    if errors:
        raise invalid(errors)
    if not services.can(request.user, "generate", section.post):
        raise ApiError(403, "You may not generate images for this post.")
    try:
        draft = writer.draft_prompt(section)
    except writer.DraftError as exc:
        raise _draft_error(exc) from None
    return json_response(
        {"post": str(section.post.pk), "section": section.key, "prompt": draft.text, "model": draft.model}
    )


@endpoint({"POST": (PERM_REVIEW,)})
def draft_alt_text(request: HttpRequest) -> HttpResponse:
    if not writer.enabled():
        raise _draft_error(writer.WriterNotConfigured())
    data = read_body(request)
    errors: Errors = {}
    unknown_fields(data, {"result"}, errors)
    if data.get("result") is None:
        errors["result"] = ['Name the image ("result": id).']
    result = lookup(ImageGenerationResult, data.get("result"), "result", errors, "result")
    if errors:
        raise invalid(errors)
    review = result.review
    if review is None or not result.image:
        raise invalid({"result": [f"Result #{result.pk} is not a finished image of a section."]})
    if not services.can(request.user, "review", review.post):
        raise ApiError(403, "You may not review images for this post.")
    try:
        draft = writer.draft_alt_text(result)
    except writer.DraftError as exc:
        raise _draft_error(exc) from None
    return json_response({"result": result.pk, "alt_text": draft.text, "model": draft.model})
