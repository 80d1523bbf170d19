"""The extra admin pages: a post's image review, the prompt playground and the status page.

They are wired through ``get_urls()`` of the ModelAdmins in :mod:`blogimages.admin` and
wrapped in ``admin_site.admin_view`` (login, staff, CSRF). Every change goes through
:mod:`blogimages.services`; these views only read rows in a constant number of queries,
check permissions server-side and turn service errors into one clear message.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field, is_dataclass
from importlib import import_module
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib import messages
from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, F, Max, Min, Window
from django.db.models.functions import RowNumber
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect, JsonResponse
from django.template.defaultfilters import filesizeformat
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.text import Truncator
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from . import services
from .conf import app_settings
from .exceptions import BlogImagesError, UploadRejected
from .forms import PlaygroundForm, initial_from_example, initial_from_result
from .hosts import Section, get_host
from .models import (
    ACTIVE_STATUSES,
    ImageGenerationResult,
    ImagePromptExample,
    PostImageSettings,
    ResultSource,
    ResultStatus,
    ReviewEvent,
    ReviewStatus,
    SectionReview,
)

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin

logger = logging.getLogger("blogimages.admin")

PERMISSIONS = {
    "generate": "blogimages.generate_images",
    "review": "blogimages.review_images",
    "upload": "blogimages.upload_images",
}
# Each review-page operation and the permission it needs (None: anyone who may see the page).
OPERATIONS: dict[str, str | None] = {
    "generate-post": "generate",
    "generate-missing": "generate",
    "generate-section": "generate",
    "regenerate": "generate",
    "regenerate-same-seed": "generate",
    "cancel": "generate",
    "requeue": "generate",
    "approve": "review",
    "reject": "review",
    "reject-section": "review",
    "upload": "upload",
    "comment": None,
}
SWEEP_EVERY = 5  # seconds between stuck-job sweeps triggered by polling editors
HISTORY_SHOWN = 20  # events per section on the review page; the section review page has all
THUMB_WIDTH = 160  # CSS pixels; thumbnails are stored 320 wide for sharp high-DPI display
HEALTH_TIMEOUT = 10.0


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


def maybe_sweep() -> None:
    """Re-queue stuck jobs now and then while editors watch progress.

    ``cache.add`` is atomic, so however many editors poll, one sweep runs per interval
    (per cache: with the default local-memory cache, per process).
    """
    if not cache.add("blogimages:sweep-stuck", 1, timeout=SWEEP_EVERY):
        return
    try:
        services.sweep_stuck()
    except Exception:  # noqa: BLE001 - a failed sweep must not break progress polling
        logger.exception("Sweeping stuck results failed")


def thumb_height(result: ImageGenerationResult) -> int | None:
    if result.width and result.height:
        return max(1, round(THUMB_WIDTH * result.height / result.width))
    return None


# --- the post review page -----------------------------------------------------------------


STATUS_LABELS = dict(ResultStatus.choices)


def card_words() -> dict[str, str]:
    """Labels every candidate card repeats, translated once per page rather than once per card."""
    return {
        "approved": _("approved"), "provider": _("provider"), "model": _("model"), "seed": _("seed"),
        "reuse": _("reuse"), "approve": _("Approve"), "reject": _("Reject"), "cancel": _("Cancel"),
        "retry": _("Retry"), "new_seed": _("New seed"), "same_seed": _("Same seed"),
    }


@dataclass
class Candidate:
    result: ImageGenerationResult
    thumb_url: str = ""
    image_url: str = ""
    thumb_height: int | None = None
    #: The section form the card's buttons submit (``form=`` attribute); blank in the playground.
    form_id: str = ""

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


@dataclass
class Panel:
    #: The host's section now; ``None`` when it was removed from the post (``removed``).
    section: Section | None
    key: str
    title: str
    text: str
    review: SectionReview
    prompt: str
    prompt_source: str
    example: ImagePromptExample | None
    candidates: list[Candidate] = field(default_factory=list)
    events: list[ReviewEvent] = field(default_factory=list)
    earlier_events: int = 0

    @property
    def removed(self) -> bool:
        return self.section is None

    @property
    def has_active(self) -> bool:
        return any(c.is_active for c in self.candidates)

    @property
    def approved(self) -> Candidate | None:
        return next((c for c in self.candidates if c.result.is_approved), None)


def _file_url(file) -> str:
    if not file:
        return ""
    try:
        return file.url
    except Exception:  # noqa: BLE001 - a storage hiccup must not take the page down
        logger.exception("No URL for %s", file.name)
        return ""


def load_panels(post, section_key: str | None = None) -> list[Panel]:
    """Everything the review page shows, in a constant number of queries whatever the
    number of sections (the host adapter's reading of the post comes on top).

    Sections without a review row get an unsaved one: rendering never writes. Reviews of
    sections that are no longer in the post come last, marked removed, with their images
    and history.
    """
    sections = get_host().sections(post)
    reviews_qs = SectionReview.objects.for_post(post).select_related("prompt_example", "reviewed_by", "post_type")
    if section_key is not None:
        sections = [s for s in sections if s.key == section_key]
        reviews_qs = reviews_qs.filter(section_key=section_key)
    reviews = {r.section_key: r for r in reviews_qs}
    post_settings = PostImageSettings.objects.for_post(post).select_related("prompt_example").first()
    post_example = post_settings.prompt_example if post_settings else None
    by_review: dict[int, list[Candidate]] = {r.pk: [] for r in reviews.values()}
    form_ids = {r.pk: f"bi-form-{r.section_key}" for r in reviews.values()}
    results = (
        ImageGenerationResult.objects.filter(review_id__in=list(by_review))
        .select_related("requested_by")
        .order_by("created_at", "id")
    )
    for result in results:
        by_review[result.review_id].append(
            Candidate(
                result=result, thumb_url=_file_url(result.thumbnail), image_url=_file_url(result.image),
                thumb_height=thumb_height(result), form_id=form_ids[result.review_id],
            )
        )
    # The newest events of each section and how many there are, in one query: a long-lived
    # post's history grows without bound, the page does not.
    events: dict[int, list[ReviewEvent]] = {}
    totals: dict[int, int] = {}
    newest_first = [F("created_at").desc(), F("id").desc()]
    ranked = (
        ReviewEvent.objects.filter(review_id__in=[r.pk for r in reviews.values()])
        .annotate(
            rank=Window(RowNumber(), partition_by=[F("review_id")], order_by=newest_first),
            total=Window(Count("id"), partition_by=[F("review_id")]),
        )
        .filter(rank__lte=HISTORY_SHOWN)
        .select_related("user")
        .order_by("review_id", *newest_first)
    )
    for event in ranked:
        events.setdefault(event.review_id, []).append(event)
        totals[event.review_id] = event.total

    panels = []
    present = {section.key for section in sections}
    removed = [review for key, review in reviews.items() if key not in present]
    for section in [*sections, *removed]:
        if isinstance(section, SectionReview):
            review, section, key = section, None, section.section_key
        else:
            key = section.key
            review = reviews.get(key) or SectionReview(section_key=key, section_title=section.title)
        example = review.prompt_example if review.prompt_example_id else post_example
        if section is None:
            prompt, source = "", ""
        else:
            prompt = services.section_prompt(section, review, example)
            if review.prompt_override.strip():
                source = _("the section's prompt override")
            elif example is not None and example.prompt.strip():
                source = _("prompt example “%(name)s”") % {"name": example.name}
            else:
                source = _("the section text")
        history = events.get(review.pk, []) if review.pk else []
        total = totals.get(review.pk, 0) if review.pk else 0
        panels.append(
            Panel(
                section=section, key=key, title=section.title if section else review.section_title or key,
                text=section.text if section else "", review=review, prompt=prompt, prompt_source=source,
                example=example, candidates=by_review.get(review.pk, []) if review.pk else [],
                events=history, earlier_events=max(0, total - len(history)),
            )
        )
    return panels


class ReviewPage:
    """The review views of one post: the page, one section's panel, live status and the
    actions. Subclasses say how a post is found and where the pages live
    (:class:`PostReview` for a Django admin ModelAdmin; the Wagtail integration has its own).
    """

    template_name = "blogimages/admin/post_review.html"
    panel_template_name = "blogimages/admin/_section_panel.html"

    def get_post(self, request: HttpRequest, object_id: str):
        raise NotImplementedError

    def urls_for(self, post) -> dict[str, str]:
        raise NotImplementedError

    def page_context(self, request: HttpRequest, post) -> dict[str, Any]:
        """What the page template needs besides the panels (the admin's own context)."""
        return {}

    def check_post_permission(self, request: HttpRequest, post) -> None:
        if not services.can(request.user, "view", post):
            raise PermissionDenied

    def panel_context(self, request: HttpRequest, post) -> dict[str, Any]:
        return {
            "post": post,
            "perms_bi": user_perms(request.user, post),
            "urls": self.urls_for(post),
            "thumb_width": THUMB_WIDTH,
            "words": card_words(),
        }

    def review_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        post = self.get_post(request, object_id)
        self.check_post_permission(request, post)
        if request.method == "POST":
            return self.act(request, post)
        panels = load_panels(post)
        current = [p for p in panels if not p.removed]
        counts = {
            "sections": len(current),
            "removed": len(panels) - len(current),
            "approved": sum(1 for p in current if p.review.status == ReviewStatus.APPROVED),
            "rejected": sum(1 for p in current if p.review.status == ReviewStatus.REJECTED),
            "active": sum(1 for p in panels for c in p.candidates if c.is_active),
            "candidates": sum(len(p.candidates) for p in panels),
        }
        from .providers import providers

        host = get_host()
        context = {
            **self.page_context(request, post),
            **self.panel_context(request, post),
            "title": _("Images for “%(post)s”") % {"post": host.post_title(post)},
            "subtitle": None,
            "original": post,
            "panels": panels,
            "counts": counts,
            "provider_aliases": providers.aliases,
            "default_provider": app_settings.DEFAULT_PROVIDER,
            "public_url": host.post_public_url(post),
            "edit_url": host.post_admin_url(post),
        }
        return TemplateResponse(request, self.template_name, context)

    def section_view(self, request: HttpRequest, object_id: str, section_key: str) -> HttpResponse:
        """One section's panel, re-rendered by the page's script when a job finishes."""
        post = self.get_post(request, object_id)
        self.check_post_permission(request, post)
        panels = load_panels(post, section_key=section_key)
        if not panels:
            raise Http404(_("This post has no such section."))
        context = {**self.panel_context(request, post), "panel": panels[0]}
        return HttpResponse(render_to_string(self.panel_template_name, context, request))

    def status_view(self, request: HttpRequest, object_id: str) -> JsonResponse:
        """Status and progress of every candidate of the post, polled about once a second."""
        post = self.get_post(request, object_id)
        self.check_post_permission(request, post)
        maybe_sweep()
        rows = ImageGenerationResult.objects.for_post(post).values_list(
            "pk", "review__section_key", "status", "progress", "progress_message"
        )
        labels = dict(ResultStatus.choices)
        results = [
            {
                "id": pk, "section": key, "status": status, "status_label": str(labels.get(status, status)),
                "active": status in ACTIVE_STATUSES, "progress": progress, "message": message,
            }
            for pk, key, status, progress, message in rows
        ]
        return JsonResponse({"active": any(r["active"] for r in results), "results": results})

    # --- actions (POST) ---------------------------------------------------------------------

    def act(self, request: HttpRequest, post) -> HttpResponse:
        op, _sep, result_id = request.POST.get("do", "").partition(":")
        if op not in OPERATIONS:
            messages.error(request, _("Unknown action “%(op)s”.") % {"op": op})
            return HttpResponseRedirect(request.path)
        if not can(request.user, OPERATIONS[op], post):
            raise PermissionDenied
        target: Section | SectionReview | None = None
        key = request.POST.get("section", "")
        if key:
            target = get_host().section(post, key) or SectionReview.objects.for_post(post).filter(
                section_key=key
            ).first()
            if target is None:
                raise Http404(_("This post has no such section."))
        result = None
        if result_id:
            try:
                result = (
                    ImageGenerationResult.objects.for_post(post).select_related("review").get(pk=int(result_id))
                )
            except (ValueError, ImageGenerationResult.DoesNotExist):
                raise Http404(_("This post has no such image.")) from None
            target = get_host().section(post, result.review.section_key) or result.review
        anchor = f"#bi-section-{_section_key(target)}" if target is not None else ""
        try:
            self.perform(request, op, post, target, result)
        except UploadRejected as exc:
            messages.error(request, _("The upload was refused: %(why)s") % {"why": str(exc)})
        except (BlogImagesError, ValidationError) as exc:
            messages.error(request, error_text(exc))
        return HttpResponseRedirect(request.path + anchor)

    def perform(self, request: HttpRequest, op: str, post, section, result) -> None:
        user = request.user
        comment = request.POST.get("comment", "").strip()
        needs_section = {"generate-section", "reject-section", "upload", "comment"}
        needs_result = {"regenerate", "regenerate-same-seed", "cancel", "requeue", "approve", "reject"}
        if op in needs_section and section is None:
            raise ValidationError(_("Say which section."))
        if op in needs_result and result is None:
            raise ValidationError(_("Say which image."))
        if op in {"generate-section", "upload", "approve"} and isinstance(section, SectionReview):
            raise ValidationError(
                _("“%(section)s” was removed from the post; it keeps its history, but gets no new images.")
                % {"section": section.section_title or section.section_key}
            )
        ref = _("image #%(id)s") % {"id": result.pk} if result else ""
        title = section_label(section)

        if op in {"generate-post", "generate-missing"}:
            provider = request.POST.get("provider") or None
            outcome = services.generate_for_post(
                post, user=user, provider=provider, only_missing=op == "generate-missing"
            )
            report_generation(request, outcome.results, outcome.skipped, posts=1)
        elif op == "generate-section":
            provider = request.POST.get("provider") or None
            results = services.generate_for_section(section, user=user, provider=provider)
            report_generation(request, results, [], posts=0)
        elif op in {"regenerate", "regenerate-same-seed"}:
            new = services.regenerate(result, user=user, same_seed=op == "regenerate-same-seed")
            if not report_queue_errors(request, [new]):
                messages.success(
                    request,
                    _("Queued image #%(new)s for “%(section)s”, like %(old)s with %(seed)s.")
                    % {
                        "new": new.pk, "section": title, "old": ref,
                        "seed": _("the same seed") if op == "regenerate-same-seed" else _("a new seed"),
                    },
                )
        elif op == "cancel":
            services.cancel(result, user=user)
            messages.success(request, _("Cancelled %(ref)s.") % {"ref": ref})
        elif op == "requeue":
            services.requeue(result, user=user)
            if not report_queue_errors(request, [result]):
                messages.success(request, _("Sent %(ref)s to the queue again.") % {"ref": ref})
        elif op == "approve":
            services.approve(result, user=user, comment=comment)
            messages.success(request, _("Approved %(ref)s for “%(section)s”.") % {"ref": ref, "section": title})
        elif op == "reject":
            review = services.reject(result=result, user=user, comment=comment)
            if review.status == ReviewStatus.REJECTED:
                msg = _("Rejected %(ref)s; “%(section)s” has no approved image now.")
            else:
                msg = _("Rejected %(ref)s for “%(section)s”.")
            messages.success(request, msg % {"ref": ref, "section": title})
        elif op == "reject-section":
            services.reject(section, user=user, comment=comment)
            messages.success(request, _("Rejected the images of “%(section)s”.") % {"section": title})
        elif op == "upload":
            upload = request.FILES.get("file")
            if upload is None:
                raise ValidationError(_("Choose an image file to upload."))
            approve_now = bool(request.POST.get("approve_now"))
            if approve_now and not can(user, "review", post):
                raise PermissionDenied
            new = services.upload(section, upload, user=user, approve_now=approve_now)
            msg = _("Uploaded %(name)s as image #%(id)s for “%(section)s”%(approved)s.")
            messages.success(
                request,
                msg % {
                    "name": upload.name, "id": new.pk, "section": title,
                    "approved": _(" and approved it") if approve_now else "",
                },
            )
        elif op == "comment":
            services.add_comment(section, user=user, text=comment)
            messages.success(request, _("Comment added to “%(section)s”.") % {"section": title})


def _section_key(target: Section | SectionReview) -> str:
    return target.section_key if isinstance(target, SectionReview) else target.key


def section_label(target: Section | SectionReview | None) -> str:
    if target is None:
        return ""
    if isinstance(target, SectionReview):
        return target.section_title or target.section_key
    return target.title


class PostReview(ReviewPage):
    """The review views for one host post ModelAdmin (``PostImagesAdminMixin``)."""

    def __init__(self, model_admin: ModelAdmin):
        self.model_admin = model_admin
        self.opts = model_admin.model._meta

    def url_name(self, suffix: str) -> str:
        return f"{self.model_admin.admin_site.name}:{self.opts.app_label}_{self.opts.model_name}_{suffix}"

    def get_post(self, request: HttpRequest, object_id: str):
        from django.contrib.admin.utils import unquote

        post = self.model_admin.get_object(request, unquote(object_id))
        if post is None:
            raise Http404(_("No post with id “%(id)s”.") % {"id": object_id})
        if not self.model_admin.has_view_or_change_permission(request, post):
            raise PermissionDenied
        return post

    def urls_for(self, post) -> dict[str, str]:
        args = [post.pk]
        site = self.model_admin.admin_site.name
        return {
            "review": reverse(self.url_name("images"), args=args),
            "status": reverse(self.url_name("images_status"), args=args),
            "section": reverse(self.url_name("images_section"), args=[post.pk, "0"]),
            "change": reverse(self.url_name("change"), args=args),
            "reviews": reverse(f"{site}:blogimages_sectionreview_changelist"),
            "results": reverse(f"{site}:blogimages_imagegenerationresult_changelist"),
            "playground": reverse(f"{site}:blogimages_playground"),
            "status_page": reverse(f"{site}:blogimages_status"),
        }

    def page_context(self, request: HttpRequest, post) -> dict[str, Any]:
        request.current_app = self.model_admin.admin_site.name
        return {
            **self.model_admin.admin_site.each_context(request),
            "opts": self.opts,
            "has_view_permission": self.model_admin.has_view_permission(request),
        }


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
            ) % {"count": waiting, "error": errors[0]},
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


# --- the prompt playground --------------------------------------------------------------------


def playground_cards(results) -> list[Candidate]:
    return [
        Candidate(
            result=r, thumb_url=_file_url(r.thumbnail), image_url=_file_url(r.image), thumb_height=thumb_height(r)
        )
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


def admin_tool_urls(site: str) -> dict[str, str]:
    """Where the playground and status pages of Django admin site ``site`` live."""
    return {
        "playground": reverse(f"{site}:blogimages_playground"),
        "playground_status": reverse(f"{site}:blogimages_playground_status"),
        "playground_models": reverse(f"{site}:blogimages_playground_models"),
        "status_page": reverse(f"{site}:blogimages_status"),
        "status_comfyui": reverse(f"{site}:blogimages_status_comfyui"),
        "results": reverse(f"{site}:blogimages_imagegenerationresult_changelist"),
    }


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
            data = form.cleaned_data
            if action == "save":
                example = ImagePromptExample.objects.create(
                    name=data["example_name"], prompt=data["prompt"], style=data["style"],
                    image_format=data["image_format"], setting=data["setting"],
                    provider=data["providers"][0] if len(data["providers"]) == 1 else "",
                    model=data["model"], created_by=request.user,
                )
                messages.success(
                    request,
                    format_html(_("Saved the prompt example <a href=\"{}\">{}</a>."), example_url(example.pk),
                                example.name),
                )
                if form.overrides():
                    messages.warning(
                        request,
                        _("A prompt example keeps the prompt, style, format, setting, provider and model; "
                          "the advanced values (seed, size, steps…) belong in an image setting."),
                    )
                target = urls["playground"] + f"?example={example.pk}"
                if group:
                    target += f"&group={group}"
                return HttpResponseRedirect(target)
            from .services import GenerationSpec

            try:
                created = services.request_generation(
                    GenerationSpec(
                        prompt=data["prompt"], providers=data["providers"], style=data["style"],
                        image_format=data["image_format"], setting=data["setting"], model=data["model"],
                        overrides=form.overrides(),
                    ),
                    user=request.user,
                )
            except ValidationError as exc:
                by_field = exc.error_dict if hasattr(exc, "error_dict") else {None: exc.error_list}
                for name, errors in by_field.items():
                    target_field = name if name in form.fields else None
                    for error in errors:
                        form.add_error(target_field, error)
            except BlogImagesError as exc:
                form.add_error(None, str(exc))
            else:
                if not report_queue_errors(request, created):
                    messages.success(
                        request,
                        ngettext("Queued %(count)d image.", "Queued %(count)d images side by side.", len(created))
                        % {"count": len(created)},
                    )
                return HttpResponseRedirect(urls["playground"] + f"?group={created[0].group}")
    else:
        initial: dict[str, Any] = {"providers": [app_settings.DEFAULT_PROVIDER]}
        source = None
        if request.GET.get("from"):
            source = ImageGenerationResult.objects.select_related("style", "image_format", "setting").filter(
                pk=request.GET["from"] if request.GET["from"].isdigit() else 0
            ).first()
            if source is None:
                messages.error(request, _("There is no result #%(id)s to copy.") % {"id": request.GET["from"]})
            else:
                initial = initial_from_result(source)
        elif request.GET.get("example"):
            example = ImagePromptExample.objects.filter(
                pk=request.GET["example"] if request.GET["example"].isdigit() else 0
            ).first()
            if example is not None:
                initial = {k: v for k, v in initial_from_example(example).items() if v not in (None, "")}
                initial.setdefault("providers", [app_settings.DEFAULT_PROVIDER])
        elif results:
            initial = initial_from_result(results[0], providers=list(dict.fromkeys(r.provider for r in results)))
        form = PlaygroundForm(initial=initial)

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
    }
    return TemplateResponse(request, template_name, context)


def playground_status(request: HttpRequest, *, urls: dict[str, str]) -> JsonResponse:
    """Progress of one playground comparison (``?group=``), each card's HTML included."""
    group = _parse_group(request.GET.get("group"))
    if group is None:
        return JsonResponse({"active": False, "results": []})
    maybe_sweep()
    context = {"thumb_width": THUMB_WIDTH, "playground_url": urls["playground"], "results_url": urls["results"]}
    labels = dict(ResultStatus.choices)
    payload = []
    for card in playground_cards(_group_results(group)):
        r = card.result
        payload.append({
            "id": r.pk, "status": r.status, "status_label": str(labels.get(r.status, r.status)),
            "active": card.is_active, "progress": r.progress, "message": r.progress_message,
            "html": render_to_string("blogimages/admin/_playground_card.html", {**context, "card": card}, request),
        })
    return JsonResponse({"active": any(p["active"] for p in payload), "results": payload})


def playground_models(request: HttpRequest) -> JsonResponse:
    """Model names for the chosen providers (asked when the editor ticks them, not on page load)."""
    from .providers import providers

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

    def base_context() -> dict[str, Any]:
        context = {**model_admin.admin_site.each_context(request), "opts": model_admin.model._meta}
        request.current_app = site
        return context

    return playground_page(
        request,
        urls=admin_tool_urls(site),
        example_url=lambda pk: reverse(f"{site}:blogimages_imagepromptexample_change", args=[pk]),
        template_name="blogimages/admin/playground.html",
        base_context=base_context,
    )


def playground_status_view(model_admin: ModelAdmin, request: HttpRequest) -> JsonResponse:
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    if _parse_group(request.GET.get("group")) is None:
        return JsonResponse({"active": False, "results": []})
    return playground_status(request, urls=admin_tool_urls(model_admin.admin_site.name))


def playground_models_view(model_admin: ModelAdmin, request: HttpRequest) -> JsonResponse:
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    return playground_models(request)


# --- the status page -------------------------------------------------------------------------


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
            "", "<tr><th scope=\"row\">{}</th><td>{}</td></tr>",
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
            head = format_html_join("", "<th scope=\"col\">{}</th>", ((str(c).replace("_", " "),) for c in columns))

            def cells(row: dict) -> SafeString:
                values = ((render_info(row.get(c), str(c), depth + 1),) for c in columns)
                return format_html_join("", "<td>{}</td>", values)

            rows = format_html_join("", "<tr>{}</tr>", ((cells(row),) for row in value))
            return format_html('<table class="bi-kv bi-kv--rows"><thead><tr>{}</tr></thead><tbody>{}</tbody></table>',
                               head, rows)
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


def _health(alias: str) -> dict[str, Any]:
    from .providers import providers

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
    from .providers import providers

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

    from .providers import providers

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
