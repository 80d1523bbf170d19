"""The status page: providers' health, the queue and its workers, a local ComfyUI."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import asdict, is_dataclass
from importlib import import_module
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext as _

from ..conf import app_settings
from ..models import (
    ACTIVE_STATUSES,
    ImageGenerationResult,
    ResultStatus,
)

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin


from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin

from .common import (
    admin_tool_urls,
    can,
    render_info,
)

logger = logging.getLogger("blogimages.admin")

HEALTH_TIMEOUT = 10.0


def _health(alias: str) -> dict[str, Any]:
    from ..providers import providers

    entry: dict[str, Any] = {"alias": alias, "backend": app_settings.PROVIDERS.get(alias, {}).get("BACKEND", "")}
    try:
        provider = providers[alias]
        entry["label"] = getattr(provider, "label", alias)
        entry["is_cloud"] = getattr(provider, "is_cloud", False)
        health = provider.health()
        entry.update(ok=bool(health.ok), detail=health.detail, info=render_info(health.info) if health.info else "")
    except Exception as exc:  # noqa: BLE001 - a broken provider is what this page is for
        entry.update(ok=False, detail=f"{exc.__class__.__name__}: {exc}", info="")
    return entry


def provider_health() -> list[dict[str, Any]]:
    """Every provider's health, checked in parallel so one slow server does not stall the page."""
    from ..providers import providers

    aliases = providers.aliases
    if not aliases:
        return []
    pool = ThreadPoolExecutor(max_workers=min(8, len(aliases)), thread_name_prefix="blogimages-health")
    futures = {alias: pool.submit(_health, alias) for alias in aliases}
    wait(futures.values(), timeout=HEALTH_TIMEOUT)
    pool.shutdown(wait=False, cancel_futures=True)
    entries = []
    for alias, future in futures.items():
        if future.done():
            entries.append(future.result())
        else:
            entries.append({
                "alias": alias, "backend": app_settings.PROVIDERS.get(alias, {}).get("BACKEND", ""), "ok": False,
                "detail": _("No answer within %(s)d seconds.") % {"s": HEALTH_TIMEOUT}, "info": "",
            })
    return entries


def openai_status() -> dict[str, Any]:
    """Whether an OpenAI provider is configured, and whether it has a key (without calling the API)."""
    import os

    from ..providers import providers

    aliases = [a for a, c in app_settings.PROVIDERS.items() if "openai" in str(c.get("BACKEND", "")).lower()]
    key = False
    for alias in aliases:
        try:
            provider = providers[alias]
        except Exception:  # noqa: BLE001 - the providers table shows why
            continue
        finder = getattr(provider, "api_key", None)
        key = key or bool(finder() if callable(finder) else provider.options.get("api_key"))
    if aliases and not key:
        key = bool(getattr(settings, "OPENAI_API_KEY", "") or os.environ.get("OPENAI_API_KEY"))
    return {"aliases": aliases, "key": key, "cloud_enabled": app_settings.ENABLE_CLOUD_APIS}


def rq_status() -> dict[str, Any]:
    import django_rq
    from redis.exceptions import RedisError
    from rq import Worker
    from rq.registry import FailedJobRegistry, FinishedJobRegistry, ScheduledJobRegistry, StartedJobRegistry

    queues = []
    error = ""
    for index, name in enumerate(getattr(settings, "RQ_QUEUES", {})):
        entry: dict[str, Any] = {"name": name, "index": index, "is_ours": name == app_settings.QUEUE}
        try:
            queue = django_rq.get_queue(name)
            workers = Worker.all(queue=queue)
            entry.update(
                jobs=queue.count,
                started=len(StartedJobRegistry(queue=queue)),
                failed=len(FailedJobRegistry(queue=queue)),
                finished=len(FinishedJobRegistry(queue=queue)),
                scheduled=len(ScheduledJobRegistry(queue=queue)),
                workers=[
                    {
                        "name": w.name, "state": w.get_state(), "job": w.get_current_job_id() or "",
                        "heartbeat": w.last_heartbeat, "successful": w.successful_job_count,
                        "failed": w.failed_job_count,
                    }
                    for w in workers
                ],
            )
        except RedisError as exc:
            entry["error"] = f"{exc.__class__.__name__}: {exc}"
            error = entry["error"]
        queues.append(entry)
    dashboard = ""
    for name in ("django_rq:home", "rq_home"):
        try:
            dashboard = reverse(name)
            break
        except NoReverseMatch:
            continue
    return {"queues": queues, "error": error, "dashboard": dashboard}


