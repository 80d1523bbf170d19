"""What the admin pages share: permission checks, candidate cards, messages about
generation and queue errors, and rendering of provider info."""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass, field, is_dataclass
from fractions import Fraction
from typing import Any, Callable
from urllib.parse import quote, unquote

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.text import Truncator
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from .. import services
from ..hosts import Section
from ..models import (
    ACTIVE_STATUSES,
    ImageGenerationResult,
    ResultStatus,
    SectionReview,
)

logger = logging.getLogger("blogimages.admin")

PERMISSIONS = {
    "generate": "blogimages.generate_images",
    "review": "blogimages.review_images",
    "upload": "blogimages.upload_images",
}
THUMB_WIDTH = 160  # CSS pixels; thumbnails are stored 320 wide for sharp high-DPI display


def can(user, kind: str | None, post: Any = None) -> bool:
    """blogimages' permission for ``kind`` and, given a post, the host's say on it."""
    return services.can(user, kind or "view", post) if post is not None or kind else True


def user_perms(user, post: Any = None) -> dict[str, bool]:
    return {kind: services.can(user, kind, post) for kind in PERMISSIONS}


#: Python's names for objects (``<_io.BytesIO object at 0x7f...>``): never shown to an editor.
_OBJECT_REPR = re.compile(r"\s*\(?<[^<>]* at 0x[0-9a-fA-F]+>\)?")


def error_text(exc: Exception) -> str:
    """One sentence for an editor from a service error (without Python's object names)."""
    text = " ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
    return _OBJECT_REPR.sub("", text).strip() or _("The request was refused.")


# --- messages where the editor acted ---------------------------------------------------------------

#: A message's extra tag naming the review-page section it is about (``bi-section=<quoted key>``).
SECTION_TAG = "bi-section="


def notify(request: HttpRequest, level: int, text: str) -> None:
    """``messages.add_message`` that remembers the section being acted on (``request.bi_section``,
    set by the review page's POST), so the page shows the message in that section's panel."""
    key = getattr(request, "bi_section", None)
    tags = f"bi-in-section {SECTION_TAG}{quote(key, safe='')}" if key is not None else ""
    messages.add_message(request, level, text, extra_tags=tags)


def message_section(message) -> str | None:
    """The section key a message is about (see :func:`notify`); None for a page-wide one."""
    for tag in (message.extra_tags or "").split():
        if tag.startswith(SECTION_TAG):
            return unquote(tag[len(SECTION_TAG) :])
    return None


def split_messages(request: HttpRequest, keys) -> tuple[list, dict[str, list]]:
    """The request's messages (consumed): page-wide ones, and those of each section in ``keys``
    (a message about a section not shown stays page-wide)."""
    page: list = []
    by_section: dict[str, list] = {}
    shown = set(keys)
    for message in messages.get_messages(request):
        key = message_section(message)
        if key is not None and key in shown:
            by_section.setdefault(key, []).append(message)
        else:
            page.append(message)
    return page, by_section


# --- labels ------------------------------------------------------------------------------------------

#: Aspect ratios editors know by name; a size within ASPECT_TOLERANCE of one is labelled with it.
COMMON_ASPECTS = [
    (1, 1),
    (16, 9),
    (9, 16),
    (4, 3),
    (3, 4),
    (3, 2),
    (2, 3),
    (21, 9),
    (9, 21),
    (5, 4),
    (4, 5),
    (2, 1),
    (1, 2),
]
ASPECT_TOLERANCE = 0.02  # relative: 1344x768 (1.75) is 16:9 (1.778) to 1.6 %


def aspect_label(width: int | None, height: int | None) -> str:
    """``16:9`` for 1344x768: the nearest common ratio within 2 %, else the exact reduced
    ratio (or, for a ratio with large terms, the closest one with terms up to 32, ``≈``)."""
    if not width or not height:
        return ""
    ratio = width / height
    best = min(COMMON_ASPECTS, key=lambda wh: abs(ratio / (wh[0] / wh[1]) - 1))
    if abs(ratio / (best[0] / best[1]) - 1) <= ASPECT_TOLERANCE:
        return f"{best[0]}:{best[1]}"
    exact = Fraction(width, height)
    if exact.numerator <= 32 and exact.denominator <= 32:
        return f"{exact.numerator}:{exact.denominator}"
    if ratio >= 4 or ratio <= 0.25:  # a strip: 65x4096 is about 1:63
        return f"≈{round(ratio)}:1" if ratio > 1 else f"≈1:{round(1 / ratio)}"
    near = exact.limit_denominator(32)
    return f"≈{near.numerator}:{near.denominator}"


