"""Admin for the editors' library and the review workflow.

- :class:`PostImagesAdminMixin` goes into the host's post ModelAdmin: the "Generate
  images for all sections" action and the per-post review page.
- The library (styles, formats, settings, prompt examples, per-post settings) has full
  CRUD with search and filters.
- Results and section reviews are read-mostly: every change is an action that calls
  :mod:`blogimages.services`, so the rules (one approved image per section, history,
  permissions) hold whichever page an editor uses.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.options import IS_POPUP_VAR
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import HttpRequest, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.text import Truncator
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from . import admin_views, services
from .admin_views import (
    PERMISSIONS,
    PostReview,
    can,
    error_text,
    report_generation,
    report_queue_errors,
    section_label,
)
from .exceptions import BlogImagesError
from .forms import CommentForm
from .models import (
    ImageFormat,
    ImageGenerationResult,
    ImagePromptExample,
    ImageSetting,
    ImageStyle,
    PostImageSettings,
    ResultStatus,
    ReviewEvent,
    SectionReview,
)
from .storage import delete_quietly

# What each bulk action reports: (singular, plural) with %(count)d.
REJECTED_IMAGES = ("Rejected %(count)d image.", "Rejected %(count)d images.")
QUEUED_NEW = ("Queued %(count)d new image.", "Queued %(count)d new images.")
CANCELLED_JOBS = ("Cancelled %(count)d job.", "Cancelled %(count)d jobs.")
REQUEUED_JOBS = ("Re-queued %(count)d job.", "Re-queued %(count)d jobs.")
QUEUED_SECTIONS = ("Queued images for %(count)d section.", "Queued images for %(count)d sections.")
APPROVED_SECTIONS = ("Approved an image for %(count)d section.", "Approved images for %(count)d sections.")
REJECTED_SECTIONS = ("Rejected %(count)d section.", "Rejected %(count)d sections.")


# --- shared helpers --------------------------------------------------------------------------


class ImagePermissionsMixin:
    """``has_<name>_permission`` for ``@admin.action(permissions=[...])``, and :meth:`each`
    for the bulk actions."""

    #: How a row is named in a bulk action's report.
    row_label: Callable[[Any], str] = str

    def each(self, request: HttpRequest, items: Iterable[Any], fn: Callable[[Any], Any], done: tuple[str, str]):
        return run_each(self, request, items, fn, done=done, label=type(self).row_label)

    def has_generate_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(PERMISSIONS["generate"])

    def has_review_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(PERMISSIONS["review"])

    def has_upload_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(PERMISSIONS["upload"])


def location_kwargs(action_location) -> dict[str, Any]:
    """Django 6.1 tells ``get_actions()`` where the actions show (change list or change
    form) and deprecates overrides that do not take it; Django 5.2 does not know it."""
    return {} if action_location is None else {"action_location": action_location}


def thumbnail_tag(result: ImageGenerationResult | None, width: int = 80) -> str:
    if result is None or not result.thumbnail:
        return "—"
    try:
        url = result.thumbnail.url
    except Exception:  # noqa: BLE001 - never break a list page over one file
        return "—"
    height = round(width * result.height / result.width) if result.width and result.height else ""
    return format_html(
        '<img src="{}" width="{}" height="{}" loading="lazy" alt="{}" class="bi-list-thumb">',
        url,
        width,
        height,
        gettext("Image #%(id)s") % {"id": result.pk},
    )


def status_tag(status: str, label: str) -> str:
    return format_html('<span class="bi-badge bi-badge--{}">{}</span>', status, label)


def run_each(
    modeladmin: admin.ModelAdmin,
    request: HttpRequest,
    items: Iterable[Any],
    fn: Callable[[Any], Any],
    *,
    done: tuple[str, str],
    label: Callable[[Any], str],
) -> list[Any]:
    """Call ``fn`` per item; report successes with a count and skipped items with why."""
    outcomes, failures = [], []
    for item in items:
        try:
            outcomes.append(fn(item))
        except (BlogImagesError, ValidationError, PermissionDenied) as exc:
            failures.append(f"{label(item)}: {error_text(exc)}")
    report_outcomes(modeladmin, request, outcomes, failures, done=done)
    return outcomes


def report_outcomes(
    modeladmin: admin.ModelAdmin,
    request: HttpRequest,
    outcomes: list[Any],
    failures: list[str],
    *,
    done: tuple[str, str],
) -> None:
    if outcomes:
        modeladmin.message_user(request, ngettext(*done, len(outcomes)) % {"count": len(outcomes)}, messages.SUCCESS)
    if failures:
        listed = "; ".join(failures[:10]) + ("; …" if len(failures) > 10 else "")
        modeladmin.message_user(
            request,
            ngettext("Skipped %(count)d (%(list)s).", "Skipped %(count)d (%(list)s).", len(failures))
            % {"count": len(failures), "list": listed},
            messages.WARNING,
        )


def action_step(
    modeladmin: admin.ModelAdmin,
    request: HttpRequest,
    queryset,
    *,
    action: str,
    title: str,
    intro: str,
    button: str,
    form=None,
    upload_rows=None,
) -> TemplateResponse:
    """The extra page of an action that needs a comment or files (like delete's confirmation)."""
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": title,
        "intro": intro,
        "button": button,
        "opts": modeladmin.model._meta,
        "objects": list(queryset),
        "action": action,
        "action_checkbox_name": ACTION_CHECKBOX_NAME,
        "form": form,
        "upload_rows": upload_rows,
        "can_approve": can(request.user, "review"),
    }
    request.current_app = modeladmin.admin_site.name
    return TemplateResponse(request, "blogimages/admin/action_step.html", context)