def local_comfyui_state() -> dict[str, Any]:
    """The optional local ComfyUI process, if an operator configured a start command."""
    command = app_settings.COMFYUI_START_COMMAND
    if not command:
        return {"configured": False}
    try:
        local_comfyui = import_module("blogimages.local_comfyui")
    except ImportError as exc:
        return {
            "configured": True, "available": False,
            "detail": _("Starting a local ComfyUI is not available in this installation (%(exc)s).") % {"exc": exc},
        }
    try:
        state = local_comfyui.status()
    except Exception as exc:  # noqa: BLE001 - show why instead of failing the page
        return {"configured": True, "available": True, "state": "", "detail": f"{exc.__class__.__name__}: {exc}"}
    if is_dataclass(state) and not isinstance(state, type):
        state = asdict(state)
    if not isinstance(state, dict):
        return {"configured": True, "available": True, "command": command, "running": None, "state": str(state)}
    shown = {k: v for k, v in state.items() if k in ("pid", "started_at", "workdir", "log_path") and v}
    return {
        "configured": True, "available": True, "command": command, "running": state.get("running"),
        "summary": state.get("detail", ""), "state": render_info(shown) if shown else "", "detail": "",
    }


def status_context(request: HttpRequest, *, urls: dict[str, str]) -> dict[str, Any]:
    """What the status page shows, for any admin (the caller checked the user may see it)."""
    counts = dict(
        ImageGenerationResult.objects.filter(status__in=[*ACTIVE_STATUSES, ResultStatus.FAILED])
        .values_list("status").annotate(n=Count("id")).values_list("status", "n")
    )
    return {
        "title": _("Image generation status"),
        "providers": provider_health(),
        "default_provider": app_settings.DEFAULT_PROVIDER,
        "openai": openai_status(),
        "rq": rq_status(),
        "queue_name": app_settings.QUEUE,
        "comfyui_public_url": app_settings.COMFYUI_PUBLIC_URL,
        "local": local_comfyui_state(),
        "can_control": can(request.user, "generate"),
        "control_url": urls["status_comfyui"],
        "playground_url": urls["playground"],
        "counts": counts,
        "results_url": urls["results"],
    }


def comfyui_control(request: HttpRequest, *, target: str) -> HttpResponse:
    """Start or stop the operator's local ComfyUI (needs the generate permission), then back to ``target``."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    if not can(request.user, "generate"):
        raise PermissionDenied
    op = request.POST.get("op")
    if not app_settings.COMFYUI_START_COMMAND:
        messages.error(request, _("No start command is configured (BLOGIMAGES_COMFYUI_START_COMMAND)."))
        return HttpResponseRedirect(target)
    try:
        local_comfyui = import_module("blogimages.local_comfyui")
    except ImportError as exc:
        messages.error(request, _("Starting a local ComfyUI is not available here (%(exc)s).") % {"exc": exc})
        return HttpResponseRedirect(target)
    try:
        if op == "start":
            local_comfyui.start()
            messages.success(request, _("Starting the local ComfyUI; this page shows when it answers."))
        elif op == "stop":
            local_comfyui.stop()
            messages.success(request, _("Stopped the local ComfyUI."))
        else:
            messages.error(request, _("Unknown operation."))
    except Exception as exc:  # noqa: BLE001 - the operator needs the reason, not a 500
        logger.exception("Local ComfyUI %s failed", op)
        messages.error(request, _("Could not %(op)s the local ComfyUI: %(exc)s") % {"op": op, "exc": exc})
    return HttpResponseRedirect(target)


def status_view(model_admin: ModelAdmin, request: HttpRequest) -> HttpResponse:
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    site = model_admin.admin_site.name
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.model._meta,
        **status_context(request, urls=admin_tool_urls(site)),
    }
    request.current_app = site
    return TemplateResponse(request, "blogimages/admin/status.html", context)


def comfyui_control_view(model_admin: ModelAdmin, request: HttpRequest) -> HttpResponse:
    """Start or stop the operator's local ComfyUI (needs the generate permission)."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    return comfyui_control(request, target=reverse(f"{model_admin.admin_site.name}:blogimages_status"))