def user_label(user) -> str:
    """Who a user is, for a page header or a decision: the full name and the username."""
    if user is None:
        return ""
    full = (user.get_full_name() or "").strip() if hasattr(user, "get_full_name") else ""
    name = user.get_username()
    return f"{full} ({name})" if full and full != name else name


def thumb_height(result: ImageGenerationResult) -> int | None:
    if result.width and result.height:
        return max(1, round(THUMB_WIDTH * result.height / result.width))
    return None


STATUS_LABELS = dict(ResultStatus.choices)


def card_words() -> dict[str, str]:
    """Labels every candidate card repeats, translated once per page rather than once per card."""
    return {
        "approved": _("approved"),
        "provider": _("provider"),
        "model": _("model"),
        "seed": _("seed"),
        "batch": _("batch index"),
        "batch_index": _("which image of the seed's batch this candidate is"),
        "reuse": _("reuse"),
        "approve": _("Approve"),
        "reject": _("Reject"),
        "cancel": _("Cancel"),
        "retry": _("Retry"),
        "new_seed": _("New seed"),
        "same_seed": _("Same seed"),
    }


@dataclass
class Candidate:
    result: ImageGenerationResult
    thumb_url: str = ""
    image_url: str = ""
    thumb_height: int | None = None
    #: The section form the card's buttons submit (``form=`` attribute); blank in the playground.
    form_id: str = ""
    #: What the viewing editor may do with it now (``services.result_actions``): its buttons.
    actions: frozenset[str] = frozenset()
    #: The results it was made from, oldest first (refine, variations, upscale): its lineage.
    ancestors: list[Candidate] = field(default_factory=list)
    #: Why a queued job is not moving (no worker takes jobs from its queue); blank otherwise.
    queue_note: str = ""
    #: The review page at this card (the result page's lineage links there).
    review_url: str = ""

    @property
    def version(self) -> str:
        """Changes whenever the card would (the row, or its approval): see :func:`card_version`."""
        return card_version(self.result.updated_at, self.result.is_approved)

    @property
    def decision(self) -> str:
        """``approved``, ``rejected`` or ``""`` (undecided): the candidate's own decision."""
        if self.result.is_approved:
            return "approved"
        if self.result.rejected_at is not None:
            return "rejected"
        return ""

    @property
    def selectable(self) -> bool:
        """Whether the card offers a checkbox for "approve/reject the selected" (bulk)."""
        return bool(self.actions & {"approve", "reject"})

    @property
    def primary_approve(self) -> bool:
        """Approve is the card's main button, unless the candidate was rejected (then it is
        offered as "approve anyway", a quieter button)."""
        return "approve" in self.actions and self.decision != "rejected"

    @property
    def size_label(self) -> str:
        r = self.result
        width, height = r.width or r.params.get("width"), r.height or r.params.get("height")
        if not width or not height:
            return ""
        aspect = aspect_label(width, height)
        return f"{width}×{height}" + (f" ({aspect})" if aspect else "")

    @property
    def sent_more(self) -> list[tuple[str, Any]]:
        """:attr:`sent` less what the card's facts already show (provider, model, seed, size)."""
        shown = {_("size"), _("model"), _("seed"), _("provider used")}
        return [(label, value) for label, value in self.sent if label not in shown]

    @property
    def sent(self) -> list[tuple[str, Any]]:
        """What was sent to the provider, as ``(label, value)`` rows for the card's details."""
        r = self.result
        p = r.params or {}
        rows: list[tuple[str, Any]] = [
            (_("prompt sent"), r.final_prompt or r.prompt),
            (_("negative prompt"), r.negative_prompt or p.get("negative_prompt") or ""),
            (_("style"), str(r.style) if r.style_id and r.style else ""),
            (_("size"), self.size_label),
            (_("steps"), p.get("steps")),
            (_("guidance"), p.get("guidance_scale")),
            (_("sampler"), " ".join(str(v) for v in (p.get("sampler"), p.get("scheduler")) if v)),
            (_("model"), r.model or p.get("model") or ""),
            (_("seed"), r.seed if r.seed is not None else p.get("seed")),
            (_("provider used"), r.provider_used or r.provider),
        ]
        if r.operation and r.operation != "generate":
            rows.append((_("operation"), r.get_operation_display()))
        if "strength" in p:
            rows.append((_("strength"), p.get("strength")))
        return [(label, value) for label, value in rows if value not in (None, "")]

    @property
    def status_label(self) -> str:
        return str(STATUS_LABELS.get(self.result.status, self.result.status))

    @property
    def provider_label(self) -> str:
        r = self.result
        return f"{r.provider} → {r.provider_used}" if r.provider_used and r.provider_used != r.provider else r.provider

    @property
    def is_active(self) -> bool:
        return self.result.status in ACTIVE_STATUSES

    @property
    def seconds(self) -> float | None:
        r = self.result
        if r.started_at and r.finished_at:
            return (r.finished_at - r.started_at).total_seconds()
        return None


