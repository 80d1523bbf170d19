"""A post's sections, as the review page shows and changes them.

``GET /api/v1/posts/<id>/sections`` (every section, removed ones last),
``GET|PATCH /api/v1/posts/<id>/sections/<key>`` (``{"prompt"?, "alt_text"?}``),
``POST .../reject`` (the section's images as a whole, ``{"comment"}``),
``POST .../comments`` (``{"comment"}``) and ``POST .../upload`` (multipart/form-data:
``file``, ``approve_now``, ``alt_text``; ``Idempotency-Key`` honoured).

A section removed from its post is still found by its key (its history stays); it takes
comments and rejections, but no new image, prompt or approval.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.urls import reverse

from .. import services
from ..hosts import Section, get_host, post_reference
from ..models import ReviewEvent, ReviewStatus, SectionReview
from .framework import (
    PERM_VIEW_RESULT,
    ApiError,
    Errors,
    endpoint,
    invalid,
    json_response,
    read_body,
    read_form,
    unknown_fields,
)
from .generation import idempotency_key
from .results import result_url, results_queryset, with_actions

PERM_REVIEW = "blogimages.review_images"
PERM_UPLOAD = "blogimages.upload_images"
HISTORY_SHOWN = 20
TRUE_WORDS, FALSE_WORDS = ("true", "1", "on", "yes"), ("false", "0", "off", "no", "")


def _post(pk: int) -> Any:
    post = get_host().find_post(str(pk))
    if post is None:
        raise ApiError(404, f"No post with id {pk}.")
    return post


def _target(pk: int, key: str) -> tuple[Any, Section | SectionReview]:
    """The post and its section ``key``: the host's section, or the review of one removed."""
    post = _post(pk)
    target = get_host().section(post, key) or SectionReview.objects.for_post(post).filter(section_key=key).first()
    if target is None:
        raise ApiError(404, f"Post {pk} has no section {key!r}.")
    return post, target


def _review(target: Section | SectionReview) -> SectionReview | None:
    return target if isinstance(target, SectionReview) else services.find_review(target)


def section_url(request: HttpRequest, post: Any, key: str) -> str:
    return request.build_absolute_uri(reverse("blogimages:api-section", args=[post.pk, key]))


def _event_json(event: ReviewEvent) -> dict[str, Any]:
    return {
        "action": event.action,
        "user": event.user.get_username() if event.user else None,
        "result": event.result_id,
        "comment": event.comment,
        "created_at": event.created_at,
    }


def section_json(
    request: HttpRequest,
    post: Any,
    target: Section | SectionReview,
    review: SectionReview | None,
    example: Any = None,
    history: list[ReviewEvent] | None = None,
) -> dict[str, Any]:
    removed = isinstance(target, SectionReview)
    key = target.section_key if removed else target.key
    if removed:
        prompt, source = review.prompt_override, "the section's prompt override (the section was removed)"
    else:
        # An unsaved review where none exists yet: a GET creates no rows.
        shown = review or SectionReview(prompt_override="")
        prompt, source = services.section_prompt_and_source(target, shown, example)
    query = urlencode({"post": str(post.pk), "section": key})
    body = {
        "post": str(post.pk),
        "section": key,
        "url": section_url(request, post, key),
        "title": (review.section_title if removed else target.title) or key,
        "removed": removed,
        "status": review.status if review else ReviewStatus.PENDING,
        "approved_result": review.approved_result_id if review else None,
        "alt_text": review.alt_text if review else "",
        "prompt": prompt,
        "prompt_source": str(source),
        "prompt_override": review.prompt_override if review else "",
        "comment": review.comment if review else "",
        "reviewed_by": review.reviewed_by.get_username() if review and review.reviewed_by else None,
        "reviewed_at": review.reviewed_at if review else None,
        "results": request.build_absolute_uri(f"{reverse('blogimages:api-results')}?{query}"),
    }
    if history is not None:
        body["history"] = [_event_json(event) for event in history]
    return body


def _example(post: Any, review: SectionReview | None):
    if review is not None:
        return services.prompt_example_for(review)
    post_type, post_id = post_reference(post)
    return services.prompt_example_for(SectionReview(post_type=post_type, post_id=post_id))


def _detail(request: HttpRequest, post: Any, target: Section | SectionReview) -> dict[str, Any]:
    review = _review(target)
    history = []
    if review is not None:
        events = review.events.select_related("user").order_by("-created_at", "-id")[:HISTORY_SHOWN]
        history = list(events)
    return section_json(request, post, target, review, _example(post, review), history)


@endpoint({"GET": (PERM_VIEW_RESULT,)})
def section_list(request: HttpRequest, pk: int) -> HttpResponse:
    post = _post(pk)
    services.require(request.user, "view", post)
    sections = list(get_host().sections(post))
    reviews = {r.section_key: r for r in SectionReview.objects.for_post(post).select_related("reviewed_by")}
    example = _example(post, None)
    body = [section_json(request, post, section, reviews.get(section.key), example) for section in sections]
    body += [section_json(request, post, review, review) for review in services.removed_reviews(post, sections)]
    return json_response({"post": str(post.pk), "title": get_host().post_title(post), "sections": body})