def comment_step(modeladmin, request, queryset, *, action, title, intro, button, required, apply) -> Any:
    if "apply" in request.POST:
        form = CommentForm(request.POST, required_message=required)
        if form.is_valid():
            apply(form.cleaned_data["comment"])
            return None
    else:
        form = CommentForm(required_message=required)
    return action_step(modeladmin, request, queryset, action=action, title=title, intro=intro, button=button, form=form)


def reject_step(modeladmin, request, queryset, action: str, title: str, apply) -> Any:
    """The comment page of the two reject actions: a rejection always says why."""
    return comment_step(
        modeladmin,
        request,
        queryset,
        action=action,
        title=title,
        intro=gettext("Say why; the comment lands in each section's history."),
        button=gettext("Reject"),
        required=gettext("Say why the images are rejected; the comment is required."),
        apply=apply,
    )


def comment_on(modeladmin, request, queryset, sections: list[Any], *, intro: str) -> Any:
    """The "comment on the sections" action of the results and the reviews lists."""

    def apply(text):
        run_each(
            modeladmin,
            request,
            sections,
            lambda s: services.add_comment(s, user=request.user, text=text),
            done=("Commented on %(count)d section.", "Commented on %(count)d sections."),
            label=section_label,
        )

    return comment_step(
        modeladmin,
        request,
        queryset,
        action="comment_on_sections",
        title=gettext("Comment"),
        intro=intro,
        button=gettext("Add comment"),
        required=gettext("The comment is empty."),
        apply=apply,
    )


def upload_step(modeladmin, request, queryset, sections: list[Any], *, action: str) -> Any:
    """One file input per selected section; each accepted file becomes a candidate."""
    if "apply" in request.POST:
        approve_now = bool(request.POST.get("approve_now")) and can(request.user, "review")
        chosen = [(s, request.FILES.get(f"file-{s.pk}")) for s in sections]
        chosen = [(s, f) for s, f in chosen if f is not None]
        if not chosen:
            modeladmin.message_user(request, gettext("Choose at least one file to upload."), messages.ERROR)
        else:
            run_each(
                modeladmin,
                request,
                chosen,
                lambda pair: services.upload(pair[0], pair[1], user=request.user, approve_now=approve_now),
                done=("Uploaded %(count)d image.", "Uploaded %(count)d images."),
                label=lambda pair: f"“{section_label(pair[0])}” ({pair[1].name})",
            )
            return None
    rows = [{"section": s, "title": section_label(s), "name": f"file-{s.pk}"} for s in sections]
    return action_step(
        modeladmin,
        request,
        queryset,
        action=action,
        title=gettext("Upload replacement images"),
        intro=gettext(
            "Each file is checked (real image content, size, pixels) before anything is stored, "
            "then becomes a candidate of its section."
        ),
        button=gettext("Upload"),
        upload_rows=rows,
    )


def section_of(result: ImageGenerationResult) -> str:
    return f"#{result.pk}"


# --- the host's post admin -----------------------------------------------------------------


