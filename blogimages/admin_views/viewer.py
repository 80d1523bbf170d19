"""The image viewer's server side: what a candidate can be refined with, the refine request
itself, and sending a playground result to a section of a post.

Every view here is thin: it reads the request, checks who may see the image, and calls the
service (``blogimages.refining.refine``, ``services.attach_to_section``); the rules and the
sentences for bad input live there. Answers are JSON for ``viewer.js``: ``{"error",
"errors": {field: [...]}}`` with status 400/403/404 when refused. The hosts (Django admin,
Wagtail, django CMS) route their own URLs to these functions: each lives under the host's
results URL (``<results>/viewer/<pk>/refine/`` ...), so templates find them from ``urls.results``.
"""

from __future__ import annotations

import logging
from itertools import islice
from typing import TYPE_CHECKING, Any

from django.contrib import messages
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, JsonResponse
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from .. import services
from ..exceptions import BlogImagesError
from ..hosts import get_host
from ..models import ImageGenerationResult
from .common import error_text

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin

logger = logging.getLogger("blogimages.admin")

#: The refine form's fields, as the service names them.
REFINE_FIELDS = ("operation", "instruction", "strength", "fidelity", "scale", "provider", "candidates", "mask")
POSTS_LISTED = 50


def refusal(message: str, status: int = 400, errors: dict[str, list[str]] | None = None) -> JsonResponse:
    return JsonResponse({"error": message, "errors": errors or {}}, status=status)


def _result(pk: int) -> ImageGenerationResult | None:
    return ImageGenerationResult.objects.select_related("review", "image_format").filter(pk=pk).first()


def post_of(result: ImageGenerationResult) -> Any:
    """The host post a candidate belongs to (``None`` for a playground image or a gone post)."""
    if result.review_id is None:
        return None
    return get_host().get_post(result.review.post_type, result.review.post_id)


def may_see(user, result: ImageGenerationResult) -> bool:
    post = post_of(result)
    if result.review_id is not None and post is None:
        return services.can(user, "view")
    return services.can(user, "view", post)


def _errors_of(exc: ValidationError) -> dict[str, list[str]]:
    if hasattr(exc, "error_dict"):
        return {name: [str(m) for m in ValidationError(errors).messages] for name, errors in exc.error_dict.items()}
    return {"__all__": list(exc.messages)}


# --- what a candidate can be refined with ---------------------------------------------------------


def edit_options(request: HttpRequest, pk: int) -> JsonResponse:
    """``{"provider", "operations": {op: "" or why not}, "strength", "fidelity", "providers",
    "width", "height", "format": [w, h] or null}`` for the refine form (``?provider=`` to ask another)."""
    result = _result(pk)
    if result is None:
        return refusal(_("There is no image #%(id)s.") % {"id": pk}, 404)
    if not may_see(request.user, result):
        return refusal(_("You may not see this image."), 403)
    from ..providers import providers

    provider = request.GET.get("provider") or None
    if provider is not None and provider not in providers.aliases and provider != "auto":
        return refusal(_("There is no provider “%(alias)s”.") % {"alias": provider}, 400, {"provider": ["unknown"]})
    try:
        from .. import refining
    except ImportError:
        return refusal(_("Refining is not available on this site."), 503)
    try:
        options = refining.edit_options(result, provider=provider)
    except (BlogImagesError, ValidationError) as exc:
        return refusal(error_text(exc))
    fmt = result.image_format
    return JsonResponse(
        {
            **options,
            "providers": list(providers.aliases),
            "width": result.width,
            "height": result.height,
            "format": [fmt.width, fmt.height] if fmt is not None else None,
            "may_generate": services.can(request.user, "generate", post_of(result)),
        }
    )


# --- refine, variations, upscale, reference --------------------------------------------------------


def _number(request: HttpRequest, name: str, label: str) -> float | None:
    raw = (request.POST.get(name) or "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ValidationError(
            {name: _("%(label)s must be a number, not “%(value)s”.") % {"label": label, "value": raw[:40]}}
        ) from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ValidationError({name: _("%(label)s must be a number.") % {"label": label}})
    return value


def refine(request: HttpRequest, pk: int) -> JsonResponse:
    """POST: queue a refine / variations / upscale / reference of image ``pk`` through
    ``refining.refine``; 202 ``{"results": [{"id", "group", "section"}], "message"}``."""
    if request.method != "POST":
        return refusal(_("Send the refine form with POST."), 405)
    result = _result(pk)
    if result is None:
        return refusal(_("There is no image #%(id)s.") % {"id": pk}, 404)
    post = post_of(result)
    if not services.can(request.user, "generate", post):
        return refusal(_("You may not make images for this post."), 403)
    try:
        from .. import refining
    except ImportError:
        return refusal(_("Refining is not available on this site."), 503)
    data = request.POST
    try:
        raw_candidates = (data.get("candidates") or "1").strip()
        if not raw_candidates.isdigit():
            raise ValidationError(
                {
                    "candidates": _("Ask for a whole number of candidates, not “%(value)s”.")
                    % {"value": raw_candidates[:20]}
                }
            )
        made = refining.refine(
            result,
            operation=(data.get("operation") or "").strip(),
            instruction=(data.get("instruction") or "").strip(),
            mask=request.FILES.get("mask"),
            strength=_number(request, "strength", _("Strength")),
            fidelity=(data.get("fidelity") or "").strip(),
            scale=_number(request, "scale", _("The upscale factor")),
            provider=(data.get("provider") or "").strip() or None,
            candidates=int(raw_candidates),
            user=request.user,
            idempotency_key=data.get("request_key") or None,
        )
    except ValidationError as exc:
        errors = _errors_of(exc)
        return refusal(" ".join(m for ms in errors.values() for m in ms), 400, errors)
    except PermissionDenied as exc:
        return refusal(str(exc) or _("You may not make images for this post."), 403)
    except BlogImagesError as exc:  # a budget, an unavailable provider: one sentence
        return refusal(error_text(exc))
    errors = services.queue_errors(made)
    operation = made[0].get_operation_display().lower() if made else ""
    ids = ", ".join(f"#{r.pk}" for r in made)
    if errors:
        text = _("%(ids)s could not be sent to the job queue. %(error)s") % {"ids": ids, "error": errors[0]}
        messages.error(request, text)
        return refusal(text, 503)
    if made and getattr(made[0], "repeated", False):
        text = _("This request was already made (%(ids)s); nothing new was queued.") % {"ids": ids}
    else:
        text = ngettext(
            "Queued image %(ids)s (%(operation)s of #%(parent)s).",
            "Queued images %(ids)s (%(operation)s of #%(parent)s).",
            len(made),
        ) % {"ids": ids, "operation": operation, "parent": result.pk}
    messages.success(request, text)
    section = result.review.section_key if result.review_id else None
    return JsonResponse(
        {
            "message": text,
            "results": [{"id": r.pk, "group": str(r.group), "section": section} for r in made],
        },
        status=202,
    )


