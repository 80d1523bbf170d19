"""The prompt playground: try one prompt on several providers side by side."""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, Max, Min
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from .. import services
from ..conf import app_settings
from ..exceptions import BlogImagesError
from ..forms import PlaygroundForm, initial_from_example, initial_from_result
from ..models import (
    ImageGenerationResult,
    ImagePromptExample,
    ResultSource,
    ResultStatus,
)

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin


from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin

from .common import (
    THUMB_WIDTH,
    Candidate,
    admin_base_context,
    can,
    file_url,
    live_previews,
    report_queue_errors,
    thumb_height,
)

logger = logging.getLogger("blogimages.admin")

# --- the prompt playground --------------------------------------------------------------------


def playground_cards(results) -> list[Candidate]:
    return [
        Candidate(result=r, thumb_url=file_url(r.thumbnail), image_url=file_url(r.image), thumb_height=thumb_height(r))
        for r in results
    ]


def _group_results(group: uuid.UUID):
    return list(
        ImageGenerationResult.objects.filter(group=group)
        .select_related("style", "image_format", "setting")
        .order_by("id")
    )


def _parse_group(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if value else None
    except ValueError:
        return None


def playground_page(
    request: HttpRequest,
    *,
    urls: dict[str, str],
    example_url: Callable[[int], str],
    template_name: str,
    base_context: Callable[[], dict[str, Any]],
) -> HttpResponse:
    """The prompt playground for any admin (the caller checked the user may see it).

    ``urls`` has the keys of :func:`admin_tool_urls`; ``example_url(pk)`` is where a saved
    prompt example is edited; ``base_context()`` is the admin's own template context,
    asked for only when the page is rendered.
    """
    group = _parse_group(request.GET.get("group"))
    results = _group_results(group) if group else []
    can_generate = can(request.user, "generate")
    can_save = request.user.has_perm("blogimages.add_imagepromptexample")

    if request.method == "POST":
        action = request.POST.get("action", "generate")
        if (action == "generate" and not can_generate) or (action == "save" and not can_save):
            raise PermissionDenied
        form = PlaygroundForm(request.POST)
        if action == "save":
            form.fields["example_name"].required = True
        if form.is_valid():
            if action == "save":
                return _save_example(request, form, urls, example_url, group)
            queued = _queue_comparison(request, form, urls)
            if queued is not None:
                return queued
    else:
        form = PlaygroundForm(initial=_initial(request, results))

    recent = (
        ImageGenerationResult.objects.filter(review__isnull=True, source=ResultSource.GENERATED)
        .values("group")
        .annotate(latest=Max("created_at"), count=Count("id"), prompt=Min("prompt"))
        .order_by("-latest")[:12]
    )
    context = {
        **base_context(),
        "title": _("Prompt playground"),
        "form": form,
        "group": group,
        "cards": playground_cards(results),
        "recent": recent,
        "can_generate": can_generate,
        "can_save": can_save,
        "status_url": urls["playground_status"] + (f"?group={group}" if group else ""),
        "models_url": urls["playground_models"],
        "playground_url": urls["playground"],
        "status_page_url": urls["status_page"],
        "thumb_width": THUMB_WIDTH,
        "results_url": urls["results"],
        "has_active": any(r.is_active for r in results),
        **tool_context(request, urls),
    }
    return TemplateResponse(request, template_name, context)


def tool_context(request: HttpRequest, urls: dict[str, str]) -> dict[str, Any]:
    """What the cards' viewer tools need (``_candidate_tools.html``, ``_viewer.html``)."""
    return {
        "perms_bi": {"generate": can(request.user, "generate"), "review": False, "upload": False},
        "urls": {"results": urls["results"], "playground": urls["playground"]},
        "gallery_url": urls.get("gallery", ""),
        "max_candidates": app_settings.MAX_CANDIDATES,
    }


#: Seeds a comparison shares stay below 2**31: every provider takes them as they are.
COMPARISON_SEED_LIMIT = 2**31


def comparison_overrides(form: PlaygroundForm) -> dict[str, Any]:
    """The form's overrides; several providers compared share ONE seed (issue 11): the
    editor's pinned one, else one drawn here, so the comparison differs only by provider."""
    overrides = form.overrides()
    if len(form.cleaned_data["providers"]) > 1 and overrides.get("seed") is None:
        overrides["seed"] = random.SystemRandom().randrange(COMPARISON_SEED_LIMIT)
    return overrides


def _save_example(request, form: PlaygroundForm, urls, example_url, group) -> HttpResponse:
    data = form.cleaned_data
    example = ImagePromptExample.objects.create(
        name=data["example_name"],
        prompt=data["prompt"],
        style=data["style"],
        image_format=data["image_format"],
        setting=data["setting"],
        provider=data["providers"][0] if len(data["providers"]) == 1 else "",
        model=data["model"],
        created_by=request.user,
    )
    link = format_html(_('Saved the prompt example <a href="{}">{}</a>.'), example_url(example.pk), example.name)
    messages.success(request, link)
    if form.overrides():
        messages.warning(
            request,
            _(
                "A prompt example keeps the prompt, style, format, setting, provider and model; "
                "the advanced values (seed, size, steps…) belong in an image setting."
            ),
        )
    target = urls["playground"] + f"?example={example.pk}"
    return HttpResponseRedirect(target + (f"&group={group}" if group else ""))


def _queue_comparison(request, form: PlaygroundForm, urls) -> HttpResponse | None:
    """Queue the form's prompt on each chosen provider; ``None`` (errors on the form) if refused."""
    data = form.cleaned_data
    spec = services.GenerationSpec(
        prompt=data["prompt"],
        providers=data["providers"],
        style=data["style"],
        image_format=data["image_format"],
        setting=data["setting"],
        model=data["model"],
        overrides=comparison_overrides(form),
    )
    try:
        created = services.request_generation(spec, user=request.user)
    except ValidationError as exc:
        by_field = exc.error_dict if hasattr(exc, "error_dict") else {None: exc.error_list}
        for name, errors in by_field.items():
            for error in errors:
                form.add_error(name if name in form.fields else None, error)
        return None
    except BlogImagesError as exc:
        form.add_error(None, str(exc))
        return None
    if not report_queue_errors(request, created):
        messages.success(
            request,
            ngettext("Queued %(count)d image.", "Queued %(count)d images side by side.", len(created))
            % {"count": len(created)},
        )
    return HttpResponseRedirect(urls["playground"] + f"?group={created[0].group}")


def _initial(request, results) -> dict[str, Any]:
    """The form's first values: a result to copy (``?from=``), a prompt example (``?example=``),
    the comparison on show, else the default provider."""
    default = {"providers": [app_settings.DEFAULT_PROVIDER]}
    copy_from, example_id = request.GET.get("from"), request.GET.get("example")
    if copy_from:
        source = (
            ImageGenerationResult.objects.select_related("style", "image_format", "setting")
            .filter(pk=copy_from if copy_from.isdigit() else 0)
            .first()
        )
        if source is not None:
            return initial_from_result(source)
        messages.error(request, _("There is no result #%(id)s to copy.") % {"id": copy_from})
        return default
    if example_id:
        example = ImagePromptExample.objects.filter(pk=example_id if example_id.isdigit() else 0).first()
        if example is None:
            return default
        return {**default, **{k: v for k, v in initial_from_example(example).items() if v not in (None, "")}}
    if results:
        return initial_from_result(results[0], providers=list(dict.fromkeys(r.provider for r in results)))
    return default


def playground_status(request: HttpRequest, *, urls: dict[str, str]) -> JsonResponse:
    """Progress of one playground comparison (``?group=``), each card's HTML included."""
    group = _parse_group(request.GET.get("group"))
    if group is None:
        return JsonResponse({"active": False, "results": []})
    context = {
        "thumb_width": THUMB_WIDTH,
        "playground_url": urls["playground"],
        "results_url": urls["results"],
        **tool_context(request, urls),
    }
    labels = dict(ResultStatus.choices)
    payload = []
    cards = playground_cards(_group_results(group))
    # Partial images of running results (one Redis MGET for the comparison): live.js shows them.
    previews = live_previews([c.result.pk for c in cards if c.result.status == ResultStatus.RUNNING])
    for card in cards:
        r = card.result
        payload.append(
            {
                "id": r.pk,
                "status": r.status,
                "status_label": str(labels.get(r.status, r.status)),
                "active": card.is_active,
                "progress": r.progress,
                "message": r.progress_message,
                "html": render_to_string("blogimages/admin/_playground_card.html", {**context, "card": card}, request),
                **previews.get(r.pk, {}),
            }
        )
    return JsonResponse({"active": any(p["active"] for p in payload), "results": payload})


def playground_models(request: HttpRequest) -> JsonResponse:
    """Model names for the chosen providers (asked when the editor ticks them, not on page load)."""
    from ..providers import providers

    found: dict[str, list[str]] = {}
    errors: dict[str, str] = {}
    for alias in request.GET.getlist("provider"):
        if alias not in providers:
            continue
        try:
            found[alias] = list(providers[alias].models())[:200]
        except Exception as exc:  # noqa: BLE001 - an unreachable server lists no models
            errors[alias] = f"{exc.__class__.__name__}: {exc}"
    return JsonResponse({"models": found, "errors": errors})


def playground_view(model_admin: ModelAdmin, request: HttpRequest) -> HttpResponse:
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    site = model_admin.admin_site.name
    base_context = admin_base_context(model_admin, request)

    from .gallery import admin_urls

    return playground_page(
        request,
        urls=admin_urls(site),
        example_url=lambda pk: reverse(f"{site}:blogimages_imagepromptexample_change", args=[pk]),
        template_name="blogimages/admin/playground.html",
        base_context=base_context,
    )


def playground_status_view(model_admin: ModelAdmin, request: HttpRequest) -> JsonResponse:
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    if _parse_group(request.GET.get("group")) is None:
        return JsonResponse({"active": False, "results": []})
    from .gallery import admin_urls

    return playground_status(request, urls=admin_urls(model_admin.admin_site.name))


def playground_models_view(model_admin: ModelAdmin, request: HttpRequest) -> JsonResponse:
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    return playground_models(request)
