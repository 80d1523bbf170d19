"""The status page: renders :mod:`blogimages.status` (providers, OpenAI, queues, a local ComfyUI).

The page only reads. A local ComfyUI is started and stopped from a shell with
``manage.py blogimages_comfyui``; the page shows its state and that command.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from .. import status
from ..conf import app_settings
from .common import admin_tool_urls, render_info

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin


def rq_dashboard_url() -> str:
    """django-rq's dashboard, when its URLs are included."""
    for name in ("django_rq:home", "rq_home"):
        try:
            return reverse(name)
        except NoReverseMatch:
            continue
    return ""


def status_context(request: HttpRequest, *, urls: dict[str, str]) -> dict[str, Any]:
    """What the status page shows, for any admin (the caller checked the user may see it)."""
    local = status.local_comfyui_state()
    return {
        "title": _("Image generation status"),
        # The info dicts become tables here: the template cannot build them.
        "providers": [
            {**asdict(row), "info": render_info(row.info) if row.info else ""} for row in status.provider_health()
        ],
        "default_provider": app_settings.DEFAULT_PROVIDER,
        "openai": status.openai_status(),
        "rq": status.queue_status(),
        "rq_dashboard": rq_dashboard_url(),
        "queue_name": app_settings.QUEUE,
        "counts": status.result_counts().by_status,
        "comfyui_public_url": app_settings.COMFYUI_PUBLIC_URL,
        "local": local,
        "local_details": render_info(local.details) if local.details else "",
        "playground_url": urls["playground"],
        "results_url": urls["results"],
        "spend": status.spend(),
    }


def status_view(model_admin: ModelAdmin, request: HttpRequest) -> HttpResponse:
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    if request.GET.get("spend") == "csv":
        from ..costs import spend_csv

        month = timezone.localtime().strftime("%Y-%m")
        response = HttpResponse(spend_csv(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="blogimages-spend-{month}.csv"'
        return response
    site = model_admin.admin_site.name
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.model._meta,
        **status_context(request, urls=admin_tool_urls(site)),
        "spend_csv_url": "?spend=csv",
    }
    request.current_app = site
    return TemplateResponse(request, "blogimages/admin/status.html", context)