# --- send a playground result to a section -------------------------------------------------------


def post_ref(post: Any) -> str:
    """How the section picker names a post: ``"<content type id>-<pk>"``."""
    return f"{ContentType.objects.get_for_model(post).pk}-{post.pk}"


def find_post(ref: str) -> Any:
    type_id, _sep, pk = (ref or "").partition("-")
    if not type_id.isdigit() or not pk:
        return None
    try:
        content_type = ContentType.objects.get_for_id(int(type_id))
    except ContentType.DoesNotExist:
        return None
    return get_host().get_post(content_type, pk)


def posts(request: HttpRequest) -> JsonResponse:
    """Posts the user may make images for, whose title contains ``?q=`` (at most 50)."""
    query = (request.GET.get("q") or "").strip().lower()[:200]
    host = get_host()
    found = []
    for post in islice(host.posts(), 5000):
        title = host.post_title(post)
        if query and query not in title.lower():
            continue
        if not services.can(request.user, "generate", post):
            continue
        found.append({"ref": post_ref(post), "title": title})
        if len(found) >= POSTS_LISTED:
            break
    return JsonResponse({"posts": found})


def sections(request: HttpRequest) -> JsonResponse:
    """The sections of post ``?post=<ref>``: ``{"sections": [{"key", "title"}]}``."""
    post = find_post(request.GET.get("post", ""))
    if post is None:
        return refusal(_("Choose a post first."), 404, {"post": ["unknown"]})
    if not services.can(request.user, "generate", post):
        return refusal(_("You may not make images for this post."), 403)
    return JsonResponse({"sections": [{"key": s.key, "title": s.title or s.key} for s in get_host().sections(post)]})


def attach(request: HttpRequest, pk: int) -> JsonResponse:
    """POST ``post`` (ref) and ``section`` (key): make playground image ``pk`` a candidate
    of that section (``services.attach_to_section``)."""
    if request.method != "POST":
        return refusal(_("Send the form with POST."), 405)
    result = _result(pk)
    if result is None:
        return refusal(_("There is no image #%(id)s.") % {"id": pk}, 404)
    post = find_post(request.POST.get("post", ""))
    if post is None:
        return refusal(_("Choose the post to send the image to."), 400, {"post": [_("Choose a post.")]})
    key = (request.POST.get("section") or "").strip()
    section = get_host().section(post, key) if key else None
    if section is None:
        return refusal(_("Choose a section of that post."), 400, {"section": [_("Choose a section.")]})
    try:
        services.attach_to_section(result, section, user=request.user)
    except PermissionDenied:
        return refusal(_("You may not make images for this post."), 403)
    except ValidationError as exc:
        errors = _errors_of(exc)
        return refusal(" ".join(m for ms in errors.values() for m in ms), 400, errors)
    text = _("Sent image #%(id)s to “%(section)s” of “%(post)s”; it is a candidate there now.") % {
        "id": result.pk,
        "section": section.title or section.key,
        "post": get_host().post_title(post),
    }
    return JsonResponse({"message": text, "section": section.key})


# --- Django admin's URLs (the results ModelAdmin's get_urls) ----------------------------------------


def admin_urls(model_admin: ModelAdmin) -> list:
    """The gallery and the viewer's endpoints under the results admin (``imagegenerationresult/``):
    ``gallery/``, ``viewer/posts/``, ``viewer/sections/``, ``viewer/<pk>/options/``,
    ``viewer/<pk>/refine/``, ``viewer/<pk>/attach/``."""
    from django.urls import path

    from .gallery import gallery_view

    wrap = model_admin.admin_site.admin_view

    def guarded(view):
        def bound(request, *args, **kwargs):
            if not model_admin.has_view_permission(request):
                raise PermissionDenied
            return view(request, *args, **kwargs)

        bound.__name__ = view.__name__
        return bound

    def gallery(request):
        return gallery_view(model_admin, request)

    return [
        path("gallery/", wrap(gallery), name="blogimages_gallery"),
        path("viewer/posts/", wrap(guarded(posts)), name="blogimages_viewer_posts"),
        path("viewer/sections/", wrap(guarded(sections)), name="blogimages_viewer_sections"),
        path("viewer/<int:pk>/options/", wrap(guarded(edit_options)), name="blogimages_viewer_options"),
        path("viewer/<int:pk>/refine/", wrap(guarded(refine)), name="blogimages_viewer_refine"),
        path("viewer/<int:pk>/attach/", wrap(guarded(attach)), name="blogimages_viewer_attach"),
    ]