def card_version(updated_at, approved: bool) -> str:
    """A card's version for the page's script (``data-version`` and the status answer's)."""
    micros = int(updated_at.timestamp() * 1_000_000) if updated_at else 0
    return f"{micros}|{1 if approved else 0}"


def file_url(file) -> str:
    if not file:
        return ""
    try:
        return file.url
    except Exception:  # noqa: BLE001 - a storage hiccup must not take the page down
        logger.exception("No URL for %s", file.name)
        return ""


def report_queue_errors(request: HttpRequest, results) -> bool:
    """Tell the editor when Redis refused the jobs; True if it did."""
    errors = services.queue_errors(results)
    if errors:
        waiting = len(results)
        notify(
            request,
            messages.ERROR,
            ngettext(
                "%(count)d image could not be sent to the job queue. %(error)s",
                "%(count)d images could not be sent to the job queue. %(error)s",
                waiting,
            )
            % {"count": waiting, "error": errors[0]},
        )
        return True
    return False


def report_generation(request: HttpRequest, results, skipped, posts: int) -> None:
    """The message for "generate for all sections" (one post or several)."""
    if results and not report_queue_errors(request, results):
        text = ngettext("Queued %(count)d image", "Queued %(count)d images", len(results)) % {"count": len(results)}
        if posts > 1:
            text += ngettext(" for %(posts)d post.", " for %(posts)d posts.", posts) % {"posts": posts}
        else:
            text += "."
        notify(request, messages.SUCCESS, text)
    if skipped:
        listed = "; ".join(f"“{section_label(section)}”: {reason}" for section, reason in skipped[:10])
        if len(skipped) > 10:
            listed += _("; and %(more)d more") % {"more": len(skipped) - 10}
        notify(
            request,
            messages.WARNING,
            ngettext("Skipped %(count)d section (%(list)s).", "Skipped %(count)d sections (%(list)s).", len(skipped))
            % {"count": len(skipped), "list": listed},
        )
    if not results and not skipped:
        notify(request, messages.WARNING, _("There are no sections to generate images for."))


def render_info(value: Any, key: str = "", depth: int = 0) -> SafeString | str:
    """Any JSON-like health info as nested key/value tables (providers choose their keys)."""
    if depth > 5:
        return Truncator(repr(value)).chars(200)
    if is_dataclass(value) and not isinstance(value, type):
        value = asdict(value)
    if isinstance(value, dict):
        if not value:
            return "—"
        rows = format_html_join(
            "",
            '<tr><th scope="row">{}</th><td>{}</td></tr>',
            ((str(k).replace("_", " "), render_info(v, str(k), depth + 1)) for k, v in value.items()),
        )
        return format_html('<table class="bi-kv">{}</table>', rows)
    if isinstance(value, (list, tuple)):
        if not value:
            return "—"
        if all(not isinstance(v, (dict, list, tuple)) for v in value):
            return ", ".join(str(render_info(v, key, depth + 1)) for v in value)
        if all(isinstance(v, dict) for v in value):
            # Rows of the same kind (e.g. one per ComfyUI server): one table, a column per key.
            columns = list(dict.fromkeys(k for row in value for k in row))
            head = format_html_join("", '<th scope="col">{}</th>', ((str(c).replace("_", " "),) for c in columns))

            def cells(row: dict) -> SafeString:
                values = ((render_info(row.get(c), str(c), depth + 1),) for c in columns)
                return format_html_join("", "<td>{}</td>", values)

            rows = format_html_join("", "<tr>{}</tr>", ((cells(row),) for row in value))
            return format_html(
                '<table class="bi-kv bi-kv--rows"><thead><tr>{}</tr></thead><tbody>{}</tbody></table>', head, rows
            )
        return format_html(
            '<ol class="bi-kv-list">{}</ol>',
            format_html_join("", "<li>{}</li>", ((render_info(v, key, depth + 1),) for v in value)),
        )
    if isinstance(value, bool):
        return format_html('<span class="bi-{}">{}</span>', "ok" if value else "bad", _("yes") if value else _("no"))
    if value is None or value == "":
        return "—"
    lowered = key.lower()
    if isinstance(value, int) and any(word in lowered for word in ("vram", "memory", "bytes", "ram_")):
        return format_html('<span title="{} bytes">{}</span>', value, filesizeformat(value))
    return str(value)