class PostImagesAdminMixin:
    """Mix into the host's post ModelAdmin: the generate action and the review page.

    ``class PostAdmin(PostImagesAdminMixin, admin.ModelAdmin)``. The change form gets a
    "Review images" button (through ``change_form_template``; if you have your own,
    include ``blogimages/admin/review_link.html`` in its ``object-tools-items`` block)
    and the change list a column linking to the review page.
    """

    change_form_template = "blogimages/admin/post_change_form.html"
    blogimages_list_link = True

    @admin.action(description=_("Generate images for all sections"), permissions=["generate_images"])
    def generate_images_for_sections(self, request: HttpRequest, queryset) -> None:
        results, skipped, posts = [], [], 0
        for post in queryset:
            try:
                outcome = services.generate_for_post(post, user=request.user)
            except (BlogImagesError, ValidationError) as exc:
                self.message_user(
                    request, gettext("“%(post)s”: %(why)s") % {"post": post, "why": error_text(exc)}, messages.ERROR
                )
                continue
            posts += 1
            results += outcome.results
            skipped += outcome.skipped
        if posts:
            report_generation(request, results, skipped, posts=posts)

    def has_generate_images_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(PERMISSIONS["generate"])

    def get_actions(self, request: HttpRequest, action_location=None):
        actions = super().get_actions(request, **location_kwargs(action_location))
        name = "generate_images_for_sections"
        if self.actions is None or IS_POPUP_VAR in request.GET or name in actions:
            return actions
        if self.has_generate_images_permission(request):
            actions[name] = self.get_action(name)
        return actions

    def get_list_display(self, request: HttpRequest):
        columns = list(super().get_list_display(request))
        if self.blogimages_list_link and "blogimages_review_link" not in columns:
            columns.append("blogimages_review_link")
        return columns

    @admin.display(description=_("Images"))
    def blogimages_review_link(self, obj) -> str:
        return format_html(
            '<a href="{}" class="bi-review-link">{}</a>',
            self.blogimages_review.urls_for(obj)["review"],
            gettext("Review images"),
        )

    @property
    def blogimages_review(self) -> PostReview:
        return PostReview(self)

    def get_urls(self):
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        wrap = self.admin_site.admin_view
        review = self.blogimages_review
        urls = [
            path("<path:object_id>/images/status/", wrap(review.status_view), name=f"{prefix}_images_status"),
            path(
                "<path:object_id>/images/section/<str:section_key>/",
                wrap(review.section_view),
                name=f"{prefix}_images_section",
            ),
            path("<path:object_id>/images/", wrap(review.review_view), name=f"{prefix}_images"),
        ]
        return urls + super().get_urls()

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = extra_context or {}
        extra_context["blogimages_review_url"] = reverse(
            f"{self.admin_site.name}:{self.opts.app_label}_{self.opts.model_name}_images", args=[object_id]
        )
        return super().change_view(request, object_id, form_url, extra_context)


# --- the library ---------------------------------------------------------------------------


@admin.register(ImageStyle)
class ImageStyleAdmin(admin.ModelAdmin):
    list_display = ["name", "template_excerpt", "lora_count", "updated_at"]
    search_fields = ["name", "prompt_template", "negative_prompt", "description"]
    list_filter = ["updated_at"]
    fields = ["name", "prompt_template", "negative_prompt", "loras", "description"]

    @admin.display(description=_("prompt template"))
    def template_excerpt(self, obj: ImageStyle) -> str:
        return Truncator(obj.prompt_template).chars(80)

    @admin.display(description=_("LoRAs"))
    def lora_count(self, obj: ImageStyle) -> int:
        return len(obj.loras or [])


class OrientationFilter(admin.SimpleListFilter):
    title = _("orientation")
    parameter_name = "orientation"

    def lookups(self, request, model_admin):
        return [("landscape", _("Landscape")), ("portrait", _("Portrait")), ("square", _("Square"))]

    def queryset(self, request, queryset):
        from django.db.models import F

        if self.value() == "landscape":
            return queryset.filter(width__gt=F("height"))
        if self.value() == "portrait":
            return queryset.filter(width__lt=F("height"))
        if self.value() == "square":
            return queryset.filter(width=F("height"))
        return queryset


@admin.register(ImageFormat)
class ImageFormatAdmin(admin.ModelAdmin):
    list_display = ["name", "width", "height", "aspect"]
    search_fields = ["name", "description"]
    list_filter = [OrientationFilter]

    @admin.display(description=_("aspect"))
    def aspect(self, obj: ImageFormat) -> str:
        # 1344x768 is listed as 16:9 (within 2 %), not as its exact 7:4.
        from .admin_views.common import aspect_label

        return aspect_label(obj.width, obj.height) or "—"


def problems_tag(obj: Any) -> str:
    """What the library row's own checks (``clean()``, blogimages.limits) refuse today: a
    row saved before they existed, or a provider since removed from BLOGIMAGES_PROVIDERS,
    is listed with a visible note instead of failing later."""
    try:
        obj.clean()
    except ValidationError as exc:
        items = format_html_join("", "<li>{}</li>", ((message,) for message in exc.messages))
        return format_html('<ul class="bi-warnings bi-problems">{}</ul>', items)
    return "—"


