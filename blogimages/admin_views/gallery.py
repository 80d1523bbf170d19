"""The gallery: every result, newest first, with filters; the library's "what did we make" view.

Pages are keyset pages (``created_at, id`` below the last one seen, never ``OFFSET``), so
a page costs the same at the millionth image as at the first, and images made while the
editor pages do not shift what they see. A page is a constant number of queries: the rows
(with what the cards show joined in) and the three filter lists.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from ..conf import app_settings
from ..models import ImageGenerationResult, ImageStyle, ResultStatus
from .common import THUMB_WIDTH, Candidate, admin_base_context, admin_tool_urls, can, file_url, thumb_height

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin

PAGE_SIZE = 48
FILTERS = ("provider", "model", "style", "status", "decision", "who")
DECISIONS = (
    ("approved", gettext_lazy("approved")),
    ("rejected", gettext_lazy("rejected")),
    ("undecided", gettext_lazy("undecided")),
)


@dataclass
class GalleryPage:
    cards: list[Candidate]
    newer: str  # query string of the newer page ("" on the first)
    older: str  # query string of the older page ("" on the last)
    note: str = ""


def _cursor(result: ImageGenerationResult) -> str:
    return f"{result.created_at.isoformat()}~{result.pk}"


def _parse_cursor(value: str) -> tuple[Any, int] | None:
    when, _sep, pk = (value or "").rpartition("~")
    try:
        moment = parse_datetime(when) if when else None
    except ValueError:
        moment = None
    if moment is None or not pk.isdigit() or len(pk) > 18:
        return None
    return moment, int(pk)


def filtered(params: dict[str, str]):
    """Results matching the gallery's filters (unknown values match nothing, never error)."""
    qs = ImageGenerationResult.objects.all()
    if params.get("provider"):
        qs = qs.filter(Q(provider=params["provider"]) | Q(provider_used=params["provider"]))
    if params.get("model"):
        qs = qs.filter(model=params["model"])
    if params.get("style"):
        qs = qs.filter(style_id=int(params["style"])) if params["style"].isdigit() else qs.none()
    if params.get("status"):
        qs = qs.filter(status=params["status"])
    decision = params.get("decision")
    if decision == "approved":
        qs = qs.filter(approved_for__isnull=False)
    elif decision == "rejected":
        qs = qs.filter(rejected_at__isnull=False)
    elif decision == "undecided":
        qs = qs.filter(approved_for__isnull=True, rejected_at__isnull=True)
    elif decision:
        qs = qs.none()
    if params.get("who"):
        qs = qs.filter(requested_by_id=int(params["who"])) if params["who"].isdigit() else qs.none()
    return qs


def load_page(params: dict[str, str], *, after: str = "", before: str = "", size: int = PAGE_SIZE) -> GalleryPage:
    """One page of cards, newest first: the page after cursor ``after`` (older images) or
    before ``before`` (newer ones); the first page without either. One query."""
    qs = filtered(params).select_related("approved_for", "review", "requested_by", "style")
    note = ""
    key_after, key_before = _parse_cursor(after), _parse_cursor(before)
    if (after and key_after is None) or (before and key_before is None):
        note = _("That page link is not valid any more; here are the newest images.")
    if key_before is not None:
        when, pk = key_before
        rows = list(
            qs.filter(Q(created_at__gt=when) | Q(created_at=when, pk__gt=pk)).order_by("created_at", "id")[: size + 1]
        )
        more_newer = len(rows) > size
        rows = rows[:size][::-1]
        more_older = True
    else:
        if key_after is not None:
            when, pk = key_after
            qs = qs.filter(Q(created_at__lt=when) | Q(created_at=when, pk__lt=pk))
        rows = list(qs.order_by("-created_at", "-id")[: size + 1])
        more_older = len(rows) > size
        rows = rows[:size]
        more_newer = key_after is not None
    base = {k: v for k, v in params.items() if v}
    cards = [
        Candidate(result=r, thumb_url=file_url(r.thumbnail), image_url=file_url(r.image), thumb_height=thumb_height(r))
        for r in rows
    ]
    newer = urlencode({**base, "before": _cursor(rows[0])}) if rows and more_newer else ""
    older = urlencode({**base, "after": _cursor(rows[-1])}) if rows and more_older else ""
    return GalleryPage(cards=cards, newer=newer, older=older, note=note)


def filter_choices() -> dict[str, list[tuple[str, str]]]:
    """The filters' options: providers from settings, models, styles and requesters from the
    database (three queries)."""
    from ..providers import providers

    User = get_user_model()  # noqa: N806
    models = (
        ImageGenerationResult.objects.exclude(model="").order_by("model").values_list("model", flat=True).distinct()
    )
    users = User.objects.filter(pk__in=ImageGenerationResult.objects.values("requested_by")).order_by(
        User.USERNAME_FIELD
    )
    return {
        "provider": [(a, a) for a in [*providers.aliases, "upload"]],
        "model": [(m, m) for m in list(models[:200])],
        "style": [(str(s.pk), s.name) for s in ImageStyle.objects.only("pk", "name").order_by("name")],
        "status": [(value, str(label)) for value, label in ResultStatus.choices],
        "decision": [(value, str(label)) for value, label in DECISIONS],
        "who": [(str(u.pk), u.get_username()) for u in users],
    }


def gallery_page(
    request: HttpRequest,
    *,
    urls: dict[str, str],
    template_name: str,
    base_context: Callable[[], dict[str, Any]],
) -> HttpResponse:
    """The gallery for any admin (the caller checked the user may see it). ``urls`` has the
    keys of :func:`admin_tool_urls` (``gallery`` among them)."""
    params = {name: (request.GET.get(name) or "").strip()[:200] for name in FILTERS}
    page = load_page(params, after=request.GET.get("after", ""), before=request.GET.get("before", ""), size=PAGE_SIZE)
    choices = filter_choices()
    filters = [
        {"name": name, "label": label, "choices": choices[name], "value": params[name]}
        for name, label in (
            ("provider", _("Provider")),
            ("model", _("Model")),
            ("style", _("Style")),
            ("status", _("Status")),
            ("decision", _("Decision")),
            ("who", _("Requested by")),
        )
    ]
    context = {
        **base_context(),
        "title": _("Gallery"),
        "page": page,
        "cards": page.cards,
        "filters": filters,
        "filtering": any(params.values()),
        "gallery_url": urls["gallery"],
        "playground_url": urls["playground"],
        "status_page_url": urls["status_page"],
        "results_url": urls["results"],
        "urls": urls,
        "thumb_width": THUMB_WIDTH,
        "perms_bi": {"generate": can(request.user, "generate"), "review": False, "upload": False},
        "max_candidates": app_settings.MAX_CANDIDATES,
    }
    return TemplateResponse(request, template_name, context)


def gallery_view(model_admin: ModelAdmin, request: HttpRequest) -> HttpResponse:
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    site = model_admin.admin_site.name
    base_context = admin_base_context(model_admin, request)

    return gallery_page(
        request, urls=admin_urls(site), template_name="blogimages/admin/gallery.html", base_context=base_context
    )


def admin_urls(site: str) -> dict[str, str]:
    """:func:`admin_tool_urls` of Django admin site ``site``, with the gallery's."""
    return {**admin_tool_urls(site), "gallery": reverse(f"{site}:blogimages_gallery")}
