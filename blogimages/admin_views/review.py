"""A post's image review page (one panel per section, live status, the actions), for any
host: :class:`ReviewPage` is the host-neutral view; :class:`PostReview` wires it into a
Django admin ModelAdmin (``PostImagesAdminMixin``)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Count, F, Window
from django.db.models.functions import RowNumber
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from .. import services, writer
from ..conf import app_settings
from ..exceptions import BlogImagesError, UploadRejected
from ..hosts import Section, get_host
from ..models import (
    ACTIVE_STATUSES,
    ImageGenerationResult,
    ImagePromptExample,
    PostImageSettings,
    ResultStatus,
    ReviewAction,
    ReviewEvent,
    ReviewStatus,
    SectionReview,
)

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin

from .common import (
    THUMB_WIDTH,
    Candidate,
    can,
    card_version,
    card_words,
    error_text,
    file_url,
    live_previews,
    notify,
    report_generation,
    report_queue_errors,
    section_label,
    split_messages,
    thumb_height,
    user_perms,
)

logger = logging.getLogger("blogimages.admin")

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
    "save-prompt": "generate",
    "save-alt": "review",
    # Drafts from the writer (blogimages.writer): answered with JSON for the page's script.
    "draft-prompt": "generate",
    "draft-alt": "review",
    "draft-alt-upload": "upload",
    # Several candidates at once (checkboxes on the cards, one button): page-wide.
    "approve-selected": "review",
    "reject-selected": "review",
}
DRAFTS = frozenset({"draft-prompt", "draft-alt", "draft-alt-upload"})
HISTORY_SHOWN = 20  # events per section on the review page; the section review page has all


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
    #: Feedback on what the editor just did in this section (shown in the panel, where they acted).
    messages: list = field(default_factory=list)

    @property
    def latest_comment(self) -> ReviewEvent | None:
        """The newest event with an editor's comment (a remark, a rejection's reason, an
        approval's note; an upload's "comment" is its file name): never stale."""
        said = (ReviewAction.COMMENTED, ReviewAction.REJECTED, ReviewAction.APPROVED)
        return next((event for event in self.events if event.comment and event.action in said), None)

    @property
    def rejected_count(self) -> int:
        return sum(1 for c in self.candidates if c.decision == "rejected")

    @property
    def undecided_count(self) -> int:
        return sum(1 for c in self.candidates if not c.decision and c.result.status == ResultStatus.SUCCEEDED)

    @property
    def sent(self) -> list:
        """What the section's newest generated candidate sent (the card's rows), for the panel."""
        generated = [c for c in self.candidates if c.result.source == "generated"]
        return generated[-1].sent if generated else []

    @property
    def removed(self) -> bool:
        return self.section is None

    @property
    def has_active(self) -> bool:
        return any(c.is_active for c in self.candidates)

    @property
    def approved(self) -> Candidate | None:
        return next((c for c in self.candidates if c.result.is_approved), None)


#: Actions that would give a removed section a new approved image or a new candidate.
NO_NEW_IMAGES = frozenset({"approve", "requeue", "regenerate", "regenerate-same-seed"})


def load_panels(post, section_key: str | None = None, perms: dict[str, bool] | None = None) -> list[Panel]:
    """Everything the review page shows, in a constant number of queries whatever the
    number of sections (the host adapter's reading of the post comes on top).

    Sections without a review row get an unsaved one: rendering never writes. Reviews of
    sections that are no longer in the post come last, marked removed, with their images
    and history. With ``perms`` (:func:`user_perms`), each card knows its buttons.
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
        .select_related("requested_by", "approved_for", "rejected_by", "style")
        .order_by("created_at", "id")
    )
    cards: dict[int, Candidate] = {}
    for result in results:
        card = Candidate(
            result=result,
            thumb_url=file_url(result.thumbnail),
            image_url=file_url(result.image),
            thumb_height=thumb_height(result),
            form_id=form_ids[result.review_id],
        )
        cards[result.pk] = card
        by_review[result.review_id].append(card)
    # Lineage from the cards already loaded (a refine stays in its section): no query.
    for card in cards.values():
        parent_id, seen = card.result.parent_id, {card.result.pk}
        while parent_id and parent_id in cards and parent_id not in seen:
            seen.add(parent_id)
            card.ancestors.insert(0, cards[parent_id])
            parent_id = cards[parent_id].result.parent_id
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
        prompt, source = services.section_prompt_and_source(section, review, example) if section else ("", "")
        history = events.get(review.pk, []) if review.pk else []
        total = totals.get(review.pk, 0) if review.pk else 0
        if perms is not None:
            for card in by_review.get(review.pk, []):
                card.actions = services.result_actions(card.result, perms)
                if section is None:  # removed from the post: it keeps its images, gets no new ones
                    card.actions -= NO_NEW_IMAGES
        panels.append(
            Panel(
                section=section,
                key=key,
                title=section.title if section else review.section_title or key,
                text=section.text if section else "",
                review=review,
                prompt=prompt,
                prompt_source=source,
                example=example,
                candidates=by_review.get(review.pk, []) if review.pk else [],
                events=history,
                earlier_events=max(0, total - len(history)),
            )
        )
    return panels


