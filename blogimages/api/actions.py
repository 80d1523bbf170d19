"""What an editor does with one candidate, as on the review page: approve, reject, cancel,
requeue, regenerate, and send a playground result to a section (``attach``), as
``POST /api/v1/images/results/<id>/<action>``; and several at once (``decide``, as
``POST /api/v1/images/results/decide``).

Each needs the blogimages permission the review page asks for and the host's say for the
result's post (``services.require``); the rules are the service layer's. Every answer is
``{"message": sentence, "result": {...}}`` (the result as ``GET`` shows it), plus what the
action adds (``replaced``, ``unchanged``, ``warnings``, ``regenerated_from``).
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.http import HttpRequest, HttpResponse

from .. import services
from ..models import ImageGenerationResult, ReviewStatus
from .framework import (
    PERM_GENERATE,
    ApiError,
    Errors,
    endpoint,
    invalid,
    is_int,
    json_response,
    read_body,
    unknown_fields,
)
from .generation import _section, idempotency_key
from .results import result_url, results_queryset, with_actions

PERM_REVIEW = "blogimages.review_images"


def _result(pk: int) -> ImageGenerationResult:
    result = results_queryset().filter(pk=pk).first()
    if result is None:
        raise ApiError(404, f"No result with id {pk}.")
    return result


def _post_of(result: ImageGenerationResult) -> Any:
    return result.review.post if result.review_id else None


def _answer(request: HttpRequest, result: ImageGenerationResult, message: str, status: int = 200, **extra: Any):
    fresh = results_queryset().get(pk=result.pk)
    response = json_response({"message": message, "result": with_actions(request, [fresh])[0], **extra}, status)
    return response


def _text(data: dict[str, Any], name: str, errors: Errors) -> str | None:
    value = data.get(name)
    if value is not None and not isinstance(value, str):
        errors[name] = [f"{name} must be a string, not {value!r}."]
        return None
    return value


def no_fields(request: HttpRequest) -> None:
    """An action that takes no fields: an empty body or ``{}``."""
    errors: Errors = {}
    unknown_fields(read_body(request, required=False), set(), errors)
    if errors:
        raise invalid(errors)


def _flag(data: dict[str, Any], name: str, errors: Errors) -> bool:
    value = data.get(name, False)
    if not isinstance(value, bool):
        errors[name] = [f"{name} must be true or false, not {value!r}."]
        return False
    return value


@endpoint({"POST": (PERM_REVIEW,)})
def approve(request: HttpRequest, pk: int) -> HttpResponse:
    """``{"alt_text"?, "comment"?, "replaces"?}``: ``replaces`` is the approved result the
    client saw (``null``: none); if the approval changed since, 409 says who changed it.
    Without it, whatever is approved now is replaced (and ``replaced`` names it)."""
    data = read_body(request, required=False)
    errors: Errors = {}
    unknown_fields(data, {"alt_text", "comment", "replaces"}, errors)
    alt_text = _text(data, "alt_text", errors)
    comment = _text(data, "comment", errors) or ""
    replaces = data.get("replaces", services.UNCHECKED)
    if replaces is not services.UNCHECKED and replaces is not None and not is_int(replaces):
        errors["replaces"] = [f"replaces must be the approved result's id or null, not {replaces!r}."]
    if errors:
        raise invalid(errors)
    result = _result(pk)
    services.require(request.user, "review", _post_of(result))
    if result.review_id:
        services.refuse_removed_section(result.review)
    alt_text = services.clean_alt_text(alt_text)
    # One transaction: the host's publish hook (after commit) sees the alt text confirmed here.
    with transaction.atomic():
        review = services.approve(result, user=request.user, comment=comment.strip(), replaces=replaces)
        if alt_text is not None:
            services.save_alt_text(review, alt_text)
    warnings = []
    if not (alt_text if alt_text is not None else review.alt_text):
        warnings.append(f"Image #{result.pk} is published without alt text; set it with PATCH on its section.")
    if review.unchanged:
        message = f"Image #{result.pk} is already approved; nothing changed."
    elif review.replaced_id:
        message = f"Approved image #{result.pk}; it replaces image #{review.replaced_id}."
    else:
        message = f"Approved image #{result.pk}."
    return _answer(request, result, message, replaced=review.replaced_id, unchanged=review.unchanged, warnings=warnings)


@endpoint({"POST": (PERM_REVIEW,)})
def reject(request: HttpRequest, pk: int) -> HttpResponse:
    """``{"comment": "why"}`` (required): the candidate carries its rejection; rejecting the
    approved image leaves its section without one."""
    data = read_body(request)
    errors: Errors = {}
    unknown_fields(data, {"comment"}, errors)
    comment = _text(data, "comment", errors)
    if errors:
        raise invalid(errors)
    result = _result(pk)
    services.require(request.user, "review", _post_of(result))
    review = services.reject(result=result, user=request.user, comment=comment or "")
    if review.status == ReviewStatus.REJECTED and review.approved_result_id is None:
        message = f"Rejected image #{result.pk}; its section has no approved image now."
    else:
        message = f"Rejected image #{result.pk}."
    return _answer(request, result, message)


#: The most candidates one bulk decision takes (the review page's largest post has a few hundred).
DECIDE_MAX = 500


@endpoint({"POST": (PERM_REVIEW,)})
def decide(request: HttpRequest) -> HttpResponse:
    """``{"decision": "approve" | "reject", "ids": [id, ...], "comment"?}``: several candidates
    approved or rejected at once, all or none (``services.decide_many``, as the review page's
    "Approve selected" / "Reject selected"). A rejection needs the comment; each result's post
    must allow this user to review (the host's say, as for one candidate)."""
    data = read_body(request)
    errors: Errors = {}
    unknown_fields(data, {"decision", "ids", "comment"}, errors)
    decision = _text(data, "decision", errors)
    if decision is None and "decision" not in errors:
        errors["decision"] = ["decision is required: “approve” or “reject”."]
    elif decision is not None and decision not in ("approve", "reject"):
        errors["decision"] = [f"decision must be “approve” or “reject”, not {decision!r}."]
    comment = _text(data, "comment", errors) or ""
    ids = data.get("ids")
    if not isinstance(ids, list) or not all(is_int(value) and 0 < value < 2**31 for value in ids):
        errors["ids"] = [f"ids must be a list of result ids (whole numbers from 1), not {ids!r}."[:300]]
    elif not ids:
        errors["ids"] = ["ids is empty: name the results to approve or reject."]
    elif len(ids) > DECIDE_MAX:
        errors["ids"] = [f"ids names {len(ids)} results; at most {DECIDE_MAX} at once."]
    if errors:
        raise invalid(errors)
    wanted = sorted(set(ids))
    results = list(results_queryset().filter(pk__in=wanted))
    missing = sorted(set(wanted) - {r.pk for r in results})
    if missing:
        raise ApiError(404, f"No result with id {missing[0]}.")
    # One check per post (the host's say), not per candidate.
    checked: set[tuple[int, str]] = set()
    for result in results:
        if result.review_id and (result.review.post_type_id, result.review.post_id) not in checked:
            checked.add((result.review.post_type_id, result.review.post_id))
            services.require(request.user, "review", result.review.post)
    if decision == "approve":
        for result in results:
            if result.review_id:
                services.refuse_removed_section(result.review)
    outcome = services.decide_many(results, decision=decision, user=request.user, comment=comment)
    fresh = list(results_queryset().filter(pk__in=wanted).order_by("pk"))
    bare = services.without_alt_text(fresh) if decision == "approve" else []
    return json_response(
        {
            "message": outcome.summary,
            "decision": outcome.decision,
            "results": with_actions(request, fresh),
            "replaced": [{"result": new, "replaced": old} for new, old in sorted(outcome.replaced.items())],
            # As for one approval: published all the same, and said (the page asks first).
            "warnings": [
                f"Image #{r.pk} is published without alt text; set it with PATCH on its section." for r in bare
            ],
        }
    )


@endpoint({"POST": (PERM_GENERATE,)})
def cancel(request: HttpRequest, pk: int) -> HttpResponse:
    no_fields(request)
    result = _result(pk)
    services.require(request.user, "generate", _post_of(result))
    services.cancel(result, user=request.user)
    return _answer(request, result, f"Cancelled image #{result.pk}.")


def _raise_for_queue(request: HttpRequest, result: ImageGenerationResult) -> None:
    errors = services.queue_errors([result])
    if errors:
        # The row exists and stays queued; the client can re-queue it later.
        fresh = results_queryset().get(pk=result.pk)
        raise ApiError(503, errors[0], result=with_actions(request, [fresh])[0])


@endpoint({"POST": (PERM_GENERATE,)})
def requeue(request: HttpRequest, pk: int) -> HttpResponse:
    no_fields(request)
    result = _result(pk)
    services.require(request.user, "generate", _post_of(result))
    services.requeue(result, user=request.user)
    _raise_for_queue(request, result)
    return _answer(request, result, f"Sent image #{result.pk} to the queue again.", status=202)


@endpoint({"POST": (PERM_GENERATE,)})
def regenerate(request: HttpRequest, pk: int) -> HttpResponse:
    """``{"same_seed"?: bool}``: a new candidate with the same settings. An ``Idempotency-Key``
    sent again gets the first request's candidate (``Idempotent-Replayed: true``)."""
    data = read_body(request, required=False)
    errors: Errors = {}
    unknown_fields(data, {"same_seed"}, errors)
    same_seed = _flag(data, "same_seed", errors)
    if errors:
        raise invalid(errors)
    key = idempotency_key(request)
    result = _result(pk)
    services.require(request.user, "generate", _post_of(result))
    new = services.regenerate(result, user=request.user, same_seed=same_seed, idempotency_key=key)
    _raise_for_queue(request, new)
    repeated = getattr(new, "repeated", False)
    if repeated:
        message = f"This request was already made (image #{new.pk}); nothing new was queued."
    else:
        seed = "the same seed" if same_seed else "a new seed"
        message = f"Queued image #{new.pk}, like image #{result.pk} with {seed}."
    response = _answer(request, new, message, status=202, regenerated_from=result.pk)
    response["Location"] = result_url(request, new.pk)
    if repeated:
        response["Idempotent-Replayed"] = "true"
    return response


@endpoint({"POST": (PERM_GENERATE,)})
def attach(request: HttpRequest, pk: int) -> HttpResponse:
    """``{"post": id, "section": key}``: send a finished playground result to a section, where
    it becomes one of its candidates (the playground's "Send to a section")."""
    data = read_body(request)
    errors: Errors = {}
    unknown_fields(data, {"post", "section"}, errors)
    if data.get("section") is None:
        errors["section"] = ['Name the section ("section": key, with "post": id).']
    section = _section(data, errors) if "section" not in errors else None
    if errors:
        raise invalid(errors)
    result = _result(pk)
    services.attach_to_section(result, section, user=request.user)
    return _answer(request, result, f"Sent image #{result.pk} to “{section.title}”.")