class LegacyParsedFilter(admin.SimpleListFilter):
    title = _("legacy text")
    parameter_name = "legacy"

    def lookups(self, request, model_admin):
        return [
            ("unparsed", _("Has legacy text, not parsed")),
            ("parsed", _("Parsed")),
            ("warnings", _("Parsed with warnings")),
            ("none", _("No legacy text")),
        ]

    def queryset(self, request, queryset):
        value = self.value()
        if value == "unparsed":
            return queryset.exclude(legacy_text="").filter(legacy_parsed_at__isnull=True)
        if value == "parsed":
            return queryset.filter(legacy_parsed_at__isnull=False)
        if value == "warnings":
            return queryset.filter(legacy_parsed_at__isnull=False).exclude(legacy_warnings=[])
        if value == "none":
            return queryset.filter(legacy_text="")
        return queryset


@admin.register(ImageSetting)
class ImageSettingAdmin(admin.ModelAdmin):
    change_form_template = "blogimages/admin/imagesetting_change_form.html"
    list_display = [
        "name", "provider", "model", "size", "steps", "sampler", "is_structured_flag", "legacy_state", "problems",
    ]  # fmt: skip
    list_filter = ["provider", "sampler", "scheduler", LegacyParsedFilter]
    search_fields = ["name", "model", "sampler", "negative_prompt", "legacy_text"]
    readonly_fields = ["legacy_text_display", "legacy_parsed_at", "legacy_warnings_display"]
    fieldsets = [
        (None, {"fields": ["name", "provider", "model"]}),
        (
            _("Structured settings"),
            {
                "fields": [
                    ("width", "height"),
                    "steps",
                    "guidance_scale",
                    ("sampler", "scheduler"),
                    "seed",
                    "negative_prompt",
                    "extra_settings",
                ],
                "classes": ["bi-structured"],
            },
        ),
        (
            _("Legacy text (read-only)"),
            {
                "fields": ["legacy_text_display", "legacy_parsed_at", "legacy_warnings_display"],
                "classes": ["bi-legacy"],
                "description": _(
                    "The older system's text, kept verbatim; blogimages_migrate_settings fills the "
                    "structured fields from it."
                ),
            },
        ),
    ]

    @admin.display(description=_("problems"))
    def problems(self, obj: ImageSetting) -> str:
        return problems_tag(obj)

    @admin.display(description=_("size"))
    def size(self, obj: ImageSetting) -> str:
        return f"{obj.width}x{obj.height}" if obj.width and obj.height else "—"

    @admin.display(description=_("structured"), boolean=True)
    def is_structured_flag(self, obj: ImageSetting) -> bool:
        return obj.is_structured

    @admin.display(description=_("legacy"))
    def legacy_state(self, obj: ImageSetting) -> str:
        if not obj.legacy_text:
            return "—"
        if obj.legacy_parsed_at is None:
            return gettext("not parsed")
        n = len(obj.legacy_warnings or [])
        if n:
            return ngettext("parsed, %(n)d warning", "parsed, %(n)d warnings", n) % {"n": n}
        return gettext("parsed")

    @admin.display(description=_("legacy text"))
    def legacy_text_display(self, obj: ImageSetting) -> str:
        if not obj.legacy_text:
            return "—"
        return format_html('<pre class="bi-legacy-text">{}</pre>', obj.legacy_text)

    @admin.display(description=_("legacy parse warnings"))
    def legacy_warnings_display(self, obj: ImageSetting) -> str:
        warnings = obj.legacy_warnings or []
        if not warnings:
            return "—"
        items = format_html_join("", "<li>{}</li>", ((w,) for w in warnings))
        return format_html('<ul class="bi-warnings">{}</ul>', items)


@admin.register(ImagePromptExample)
class ImagePromptExampleAdmin(admin.ModelAdmin):
    list_display = [
        "name", "prompt_excerpt", "style", "image_format", "setting", "provider", "model", "try_link", "problems",
    ]  # fmt: skip
    list_select_related = ["style", "image_format", "setting"]
    list_filter = ["style", "image_format", "setting", "provider"]
    search_fields = ["name", "prompt", "notes", "model"]
    readonly_fields = ["created_by"]

    @admin.display(description=_("problems"))
    def problems(self, obj: ImagePromptExample) -> str:
        return problems_tag(obj)

    @admin.display(description=_("prompt"))
    def prompt_excerpt(self, obj: ImagePromptExample) -> str:
        return Truncator(obj.prompt).chars(60) or gettext("(the section text)")

    @admin.display(description=_("playground"))
    def try_link(self, obj: ImagePromptExample) -> str:
        url = reverse(f"{self.admin_site.name}:blogimages_playground") + f"?example={obj.pk}"
        return format_html('<a href="{}">{}</a>', url, gettext("Try it"))

    def save_model(self, request, obj, form, change):
        if not change and obj.created_by_id is None:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)