@endpoint({"GET": (PERM_VIEW_RESULT,), "PATCH": (PERM_VIEW_RESULT,)})
def section_detail(request: HttpRequest, pk: int, key: str) -> HttpResponse:
    """``PATCH {"prompt"?, "alt_text"?}``: the section's prompt override (blank: none; needs
    the generate permission) and its approved image's alt text (needs the review permission)."""
    post, target = _target(pk, key)
    if request.method == "PATCH":
        data = read_body(request)
        errors: Errors = {}
        unknown_fields(data, {"prompt", "alt_text"}, errors)
        for name in ("prompt", "alt_text"):
            if name in data and not isinstance(data[name], str):
                errors[name] = [f"{name} must be a string, not {data[name]!r}."]
        if not errors and not data:
            errors["__all__"] = ['Send "prompt", "alt_text" or both.']
        if errors:
            raise invalid(errors)
        if "prompt" in data:
            services.require(request.user, "generate", post)
            services.refuse_removed_section(target)
        if "alt_text" in data:
            services.require(request.user, "review", post)
        with transaction.atomic():
            if "prompt" in data:
                services.save_prompt(target, data["prompt"])
            if "alt_text" in data:
                review = _review(target)
                if review is None or review.approved_result_id is None:
                    title = review.section_title if isinstance(target, SectionReview) else target.title
                    raise invalid({"alt_text": [f"“{title}” has no approved image to describe."]})
                services.save_alt_text(review, data["alt_text"])
    else:
        services.require(request.user, "view", post)
    return json_response(_detail(request, post, target))


@endpoint({"POST": (PERM_REVIEW,)})
def section_reject(request: HttpRequest, pk: int, key: str) -> HttpResponse:
    """``{"comment"}`` (required): reject the section's images as a whole (and its approval)."""
    data = read_body(request)
    errors: Errors = {}
    unknown_fields(data, {"comment"}, errors)
    comment = data.get("comment")
    if comment is not None and not isinstance(comment, str):
        errors["comment"] = [f"comment must be a string, not {comment!r}."]
    if errors:
        raise invalid(errors)
    post, target = _target(pk, key)
    services.require(request.user, "review", post)
    services.reject(target, user=request.user, comment=comment or "")
    return json_response({"message": "Rejected the section's images.", "section": _detail(request, post, target)})


@endpoint({"POST": (PERM_VIEW_RESULT,)})
def section_comment(request: HttpRequest, pk: int, key: str) -> HttpResponse:
    """``{"comment"}``: add to the section's history (anyone who may see the post)."""
    data = read_body(request)
    errors: Errors = {}
    unknown_fields(data, {"comment"}, errors)
    comment = data.get("comment")
    if not isinstance(comment, str):
        errors["comment"] = ["Write the comment." if comment is None else f"comment must be a string, not {comment!r}."]
    if errors:
        raise invalid(errors)
    post, target = _target(pk, key)
    services.require(request.user, "view", post)
    event = services.add_comment(target, user=request.user, text=comment)
    body = {"message": "Comment added.", "event": _event_json(event), "section": _detail(request, post, target)}
    return json_response(body, status=201)


def _form_flag(fields: dict[str, str], name: str, errors: Errors) -> bool:
    raw = (fields.get(name) or "").strip().lower()
    if raw not in TRUE_WORDS + FALSE_WORDS:
        errors[name] = [f"{name} must be true or false, not {fields[name]!r}."]
        return False
    return raw in TRUE_WORDS


@endpoint({"POST": (PERM_UPLOAD,)})
def section_upload(request: HttpRequest, pk: int, key: str) -> HttpResponse:
    """multipart/form-data: ``file`` (an image), ``approve_now`` (true/false; approving needs
    the review permission too) and ``alt_text`` (the approved image's, with ``approve_now``).
    An ``Idempotency-Key`` sent again gets the first upload's result; nothing new is stored."""
    fields, files = read_form(request)
    errors: Errors = {}
    unknown_fields({**fields, **files}, {"file", "approve_now", "alt_text"}, errors)
    upload = files.get("file")
    if upload is None:
        errors["file"] = ["Choose an image file to upload (the form field 'file')."]
    approve_now = _form_flag(fields, "approve_now", errors)
    alt_text = fields.get("alt_text")
    if errors:
        raise invalid(errors)
    key_header = idempotency_key(request)
    post, target = _target(pk, key)
    services.require(request.user, "upload", post)
    if approve_now:
        services.require(request.user, "review", post)
    services.refuse_removed_section(target)
    new = services.upload_once(
        target, upload, user=request.user, approve_now=approve_now, alt_text=alt_text, idempotency_key=key_header
    )
    fresh = results_queryset().get(pk=new.pk)
    repeated = getattr(new, "repeated", False)
    if repeated:
        message = f"This upload was already made (image #{new.pk}); nothing new was stored."
    else:
        message = f"Uploaded {upload.name} as image #{new.pk}" + (" and approved it." if approve_now else ".")
    warnings = []
    if approve_now and not (fresh.review.alt_text if fresh.review_id else ""):
        warnings.append(f"Image #{new.pk} is published without alt text; set it with PATCH on its section.")
    body = {
        "message": message,
        "result": with_actions(request, [fresh])[0],
        "section": _detail(request, post, target),
        "warnings": warnings,
    }
    response = json_response(body, status=200 if repeated else 201)
    response["Location"] = result_url(request, new.pk)
    if repeated:
        response["Idempotent-Replayed"] = "true"
    return response
