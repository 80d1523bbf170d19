"""What the admin pages share: permission checks, candidate cards, messages about
generation and queue errors, and rendering of provider info."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, is_dataclass
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    pass


from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass


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


def error_text(exc: Exception) -> str:
    """One sentence for an editor from a service error."""
    if isinstance(exc, ValidationError):
        return " ".join(exc.messages)
    return str(exc)


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
        messages.error(
            request,
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
        messages.success(request, text)
    if skipped:
        listed = "; ".join(f"“{section_label(section)}”: {reason}" for section, reason in skipped[:10])
        if len(skipped) > 10:
            listed += _("; and %(more)d more") % {"more": len(skipped) - 10}
        messages.warning(
            request,
            ngettext("Skipped %(count)d section (%(list)s).", "Skipped %(count)d sections (%(list)s).", len(skipped))
            % {"count": len(skipped), "list": listed},
        )
    if not results and not skipped:
        messages.warning(request, _("There are no sections to generate images for."))


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