@admin.register(PostImageSettings)
class PostImageSettingsAdmin(admin.ModelAdmin):
    list_display = ["__str__", "post_type", "post_id", "prompt_example", "updated_at"]
    list_select_related = ["post_type", "prompt_example"]
    list_filter = ["prompt_example", "post_type"]
    search_fields = ["prompt_example__name", "prompt_example__prompt", "=post_id"]

    def get_queryset(self, request):
        # One query per post type for the list's post titles, not one per row.
        return super().get_queryset(request).prefetch_related("post")


class ApprovedFilter(admin.SimpleListFilter):
    """Approved or not: whether a section review names the result as its approved image."""

    title = _("approved")
    parameter_name = "approved"

    def lookups(self, request, model_admin):
        return [("1", _("Yes")), ("0", _("No"))]

    def queryset(self, request, queryset):
        if self.value() in ("0", "1"):
            return queryset.filter(approved_for__isnull=self.value() == "0")
        return queryset


class DecisionFilter(admin.SimpleListFilter):
    """A candidate's own decision: approved (its section's image), rejected, or undecided."""

    title = _("decision")
    parameter_name = "decision"

    def lookups(self, request, model_admin):
        return [("approved", _("Approved")), ("rejected", _("Rejected")), ("undecided", _("Undecided"))]

    def queryset(self, request, queryset):
        if self.value() == "approved":
            return queryset.filter(approved_for__isnull=False)
        if self.value() == "rejected":
            return queryset.filter(rejected_at__isnull=False, approved_for__isnull=True)
        if self.value() == "undecided":
            return queryset.filter(rejected_at__isnull=True, approved_for__isnull=True)
        return queryset


# --- results ----------------------------------------------------------------------------------


RESULT_FIELDSETS = [
    (
        _("Image"),
        {
            "fields": [
                "preview",
                "status",
                "progress",
                "progress_message",
                "approved",
                "source",
                "review",
                "image",
                "thumbnail",
                ("width", "height"),
                "file_size",
                "content_type",
                "checksum",
                "renditions",
            ]
        },
    ),
    (
        _("What was asked for"),
        {
            "fields": [
                "prompt",
                "final_prompt",
                "negative_prompt",
                "provider",
                "provider_used",
                "model",
                "seed",
                "seed_pinned",
                "params",
                "prompt_example",
                "style",
                "image_format",
                "setting",
                "group",
                "requested_by",
            ]
        },
    ),
    (
        _("Job"),
        {
            "fields": [
                "error_message",
                "error_kind",
                "attempts",
                "job_id",
                "remote_id",
                "remote_server",
                "provider_meta",
                "queued_at",
                "started_at",
                "finished_at",
                "heartbeat_at",
                "created_at",
                "updated_at",
            ]
        },
    ),
]