#: Seconds a job may wait in the queue before its card says it is waiting for a busy worker.
QUEUED_TOO_LONG = 120


def waiting_note(queued_at, note: str) -> str:
    """The queue's note, or, when a worker listens but the job has waited long, that one."""
    if note or queued_at is None:
        return note
    waited = (timezone.now() - queued_at).total_seconds()
    if waited <= QUEUED_TOO_LONG:
        return ""
    return _(
        "Waiting for %(minutes)d min: the workers of queue “%(queue)s” are busy with other jobs "
        "(the status page lists them)."
    ) % {"minutes": waited // 60, "queue": app_settings.QUEUE}


def add_queue_notes(panels: list[Panel]) -> None:
    """Tell each queued card when no worker takes jobs from the queue, or when it has waited
    long (one look at Redis for the page, and only when something is queued)."""
    queued = [c for p in panels for c in p.candidates if c.result.status == ResultStatus.QUEUED]
    if not queued:
        return
    from ..status import queue_note

    note = queue_note()
    for card in queued:
        card.queue_note = waiting_note(card.result.queued_at, note)


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

    def panel_context(self, request: HttpRequest, post, perms: dict[str, bool] | None = None) -> dict[str, Any]:
        return {
            # Sent back by the page's forms: a double click's second request (same key,
            # same operation) gets the first one's outcome instead of a second job.
            "request_key": uuid.uuid4().hex,
            "post": post,
            "perms_bi": perms if perms is not None else user_perms(request.user, post),
            "urls": self.urls_for(post),
            "thumb_width": THUMB_WIDTH,
            "words": {**card_words(), "draft_alt": _("Draft alt text")},
            "drafts_on": writer.enabled(),
            "max_candidates": app_settings.MAX_CANDIDATES,
            # Cards carry only their tools' data; viewer.js fills the buttons from one template.
            "tools_lazy": True,
        }

    def review_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        post = self.get_post(request, object_id)
        self.check_post_permission(request, post)
        if request.method == "POST":
            return self.act(request, post)
        perms = user_perms(request.user, post)
        panels = load_panels(post, perms=perms)
        add_queue_notes(panels)
        # Feedback goes where the editor acted: a section's messages into its panel.
        page_messages, by_section = split_messages(request, [p.key for p in panels])
        for panel in panels:
            panel.messages = by_section.get(panel.key, [])
            for message in panel.messages:
                message.bi_confirm_alt = alt_confirmation(message)
        current = [p for p in panels if not p.removed]
        counts = {
            "sections": len(current),
            "removed": len(panels) - len(current),
            "approved": sum(1 for p in current if p.review.status == ReviewStatus.APPROVED),
            "rejected": sum(1 for p in current if p.review.status == ReviewStatus.REJECTED),
            "active": sum(1 for p in panels for c in p.candidates if c.is_active),
            "candidates": sum(len(p.candidates) for p in panels),
        }
        from ..providers import providers

        host = get_host()
        context = {
            **self.page_context(request, post),
            **self.panel_context(request, post, perms),
            "title": _("Images for “%(post)s”") % {"post": host.post_title(post)},
            "subtitle": None,
            "original": post,
            "panels": panels,
            "counts": counts,
            "provider_aliases": providers.aliases,
            "default_provider": app_settings.DEFAULT_PROVIDER,
            "public_url": host.post_public_url(post),
            "edit_url": host.post_admin_url(post),
            "bulk_alt_confirm": bulk_alt_confirmation(page_messages),
            "messages": page_messages,
            "results_url": self.urls_for(post)["results"],  # the viewer's dialog (_viewer_media.html)
            "bulk_selectable": any(c.selectable for p in panels for c in p.candidates),
            # The section whose upload form is open without script (its slot's link: ?upload=KEY).
            "upload_open": request.GET.get("upload", ""),
            "upload_without_alt": request.GET.get("without_alt") == "1",  # after a refusal for missing alt text
        }
        return TemplateResponse(request, self.template_name, context)

    def section_view(self, request: HttpRequest, object_id: str, section_key: str) -> HttpResponse:
        """One section's panel, re-rendered by the page's script when a job finishes."""
        post = self.get_post(request, object_id)
        self.check_post_permission(request, post)
        perms = user_perms(request.user, post)
        panels = load_panels(post, section_key=section_key, perms=perms)
        if not panels:
            raise Http404(_("This post has no such section."))
        add_queue_notes(panels)
        context = {**self.panel_context(request, post, perms), "panel": panels[0]}
        return HttpResponse(render_to_string(self.panel_template_name, context, request))

    def status_view(self, request: HttpRequest, object_id: str) -> JsonResponse:
        """Status and progress of every candidate of the post, polled about once a second."""
        post = self.get_post(request, object_id)
        self.check_post_permission(request, post)
        rows = list(
            ImageGenerationResult.objects.for_post(post).values_list(
                "pk",
                "review__section_key",
                "status",
                "progress",
                "progress_message",
                "updated_at",
                "approved_for",
                "queued_at",
            )
        )
        labels = dict(ResultStatus.choices)
        results = [
            {
                "id": pk,
                "section": key,
                "status": status,
                "status_label": str(labels.get(status, status)),
                "active": status in ACTIVE_STATUSES,
                "progress": progress,
                "message": message,
                # Changes whenever the row does (a decision too): the page refreshes that card.
                "version": card_version(updated, approved is not None),
            }
            for pk, key, status, progress, message, updated, approved, _queued in rows
        ]
        # Partial images of running candidates (one Redis MGET for the page): live.js shows them.
        previews = live_previews([r["id"] for r in results if r["status"] == ResultStatus.RUNNING])
        for r in results:
            r.update(previews.get(r["id"], ()))
        queued_at = {row[0]: row[7] for row in rows}
        if any(r["status"] == ResultStatus.QUEUED for r in results):
            from ..status import queue_note

            note = queue_note()
            for r in results:
                r["note"] = waiting_note(queued_at[r["id"]], note) if r["status"] == ResultStatus.QUEUED else ""
        return JsonResponse({"active": any(r["active"] for r in results), "results": results})

    # --- actions (POST) ---------------------------------------------------------------------

    def act(self, request: HttpRequest, post) -> HttpResponse:
        op, _sep, result_id = request.POST.get("do", "").partition(":")
        if op not in OPERATIONS:
            notify(request, messages.ERROR, _("Unknown action “%(op)s”.") % {"op": op})
            return HttpResponseRedirect(request.path)
        if not can(request.user, OPERATIONS[op], post):
            raise PermissionDenied
        target: Section | SectionReview | None = None
        key = request.POST.get("section", "")
        if key:
            target = (
                get_host().section(post, key) or SectionReview.objects.for_post(post).filter(section_key=key).first()
            )
            if target is None:
                raise Http404(_("This post has no such section."))
        result = None
        if result_id:
            try:
                result = ImageGenerationResult.objects.for_post(post).select_related("review").get(pk=int(result_id))
            except (ValueError, ImageGenerationResult.DoesNotExist):
                raise Http404(_("This post has no such image.")) from None
            target = get_host().section(post, result.review.section_key) or result.review
        if op in DRAFTS:
            return self.draft(request, op, target, result)
        anchor = f"#bi-section-{_section_key(target)}" if target is not None else ""
        # The page shows this action's messages in the panel of the section acted on.
        request.bi_section = _section_key(target) if target is not None else None
        try:
            self.perform(request, op, post, target, result)
        except (BlogImagesError, ValidationError) as exc:  # UploadRejected and MissingAltText among them
            if isinstance(exc, UploadRejected):
                notify(request, messages.ERROR, _("The upload was refused: %(why)s") % {"why": error_text(exc)})
            elif isinstance(exc, services.MissingAltText):
                ask_alt_confirmation(request, op, result, exc)
            else:
                notify(request, messages.ERROR, error_text(exc))
            if op == "upload" and target is not None:
                # The editor uploads again: the page opens with that section's form (with or without
                # script), with a box to confirm publishing without alt text when that was the refusal.
                query = {"upload": _section_key(target)}
                if isinstance(exc, services.MissingAltText):
                    query["without_alt"] = "1"
                return HttpResponseRedirect(f"{request.path}?{urlencode(query)}{anchor}")
        return HttpResponseRedirect(request.path + anchor)

    def draft(self, request: HttpRequest, op: str, section, result) -> JsonResponse:
        """A draft for the editor to check (``{"text", "model"}``), or ``{"error"}``: saved by nobody."""
        try:
            if op == "draft-alt":
                if result is None:
                    raise writer.DraftError(_("Say which image."), status=400)
                made = writer.draft_alt_text(result)
            elif not isinstance(section, Section):
                raise writer.DraftError(_("Say which section of the post."), status=400)
            elif op == "draft-prompt":
                made = writer.draft_prompt(section)
            else:
                upload = request.FILES.get("file")
                if upload is None:
                    raise writer.DraftError(_("Choose an image file first."), status=400)
                made = writer.draft_alt_text_for_upload(upload, section)
        except UploadRejected as exc:
            return JsonResponse({"error": _("The file was refused: %(why)s") % {"why": str(exc)}}, status=400)
        except writer.DraftError as exc:
            return JsonResponse({"error": str(exc)}, status=exc.status)
        return JsonResponse({"text": made.text, "model": made.model})

    def perform(self, request: HttpRequest, op: str, post, section, result) -> None:
        needs, handler = HANDLERS[op]
        if "section" in needs and section is None:
            raise ValidationError(_("Say which section."))
        if "result" in needs and result is None:
            raise ValidationError(_("Say which image."))
        if "new image" in needs and isinstance(section, SectionReview):
            raise ValidationError(
                _("“%(section)s” was removed from the post; it keeps its history, but gets no new images.")
                % {"section": section.section_title or section.section_key}
            )
        handler(Action(request, op, post, section, result))


@dataclass
class Action:
    """One POST of the review page, as its handler sees it."""

    request: HttpRequest
    op: str
    post: Any
    section: Section | SectionReview | None
    result: ImageGenerationResult | None

    @property
    def user(self):
        return self.request.user

    @property
    def comment(self) -> str:
        return self.request.POST.get("comment", "").strip()

    @property
    def provider(self) -> str | None:
        return self.request.POST.get("provider") or None

    @property
    def candidates(self) -> int:
        """How many candidates the section form asks for (1 without the field)."""
        raw = (self.request.POST.get("candidates") or "1").strip()
        if not raw.isdigit():
            raise ValidationError(_("Ask for a whole number of candidates, not “%(value)s”.") % {"value": raw})
        return int(raw)

    @property
    def request_key(self) -> str | None:
        """The form's idempotency key (``services._claim_request_key``)."""
        return self.request.POST.get("request_key") or None

    @property
    def alt_text(self) -> str | None:
        """The alt text field as the editor left it (None: the form had none)."""
        return services.clean_alt_text(self.request.POST.get("alt_text"))

    @property
    def publish_without_alt(self) -> bool:
        """The editor confirmed publishing the image without alt text (services.check_alt_text)."""
        return self.request.POST.get("publish_without_alt") == "1"

    @property
    def replaces(self) -> int | None:
        """The approved image the editor saw (``""``: none); unchecked if the form did not say."""
        raw = self.request.POST.get("replaces")
        if raw is None:
            return services.UNCHECKED
        try:
            return int(raw) if raw.strip() else None
        except ValueError:
            raise ValidationError(_("The form's approved image is not an image id; reload the page.")) from None

    def repeated(self, results) -> bool:
        """Say so when the request repeated an earlier one (a double click): nothing new was queued."""
        if not results or not getattr(results[0], "repeated", False):
            return False
        ids = ", ".join(f"#{result.pk}" for result in results)
        text = _("This request was already made (%(ids)s); nothing new was queued.") % {"ids": ids}
        notify(self.request, messages.INFO, text)
        return True

    def done(self, text: str, **values: Any) -> None:
        """Say what was done; ``ref`` (the image) and ``section`` (its title) are filled in."""
        ref = _("image #%(id)s") % {"id": self.result.pk} if self.result else ""
        notify(self.request, messages.SUCCESS, text % {"ref": ref, "section": section_label(self.section), **values})


def _generate_post(act: Action) -> None:
    missing = act.op == "generate-missing"
    outcome = services.generate_for_post(
        act.post, user=act.user, provider=act.provider, only_missing=missing, idempotency_key=act.request_key
    )
    if not act.repeated(outcome.results):
        report_generation(act.request, outcome.results, outcome.skipped, posts=1)


def _generate_section(act: Action) -> None:
    results = services.generate_for_section(
        act.section, user=act.user, provider=act.provider, idempotency_key=act.request_key, candidates=act.candidates
    )
    if not act.repeated(results):
        report_generation(act.request, results, [], posts=0)


def _regenerate(act: Action) -> None:
    same_seed = act.op == "regenerate-same-seed"
    new = services.regenerate(act.result, user=act.user, same_seed=same_seed, idempotency_key=act.request_key)
    if not act.repeated([new]) and not report_queue_errors(act.request, [new]):
        seed = _("the same seed") if same_seed else _("a new seed")
        act.done(_("Queued image #%(new)s for “%(section)s”, like %(ref)s with %(seed)s."), new=new.pk, seed=seed)


def _cancel(act: Action) -> None:
    services.cancel(act.result, user=act.user)
    act.done(_("Cancelled %(ref)s."))


def _requeue(act: Action) -> None:
    services.requeue(act.result, user=act.user)
    if not report_queue_errors(act.request, [act.result]):
        act.done(_("Sent %(ref)s to the queue again."))


def _approve(act: Action) -> None:
    # One transaction: the host's publish hook (after commit) sees the alt text the editor
    # confirmed; without one the editor is asked first (services.check_alt_text).
    review = services.approve_with_alt_text(
        act.result,
        alt_text=act.alt_text,
        allow_missing_alt=act.publish_without_alt,
        user=act.user,
        comment=act.comment,
        replaces=act.replaces,
    )
    if review.unchanged:
        ref = _("Image #%(id)s") % {"id": act.result.pk}
        notify(act.request, messages.INFO, _("%(ref)s is already approved; nothing changed.") % {"ref": ref})
    elif review.replaced_id:
        act.done(_("Approved %(ref)s for “%(section)s”; it replaces image #%(old)s."), old=review.replaced_id)
    else:
        act.done(_("Approved %(ref)s for “%(section)s”."))


def _reject(act: Action) -> None:
    review = services.reject(result=act.result, user=act.user, comment=act.comment)
    if review.status == ReviewStatus.REJECTED:
        act.done(_("Rejected %(ref)s; “%(section)s” has no approved image now."))
    else:
        act.done(_("Rejected %(ref)s for “%(section)s”."))


def _reject_section(act: Action) -> None:
    services.reject(act.section, user=act.user, comment=act.comment)
    act.done(_("Rejected the images of “%(section)s”."))


def _upload(act: Action) -> None:
    upload = act.request.FILES.get("file")
    if upload is None:
        raise ValidationError(_("Choose an image file to upload."))
    approve_now = bool(act.request.POST.get("approve_now"))
    if approve_now and not can(act.user, "review", act.post):
        raise PermissionDenied
    alt_text = act.alt_text if approve_now else None  # it describes the approved image
    if approve_now:
        services.check_alt_text(services.find_review(act.section), alt_text, allow_missing_alt=act.publish_without_alt)
    with transaction.atomic():
        new = services.upload(act.section, upload, user=act.user, approve_now=approve_now)
        if alt_text is not None:
            services.save_alt_text(new.review, alt_text)
    approved = _(" and approved it") if approve_now else ""
    act.done(
        _("Uploaded %(name)s as image #%(id)s for “%(section)s”%(approved)s."),
        name=upload.name,
        id=new.pk,
        approved=approved,
    )


def _save_prompt(act: Action) -> None:
    services.save_prompt(act.section, act.request.POST.get("prompt", ""))
    act.done(_("Saved the prompt of “%(section)s”."))


def _save_alt(act: Action) -> None:
    alt_text = act.alt_text
    if alt_text is None:
        raise ValidationError(_("Write the alt text first."))
    review = act.section if isinstance(act.section, SectionReview) else services.find_review(act.section)
    if review is None or review.approved_result_id is None:
        raise ValidationError(
            _("“%(section)s” has no approved image to describe.") % {"section": section_label(act.section)}
        )
    services.save_alt_text(review, alt_text)
    act.done(_("Saved the alt text of “%(section)s”."))


def _decide_selected(act: Action) -> None:
    """Approve or reject the candidates ticked on the page, all or none (services.decide_many)."""
    raw = act.request.POST.getlist("ids")
    try:
        ids = sorted({int(value) for value in raw})
    except ValueError:
        raise ValidationError(_("The selection is not a list of image ids; reload the page.")) from None
    if not ids:
        raise ValidationError(_("Tick the images to approve or reject first."))
    results = list(ImageGenerationResult.objects.for_post(act.post).select_related("review").filter(pk__in=ids))
    missing = sorted(set(ids) - {r.pk for r in results})
    if missing:
        raise Http404(_("This post has no image #%(id)s.") % {"id": missing[0]})
    decision = "approve" if act.op == "approve-selected" else "reject"
    if decision == "approve":
        present = {section.key for section in get_host().sections(act.post)}
        gone = [r for r in results if r.review.section_key not in present]
        if gone:
            raise ValidationError(
                _("Image #%(id)s belongs to a section removed from the post; it gets no new approval.")
                % {"id": gone[0].pk}
            )
    outcome = services.decide_many(
        results, decision=decision, user=act.user, comment=act.comment, allow_missing_alt=act.publish_without_alt
    )
    notify(act.request, messages.SUCCESS, outcome.summary)


def _comment(act: Action) -> None:
    services.add_comment(act.section, user=act.user, text=act.comment)
    act.done(_("Comment added to “%(section)s”."))


#: Each operation's handler and what it needs: a section, a result, and whether it would
#: give the section a new image (refused for a section removed from its post).
HANDLERS: dict[str, tuple[frozenset[str], Callable[[Action], None]]] = {
    "generate-post": (frozenset(), _generate_post),
    "generate-missing": (frozenset(), _generate_post),
    "generate-section": (frozenset({"section", "new image"}), _generate_section),
    "regenerate": (frozenset({"result"}), _regenerate),
    "regenerate-same-seed": (frozenset({"result"}), _regenerate),
    "cancel": (frozenset({"result"}), _cancel),
    "requeue": (frozenset({"result"}), _requeue),
    "approve": (frozenset({"result", "new image"}), _approve),
    "reject": (frozenset({"result"}), _reject),
    "reject-section": (frozenset({"section"}), _reject_section),
    "upload": (frozenset({"section", "new image"}), _upload),
    "comment": (frozenset({"section"}), _comment),
    "save-prompt": (frozenset({"section", "new image"}), _save_prompt),
    "save-alt": (frozenset({"section"}), _save_alt),
    "approve-selected": (frozenset(), _decide_selected),
    "reject-selected": (frozenset(), _decide_selected),
}


# --- Asking before publishing without alt text (issue 11, point 8) ---------------------------
#
# The page's script asks before the click is sent (live.js, confirmAlt); without script the
# view refuses (services.MissingAltText) and the section's message carries the confirm button:
# the same approval again with publish_without_alt=1.

CONFIRM_ALT_TAG = "bi-confirm-alt="
CONFIRM_BULK_TAG = "bi-confirm-bulk-alt="  # the ticked ids, comma-separated
CONFIRM_BULK_COMMENT_TAG = "bi-confirm-bulk-comment="  # the bulk comment, URL-quoted


def ask_alt_confirmation(request: HttpRequest, op: str, result, refusal: services.MissingAltText) -> None:
    """The refusal in the acted-on section's messages; an approval's carries its confirm. For
    "Approve selected" it is page-wide and carries the ticked images and the comment, which
    the page puts in the confirm form next to the bulk buttons (bulk_alt_confirmation)."""
    from urllib.parse import quote

    from .common import SECTION_TAG

    key = getattr(request, "bi_section", None)
    tags = [f"bi-in-section {SECTION_TAG}{quote(key, safe='')}"] if key is not None else []
    if op == "approve-selected":
        ids = ",".join(sorted({value for value in request.POST.getlist("ids") if value.isdigit()}, key=int))
        tags += [f"{CONFIRM_BULK_TAG}{ids}", f"{CONFIRM_BULK_COMMENT_TAG}{quote(request.POST.get('comment', ''))}"]
        text = refusal.messages[0]
    elif op == "approve" and result is not None:
        tags.append(f"{CONFIRM_ALT_TAG}{result.pk}")
        text = _(services.MISSING_ALT_TEXT)
    else:
        text = _(
            "This image would be published without alt text; screen readers would say nothing. "
            "Write the alt text, or confirm publishing without it when you upload it again."
        )
    messages.add_message(request, messages.WARNING, text, extra_tags=" ".join(tags))


def bulk_alt_confirmation(page_messages: list) -> dict | None:
    """The confirm form for "Approve selected" without alt text (``{"text", "ids", "comment"}``),
    taken out of the page's messages; None when the last action asked nothing."""
    from urllib.parse import unquote

    for message in page_messages:
        tags = dict(tag.split("=", 1) for tag in (message.extra_tags or "").split() if "=" in tag)
        if CONFIRM_BULK_TAG[:-1] in tags:
            page_messages.remove(message)
            return {
                "text": str(message),
                "ids": [value for value in tags[CONFIRM_BULK_TAG[:-1]].split(",") if value],
                "comment": unquote(tags.get(CONFIRM_BULK_COMMENT_TAG[:-1], "")),
            }
    return None


def alt_confirmation(message) -> str:
    """The result id a message asks to approve without alt text ("" for other messages)."""
    for tag in (message.extra_tags or "").split():
        if tag.startswith(CONFIRM_ALT_TAG):
            return tag[len(CONFIRM_ALT_TAG) :]
    return ""


def _section_key(target: Section | SectionReview) -> str:
    return target.section_key if isinstance(target, SectionReview) else target.key


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
