"""Generated images as JSON: one result, the filtered and paginated history."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.urls import reverse

from .. import services
from ..models import ImageGenerationResult, ResultStatus
from ..renditions import rendition_urls
from ..storage import get_storage
from .framework import (
    PERM_VIEW_RESULT,
    ApiError,
    Errors,
    absolute,
    endpoint,
    json_response,
    paginate,
    parse_when,
    unknown_fields,
)

logger = logging.getLogger("blogimages.api")

RESULT_FILTERS = {
    "status", "provider", "model", "decision", "post", "section", "group", "style", "requested_by", "since", "until",
    "page", "page_size",
}  # fmt: skip
#: A candidate's decision: approved (its section's approved image), rejected (by itself, with
#: a comment; approving it later takes that back), or neither yet.
DECISIONS = ("approved", "rejected", "undecided")


def results_queryset():
    """Results with what :func:`result_json` reads, in one query."""
    return ImageGenerationResult.objects.select_related("review", "approved_for", "rejected_by")


def decision_of(result: ImageGenerationResult) -> str:
    if result.is_approved:
        return "approved"
    return "rejected" if result.rejected_at is not None else "undecided"


def result_url(request: HttpRequest, pk: int) -> str:
    return request.build_absolute_uri(reverse("blogimages:api-result", args=[pk]))


def _file_url(request: HttpRequest, fieldfile) -> str | None:
    name = fieldfile if isinstance(fieldfile, str) else (fieldfile.name if fieldfile else "")
    if not name:
        return None
    try:
        # get_storage(), not fieldfile.url: the field's storage was resolved when models loaded.
        return absolute(request, get_storage().url(name))
    except Exception:  # noqa: BLE001 - a storage hiccup costs a URL, not the answer
        logger.exception("No URL for %s", name)
        return None


def result_json(request: HttpRequest, result: ImageGenerationResult) -> dict[str, Any]:
    """Everything a client needs about one result; reads no related rows."""
    renditions = {}
    if result.renditions:
        renditions = {str(width): absolute(request, url) for width, url in rendition_urls(result)}
    return {
        "id": result.pk,
        "url": result_url(request, result.pk),
        "group": result.group,
        "status": result.status,
        "progress": result.progress,
        "progress_message": result.progress_message,
        "error": result.error_message or None,
        "error_kind": result.error_kind or None,
        "image_url": _file_url(request, result.image),
        "thumbnail_url": _file_url(request, result.thumbnail),
        # The readable name public pages serve once the image was approved (blogimages.naming).
        "published_url": _file_url(request, result.published_image),
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
        "ai_generated": result.ai_generated,
        "post": result.review.post_id if result.review_id else None,
        "section": result.review.section_key if result.review_id else None,
        "prompt_example": result.prompt_example_id,
        "is_approved": result.is_approved,
        "decision": decision_of(result),
        "rejected_at": result.rejected_at,
        "rejected_by": result.rejected_by.get_username() if result.rejected_by_id and result.rejected_by else None,
        "rejection_comment": result.rejection_comment or None,
        "operation": result.operation,
        "parent": result.parent_id,
        "created_at": result.created_at,
        "queued_at": result.queued_at,
        "started_at": result.started_at,
        "finished_at": result.finished_at,
    }


def queued_json(request: HttpRequest, result: ImageGenerationResult) -> dict[str, Any]:
    """The short form the generate endpoints answer with: where to poll."""
    return {
        "id": result.pk,
        "status": result.status,
        "url": result_url(request, result.pk),
        "provider": result.provider,
        "section": result.review.section_key if result.review_id else None,
    }


class ResultActions:
    """``services.result_actions`` for one user over many results: what the review page
    would offer them. The user's permissions are worked out once per post (the host
    adapter may ask its CMS), not once per result."""

    def __init__(self, user) -> None:
        self.user = user
        self.perms: dict[tuple[int, str] | None, dict[str, bool]] = {}

    def __call__(self, result: ImageGenerationResult) -> list[str]:
        review = result.review if result.review_id else None
        key = (review.post_type_id, review.post_id) if review else None
        if key not in self.perms:
            post = review.post if review else None
            self.perms[key] = {
                kind: services.can(self.user, kind, post) if (post is not None or review is None) else False
                for kind in ("generate", "review", "upload")
            }
        return sorted(services.result_actions(result, self.perms[key]))


def with_actions(request: HttpRequest, results) -> list[dict[str, Any]]:
    actions = ResultActions(request.user)
    return [{**result_json(request, result), "actions": actions(result)} for result in results]


@endpoint({"GET": (PERM_VIEW_RESULT,)})
def result_detail(request: HttpRequest, pk: int) -> HttpResponse:
    result = results_queryset().filter(pk=pk).first()
    if result is None:
        raise ApiError(404, f"No result with id {pk}.")
    return json_response(with_actions(request, [result])[0])


@endpoint({"GET": (PERM_VIEW_RESULT,)})
def result_list(request: HttpRequest) -> HttpResponse:
    """Results, newest first, filtered as the review page and the gallery filter them:
    ``status`` (comma-separated), ``provider``, ``model``, ``decision``, ``post``,
    ``section``, ``group``, ``style``, ``requested_by`` (a username), ``since`` and
    ``until`` (ISO 8601); paginated."""
    errors: Errors = {}
    unknown_fields(request.GET, RESULT_FILTERS, errors)
    queryset = results_queryset()
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
    if params.get("model"):
        queryset = queryset.filter(model=params["model"])
    if params.get("decision"):
        decision = params["decision"]
        if decision == "approved":
            queryset = queryset.filter(approved_for__isnull=False)
        elif decision == "rejected":
            queryset = queryset.filter(approved_for__isnull=True, rejected_at__isnull=False)
        elif decision == "undecided":
            queryset = queryset.filter(approved_for__isnull=True, rejected_at__isnull=True)
        else:
            errors["decision"] = [f"Unknown decision {decision!r}; use {', '.join(DECISIONS)}."]
    if params.get("post"):
        queryset = queryset.filter(review__post_id=params["post"])
    if params.get("section"):
        queryset = queryset.filter(review__section_key=params["section"])
    if params.get("group"):
        try:
            queryset = queryset.filter(group=uuid.UUID(params["group"]))
        except ValueError:
            errors["group"] = [f"group must be a UUID, not {params['group']!r}."]
    if params.get("style"):
        if params["style"].isascii() and params["style"].isdigit() and len(params["style"]) <= 18:
            queryset = queryset.filter(style_id=int(params["style"]))
        else:
            errors["style"] = [f"style must be a style's id (a whole number), not {params['style']!r}."]
    if params.get("requested_by"):
        field = get_user_model().USERNAME_FIELD
        queryset = queryset.filter(**{f"requested_by__{field}": params["requested_by"]})
    for name, lookup in (("since", "created_at__gte"), ("until", "created_at__lt")):
        if params.get(name):
            when = parse_when(params[name], name, errors)
            if when is not None:
                queryset = queryset.filter(**{lookup: when})
    items, meta = paginate(request, queryset, errors)
    return json_response({**meta, "results": with_actions(request, items)})