@admin.register(ImageGenerationResult)
class ImageGenerationResultAdmin(ImagePermissionsMixin, admin.ModelAdmin):
    row_label = section_of
    change_list_template = "blogimages/admin/result_change_list.html"
    change_form_template = "blogimages/admin/result_change_form.html"
    list_display = [
        "id",
        "thumb",
        "status_badge",
        "decision",
        "progress_bar",
        "provider_label",
        "model",
        "seed",
        "section_label",
        "created_at",
    ]
    list_display_links = ["id", "thumb"]
    list_filter = [
        "status",
        DecisionFilter,
        "source",
        "provider",
        "provider_used",
        ApprovedFilter,
        "error_kind",
        "created_at",
    ]
    list_select_related = ["review", "review__post_type", "approved_for"]
    search_fields = ["=id", "prompt", "final_prompt", "model", "remote_id", "job_id", "error_message", "=group"]
    date_hierarchy = "created_at"
    fieldsets = RESULT_FIELDSETS
    list_per_page = 50
    actions = [
        "approve_images",
        "reject_images",
        "regenerate_images",
        "regenerate_images_same_seed",
        "cancel_jobs",
        "requeue_jobs",
        "comment_on_sections",
        "upload_replacements",
    ]

    def get_readonly_fields(self, request, obj=None):
        return ["preview", "approved"] + [f.name for f in self.model._meta.fields if f.name != "id"]

    def has_add_permission(self, request):
        # Results are made by generation and uploads, never typed in.
        return False

    def has_change_permission(self, request, obj=None):
        # A result is a snapshot: it changes only through the actions and the review page.
        return False

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.is_approved:
            return False  # reject it first: the public page shows it
        return super().has_delete_permission(request, obj)

    def get_actions(self, request, action_location=None):
        actions = super().get_actions(request, **location_kwargs(action_location))
        # Bulk delete would bypass "not while approved" and leave files behind.
        actions.pop("delete_selected", None)
        return actions

    def delete_model(self, request, obj):
        names = [obj.image.name, obj.thumbnail.name, obj.mask.name, *(obj.renditions or {}).values()]
        super().delete_model(request, obj)
        transaction.on_commit(lambda: [delete_quietly(name) for name in names if name])

    def get_urls(self):
        wrap = self.admin_site.admin_view
        urls = [
            path("playground/", wrap(self._view(admin_views.playground_view)), name="blogimages_playground"),
            path(
                "playground/status/",
                wrap(self._view(admin_views.playground_status_view)),
                name="blogimages_playground_status",
            ),
            path(
                "playground/models/",
                wrap(self._view(admin_views.playground_models_view)),
                name="blogimages_playground_models",
            ),
            path("status/", wrap(self._view(admin_views.status_view)), name="blogimages_status"),
            # The gallery and the image viewer's endpoints (admin_views.viewer).
            *admin_views.viewer.admin_urls(self),
        ]
        return urls + super().get_urls()

    def _view(self, view):
        def bound(request, *args, **kwargs):
            return view(self, request, *args, **kwargs)

        bound.__name__ = view.__name__
        return bound

    # --- columns -----------------------------------------------------------------------------

    @admin.display(description=_("image"))
    def thumb(self, obj: ImageGenerationResult) -> str:
        return thumbnail_tag(obj)

    @admin.display(description=_("preview"))
    def preview(self, obj: ImageGenerationResult) -> str:
        return thumbnail_tag(obj, width=320)

    @admin.display(description=_("status"), ordering="status")
    def status_badge(self, obj: ImageGenerationResult) -> str:
        badge = status_tag(obj.status, obj.get_status_display())
        if obj.is_approved:
            badge = format_html('{} <span class="bi-badge bi-badge--approved">{}</span>', badge, gettext("approved"))
        return badge

    @admin.display(description=_("decision"), ordering="rejected_at")
    def decision(self, obj: ImageGenerationResult) -> str:
        if obj.is_approved:
            return status_tag("approved", gettext("Approved"))
        if obj.rejected_at is not None:
            return format_html(
                '{} <span class="bi-muted" title="{}">{}</span>',
                status_tag("rejected", gettext("Rejected")),
                obj.rejection_comment,
                Truncator(obj.rejection_comment).chars(40),
            )
        return "—"

    def change_view(self, request, object_id, form_url="", extra_context=None):
        # The result's lineage (refine, variations, upscale): thumbnails back to the original.
        from .admin_views.common import lineage_context

        obj = self.get_object(request, object_id)
        extra_context = {**(extra_context or {}), **(lineage_context(self.admin_site, obj) if obj else {})}
        return super().change_view(request, object_id, form_url, extra_context)

    @admin.display(description=_("progress"), ordering="progress")
    def progress_bar(self, obj: ImageGenerationResult) -> str:
        if obj.status == ResultStatus.FAILED:
            return format_html(
                '<span class="bi-error" title="{}">{}</span>', obj.error_message, Truncator(obj.error_message).chars(60)
            )
        return format_html('<progress max="100" value="{}"></progress> {}%', obj.progress, obj.progress)

    @admin.display(description=_("approved"), boolean=True)
    def approved(self, obj: ImageGenerationResult) -> bool:
        return obj.is_approved

    @admin.display(description=_("provider"), ordering="provider")
    def provider_label(self, obj: ImageGenerationResult) -> str:
        if obj.provider_used and obj.provider_used != obj.provider:
            return f"{obj.provider} → {obj.provider_used}"
        return obj.provider

    @admin.display(description=_("section"), ordering="review__section_title")
    def section_label(self, obj: ImageGenerationResult) -> str:
        if obj.review_id is None:
            return gettext("playground")
        return format_html(
            '{} <span class="bi-muted">· {} {}</span>',
            section_label(obj.review),
            obj.review.post_type_id and obj.review.post_type.name,
            obj.review.post_id,
        )

    # --- actions -------------------------------------------------------------------------------

    @admin.action(description=_("Approve the selected images"), permissions=["review"])
    def approve_images(self, request, queryset):
        approved, skipped = services.approve_batch(queryset, user=request.user)
        report_outcomes(
            self,
            request,
            approved,
            [f"{section_of(result)}: {why}" for result, why in skipped],
            done=("Approved %(count)d image.", "Approved %(count)d images."),
        )

    @admin.action(description=_("Reject the selected images (with a comment)"), permissions=["review"])
    def reject_images(self, request, queryset):
        def apply(comment):
            self.each(
                request,
                queryset,
                lambda r: services.reject(result=r, user=request.user, comment=comment),
                REJECTED_IMAGES,
            )

        return reject_step(self, request, queryset, "reject_images", gettext("Reject images"), apply)

    def _regenerate(self, request, queryset, same_seed: bool):
        created = self.each(
            request, queryset, lambda r: services.regenerate(r, user=request.user, same_seed=same_seed), QUEUED_NEW
        )
        report_queue_errors(request, created)

    @admin.action(description=_("Regenerate with a new seed"), permissions=["generate"])
    def regenerate_images(self, request, queryset):
        self._regenerate(request, queryset, same_seed=False)

    @admin.action(description=_("Regenerate with the same seed"), permissions=["generate"])
    def regenerate_images_same_seed(self, request, queryset):
        self._regenerate(request, queryset, same_seed=True)

    @admin.action(description=_("Cancel queued or running jobs"), permissions=["generate"])
    def cancel_jobs(self, request, queryset):
        self.each(request, queryset, lambda r: services.cancel(r, user=request.user), CANCELLED_JOBS)

    @admin.action(description=_("Send failed or cancelled jobs to the queue again"), permissions=["generate"])
    def requeue_jobs(self, request, queryset):
        requeued = self.each(request, queryset, lambda r: services.requeue(r, user=request.user), REQUEUED_JOBS)
        report_queue_errors(request, requeued)

    @admin.action(description=_("Comment on the sections of the selected images"), permissions=["view"])
    def comment_on_sections(self, request, queryset):
        return comment_on(
            self,
            request,
            queryset,
            _distinct_sections(queryset),
            intro=gettext("The comment lands in the history of each selected image's section."),
        )

    @admin.action(description=_("Upload replacements for the sections of the selected images"), permissions=["upload"])
    def upload_replacements(self, request, queryset):
        sections = _distinct_sections(queryset)
        if not sections:
            self.message_user(request, gettext("Playground images have no section to upload to."), messages.WARNING)
            return None
        return upload_step(self, request, queryset, sections, action="upload_replacements")