def section_label(target: Section | SectionReview | None) -> str:
    if target is None:
        return ""
    if isinstance(target, SectionReview):
        return target.section_title or target.section_key
    return target.title


def admin_tool_urls(site: str) -> dict[str, str]:
    """Where the playground and status pages of Django admin site ``site`` live."""
    return {
        "playground": reverse(f"{site}:blogimages_playground"),
        "playground_status": reverse(f"{site}:blogimages_playground_status"),
        "playground_models": reverse(f"{site}:blogimages_playground_models"),
        "status_page": reverse(f"{site}:blogimages_status"),
        "results": reverse(f"{site}:blogimages_imagegenerationresult_changelist"),
    }


# --- where to go back to, and a result's lineage --------------------------------------------------


def back_url(request: HttpRequest, default: str = "") -> str:
    """``?next=`` (or a posted ``next``) when it points into this site, else ``default``."""
    from django.utils.http import url_has_allowed_host_and_scheme

    candidate = request.POST.get("next") or request.GET.get("next") or ""
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return default


def lineage_context(site, result: ImageGenerationResult) -> dict[str, Any]:
    """``bi_lineage`` for the result page: the chain from the original to ``result`` as cards,
    each with the review page URL at its card (where it can be approved, refined, regenerated)."""
    from ..admin import _post_review_url

    chain = services.lineage(result)
    reviews = {r.pk: r for r in SectionReview.objects.filter(pk__in={c.review_id for c in chain if c.review_id})}
    cards = []
    for step in chain:
        card = Candidate(result=step, thumb_url=file_url(step.thumbnail), image_url=file_url(step.image))
        review = reviews.get(step.review_id)
        url = _post_review_url(site, review) if review is not None else ""
        card.review_url = f"{url}#bi-card-{step.pk}" if url else ""
        cards.append(card)
    return {
        "bi_lineage": cards,
        "results_url": reverse(f"{site.name}:blogimages_imagegenerationresult_changelist"),
    }


# --- live previews of running cards ----------------------------------------------------------------


def live_previews(running_ids: list[int]) -> dict[int, dict[str, Any]]:
    """``{"preview": n, "preview_url": ...}`` for each of ``running_ids`` that has a partial
    image (``refining.preview_counts``: one Redis MGET for the whole page). The URL is the
    JSON API's (``GET /api/v1/images/results/<id>/preview``, the admin session's auth),
    cache-busted by the count; nothing when the site does not include the API's URLs."""
    from django.urls import NoReverseMatch

    from .. import refining

    if not running_ids:
        return {}
    try:
        template = reverse("blogimages:api-result-preview", args=[987654321])
    except NoReverseMatch:
        return {}
    counts = refining.preview_counts(running_ids)
    return {
        pk: {"preview": n, "preview_url": template.replace("987654321", str(pk)) + f"?n={n}"}
        for pk, n in counts.items()
    }


def admin_base_context(model_admin, request: HttpRequest) -> Callable[[], dict[str, Any]]:
    """The ``base_context`` a blogimages page built in Django admin gets: the admin site's
    own template context, with ``request.current_app`` set so its URLs reverse to that site."""

    def base_context() -> dict[str, Any]:
        context = {**model_admin.admin_site.each_context(request), "opts": model_admin.model._meta}
        request.current_app = model_admin.admin_site.name
        return context

    return base_context