def _distinct_sections(queryset) -> list[Any]:
    sections: dict[int, Any] = {}
    for result in queryset.filter(review__isnull=False).select_related("review"):
        sections.setdefault(result.review_id, result.review)
    return list(sections.values())


# --- section reviews ----------------------------------------------------------------------------


class ReviewEventInline(admin.TabularInline):
    model = ReviewEvent
    extra = 0
    can_delete = False
    fields = ["created_at", "action", "user", "result", "comment"]
    readonly_fields = fields
    ordering = ["-created_at", "-id"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("user", "result")

    def has_add_permission(self, request, obj=None):
        return False  # history is written by the services, never typed in

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(SectionReview)
class SectionReviewAdmin(ImagePermissionsMixin, admin.ModelAdmin):
    row_label = section_label
    change_form_template = "blogimages/admin/sectionreview_change_form.html"
    list_display = [
        "section_label",
        "post_link",
        "status_badge",
        "approved_thumb",
        "reviewed_by",
        "reviewed_at",
        "comment_excerpt",
        "review_link",
    ]
    list_select_related = ["post_type", "approved_result", "reviewed_by"]
    list_filter = ["status", "reviewed_at", "prompt_example"]
    # What services write is shown; what an editor may set (the section's prompt) is a form field.
    readonly_fields = [
        "section_title",
        "section_key",
        "post_link",
        "status",
        "approved_preview",
        "reviewed_by",
        "reviewed_at",
        "comment",
    ]
    fields = [*readonly_fields, "prompt_example", "prompt_override", "alt_text"]
    inlines = [ReviewEventInline]
    actions = [
        "generate_for_sections",
        "approve_newest",
        "reject_sections",
        "regenerate_newest",
        "cancel_section_jobs",
        "comment_on_sections",
        "upload_replacements",
    ]

    search_fields = ["section_title", "comment", "prompt_override", "alt_text", "=post_id", "=section_key"]

    def get_queryset(self, request):
        # One query per post type for the list's post titles, not one per row.
        return super().get_queryset(request).prefetch_related("post")

    def has_add_permission(self, request):
        return False  # a review row is made the first time a section gets an image

    def has_delete_permission(self, request, obj=None):
        return False  # it would take the section's history with it

    @admin.display(description=_("section"), ordering="section_title")
    def section_label(self, obj: SectionReview) -> str:
        return section_label(obj)

    @admin.display(description=_("post"))
    def post_link(self, obj: SectionReview) -> str:
        return _post_label(obj)

    @admin.display(description=_("decision"), ordering="status")
    def status_badge(self, obj: SectionReview) -> str:
        return status_tag(obj.status, obj.get_status_display())

    @admin.display(description=_("approved image"))
    def approved_thumb(self, obj: SectionReview) -> str:
        return thumbnail_tag(obj.approved_result)

    @admin.display(description=_("approved image"))
    def approved_preview(self, obj: SectionReview) -> str:
        return thumbnail_tag(obj.approved_result, width=320)

    @admin.display(description=_("latest comment"))
    def comment_excerpt(self, obj: SectionReview) -> str:
        return Truncator(obj.comment).chars(60)

    @admin.display(description=_("review"))
    def review_link(self, obj: SectionReview) -> str:
        url = _post_review_url(self.admin_site, obj)
        return format_html('<a href="{}#bi-section-{}">{}</a>', url, obj.section_key, gettext("Open")) if url else ""

    def change_view(self, request, object_id, form_url="", extra_context=None):
        obj = self.get_object(request, object_id)
        extra_context = extra_context or {}
        if obj is not None:
            url = _post_review_url(self.admin_site, obj)
            extra_context["blogimages_review_url"] = f"{url}#bi-section-{obj.section_key}" if url else ""
        return super().change_view(request, object_id, form_url, extra_context)

    def response_change(self, request, obj):
        """After saving the prompt or alt text, back to where the editor came from: the review
        page at this section (``?next=``, checked to be this site), not the list of reviews."""
        from .admin_views.common import back_url

        response = super().response_change(request, obj)
        if "_continue" in request.POST or "_addanother" in request.POST or "_saveasnew" in request.POST:
            return response
        url = _post_review_url(self.admin_site, obj)
        target = back_url(request, f"{url}#bi-section-{obj.section_key}" if url else "")
        return HttpResponseRedirect(target) if target else response

    # --- actions -------------------------------------------------------------------------------

    def _sections(self, queryset) -> list[Any]:
        return list(queryset.select_related("post_type"))

    @admin.action(description=_("Generate an image for the selected sections"), permissions=["generate"])
    def generate_for_sections(self, request, queryset):
        def one(review):
            section = services.section_of(review)
            if section is None:
                raise ValidationError(gettext("it was removed from its post"))
            return services.generate_for_section(section, user=request.user)

        created = []
        for batch in run_each(self, request, self._sections(queryset), one, done=QUEUED_SECTIONS, label=section_label):
            created += batch
        report_queue_errors(request, created)

    @admin.action(description=_("Approve the newest finished image of each section"), permissions=["review"])
    def approve_newest(self, request, queryset):
        self.each(request, queryset, lambda r: services.approve_newest(r, user=request.user), APPROVED_SECTIONS)

    @admin.action(description=_("Reject the selected sections' images (with a comment)"), permissions=["review"])
    def reject_sections(self, request, queryset):
        sections = self._sections(queryset)

        def apply(comment):
            self.each(
                request, sections, lambda s: services.reject(s, user=request.user, comment=comment), REJECTED_SECTIONS
            )

        return reject_step(self, request, queryset, "reject_sections", gettext("Reject section images"), apply)

    @admin.action(description=_("Regenerate the newest image of each section (new seed)"), permissions=["generate"])
    def regenerate_newest(self, request, queryset):
        created = self.each(request, queryset, lambda r: services.regenerate_newest(r, user=request.user), QUEUED_NEW)
        report_queue_errors(request, created)

    @admin.action(description=_("Cancel the sections' queued or running jobs"), permissions=["generate"])
    def cancel_section_jobs(self, request, queryset):
        active = ImageGenerationResult.objects.active().filter(review__in=queryset)
        cancel = lambda r: services.cancel(r, user=request.user)  # noqa: E731
        cancelled = run_each(self, request, active, cancel, done=CANCELLED_JOBS, label=section_of)
        if not cancelled and not active.exists():
            self.message_user(request, gettext("Nothing was queued or running."), messages.INFO)

    @admin.action(description=_("Comment on the selected sections"), permissions=["view"])
    def comment_on_sections(self, request, queryset):
        return comment_on(
            self,
            request,
            queryset,
            self._sections(queryset),
            intro=gettext("The comment lands in each section's history."),
        )

    @admin.action(description=_("Upload a replacement image"), permissions=["upload"])
    def upload_replacements(self, request, queryset):
        return upload_step(self, request, queryset, self._sections(queryset), action="upload_replacements")


def _post_review_url(site, review: SectionReview) -> str:
    """The review page of the review's post in this admin site, if its ModelAdmin has one."""
    from django.urls import NoReverseMatch

    model = review.post_type.model_class()
    if model is None:
        return ""
    opts = model._meta
    try:
        return reverse(f"{site.name}:{opts.app_label}_{opts.model_name}_images", args=[review.post_id])
    except NoReverseMatch:
        return ""  # the post's ModelAdmin does not use PostImagesAdminMixin (e.g. a Wagtail page)


def _post_label(review: SectionReview) -> str:
    post = review.post
    if post is None:
        return gettext("%(type)s #%(id)s (deleted)") % {"type": review.post_type.name, "id": review.post_id}
    return str(post)
