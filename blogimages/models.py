"""blogimages' models: the editors' library, generation results and section reviews.

The host's own models are never edited, and no foreign key points at them: a post is
referenced by content type and primary key, a section by the key its host adapter gives
it (:mod:`blogimages.hosts`). So no blogimages migration depends on a host app, and a
section deleted from its post leaves its history and images here until an operator
cleans them up.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .exceptions import ConcurrentTransition, InvalidTransition
from .storage import get_storage


class PostReference(models.Model):
    """A reference to a host post by content type and primary key (text, so any key type fits)."""

    post_type = models.ForeignKey(ContentType, models.PROTECT, related_name="+", verbose_name=_("post type"))
    post_id = models.CharField(_("post id"), max_length=64, db_index=True)
    post = GenericForeignKey("post_type", "post_id")

    class Meta:
        abstract = True


class TimeStamped(models.Model):
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        abstract = True


# --- the editors' library ------------------------------------------------------------


class ImageStyle(TimeStamped):
    """A reusable look: a prompt template, a negative prompt and an optional LoRA stack."""

    name = models.CharField(_("name"), max_length=120, unique=True)
    prompt_template = models.TextField(
        _("prompt template"),
        default="{prompt}",
        help_text=_("Must contain {prompt}, e.g. '{prompt}, watercolour, soft light'."),
    )
    negative_prompt = models.TextField(_("negative prompt"), blank=True)
    loras = models.JSONField(
        _("LoRA stack"),
        default=list,
        blank=True,
        help_text=_('A list such as [{"name": "watercolor.safetensors", "strength": 0.8}].'),
    )
    description = models.TextField(_("description"), blank=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("image style")

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        if "{prompt}" not in self.prompt_template:
            raise ValidationError({"prompt_template": _("The template must contain {prompt}.")})
        from .prompts import validate_lora_stack

        validate_lora_stack(self.loras)

    def apply(self, prompt: str) -> str:
        # Section text usually ends a sentence: where the template goes on with its own
        # punctuation ("{prompt}, watercolour"), drop the prompt's full stop so the
        # result does not read "hillside., watercolour".
        ended = prompt.rstrip().rstrip(".;,:")
        return re.sub(
            r"\{prompt\}(\s*[,;.:])?",
            lambda match: (ended + match.group(1)) if match.group(1) else prompt,
            self.prompt_template,
        )


class ImageFormat(TimeStamped):
    """A size preset, such as 'Blog hero 16:9' at 1344x768."""

    name = models.CharField(_("name"), max_length=120, unique=True)
    width = models.PositiveIntegerField(_("width"))
    height = models.PositiveIntegerField(_("height"))
    description = models.TextField(_("description"), blank=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("image format")

    def __str__(self) -> str:
        return f"{self.name} ({self.width}x{self.height})"

    def clean(self) -> None:
        from .limits import check_numbers

        check_numbers({"width": self.width, "height": self.height}, saved=True)


class ImageSetting(TimeStamped):
    """Generation parameters. ``legacy_text`` keeps an older system's freeform text forever."""

    name = models.CharField(_("name"), max_length=120, unique=True)
    provider = models.CharField(
        _("provider"), max_length=64, blank=True, help_text=_("A provider alias; blank for the default.")
    )
    model = models.CharField(_("model"), max_length=200, blank=True)
    width = models.PositiveIntegerField(_("width"), null=True, blank=True)
    height = models.PositiveIntegerField(_("height"), null=True, blank=True)
    steps = models.PositiveIntegerField(_("steps"), null=True, blank=True)
    guidance_scale = models.FloatField(_("guidance scale"), null=True, blank=True)
    sampler = models.CharField(_("sampler"), max_length=64, blank=True)
    scheduler = models.CharField(_("scheduler"), max_length=64, blank=True)
    seed = models.BigIntegerField(_("seed"), null=True, blank=True, help_text=_("Blank for a random seed."))
    negative_prompt = models.TextField(_("negative prompt"), blank=True)
    extra_settings = models.JSONField(_("extra settings"), default=dict, blank=True)
    legacy_text = models.TextField(
        _("legacy text"), blank=True, help_text=_("The verbatim freeform text of the older system.")
    )
    legacy_parsed_at = models.DateTimeField(
        _("legacy text parsed"),
        null=True,
        blank=True,
        editable=False,
        help_text=_("When blogimages_migrate_settings last filled the fields from the legacy text."),
    )
    legacy_warnings = models.JSONField(_("legacy parse warnings"), default=list, blank=True, editable=False)

    STRUCTURED_FIELDS = (
        "model",
        "width",
        "height",
        "steps",
        "guidance_scale",
        "sampler",
        "scheduler",
        "seed",
        "negative_prompt",
    )

    class Meta:
        ordering = ["name"]
        verbose_name = _("image setting")

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        from . import limits

        limits.merge(
            lambda: limits.check_numbers({name: getattr(self, name) for name in limits.NUMBERS}, saved=True),
            lambda: limits.check_extra_settings(self.extra_settings),
            lambda: limits.check_provider(self.provider, owner=f"Image setting {self.name!r}"),
        )

    @property
    def extra_settings_problem(self) -> str | None:
        """Why the stored ``extra_settings`` cannot be used (a row saved before it was checked), or None."""
        from .limits import extra_settings_problem

        return extra_settings_problem(self.extra_settings)

    @property
    def is_structured(self) -> bool:
        extra = self.extra_settings if isinstance(self.extra_settings, dict) else {}
        return any(getattr(self, f) not in (None, "") for f in self.STRUCTURED_FIELDS) or bool(
            {k: v for k, v in extra.items() if k != "unparsed"}
        )


class ImagePromptExample(TimeStamped):
    """A reusable prompt + style + format + setting + provider combination."""

    name = models.CharField(_("name"), max_length=160, unique=True)
    prompt = models.TextField(
        _("prompt"), blank=True, help_text=_("Blank to use the section's own text as the prompt.")
    )
    style = models.ForeignKey(ImageStyle, models.SET_NULL, null=True, blank=True, verbose_name=_("style"))
    image_format = models.ForeignKey(ImageFormat, models.SET_NULL, null=True, blank=True, verbose_name=_("format"))
    setting = models.ForeignKey(ImageSetting, models.SET_NULL, null=True, blank=True, verbose_name=_("setting"))
    provider = models.CharField(_("provider"), max_length=64, blank=True)
    model = models.CharField(_("model"), max_length=200, blank=True)
    notes = models.TextField(_("notes"), blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+", editable=False
    )

    class Meta:
        ordering = ["name"]
        verbose_name = _("prompt example")

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        from . import limits

        limits.merge(
            lambda: limits.check_prompt(self.prompt),
            lambda: limits.check_provider(self.provider, owner=f"Prompt example {self.name!r}"),
        )


class PostImageSettingsQuerySet(models.QuerySet):
    def for_post(self, post):
        return self.filter(post_type=ContentType.objects.get_for_model(post), post_id=str(post.pk))


class PostImageSettings(TimeStamped, PostReference):
    """Per post: the prompt example its sections use unless a section names its own."""

    prompt_example = models.ForeignKey(ImagePromptExample, models.SET_NULL, null=True, blank=True)

    objects = PostImageSettingsQuerySet.as_manager()

    class Meta:
        verbose_name = _("post image settings")
        verbose_name_plural = _("post image settings")
        constraints = [
            models.UniqueConstraint(fields=["post_type", "post_id"], name="blogimages_one_settings_per_post"),
        ]

    def __str__(self) -> str:
        return f"Image settings for {self.post}"


# --- generation results --------------------------------------------------------------


class ResultStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Running")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")
    CANCELLED = "cancelled", _("Cancelled")


@dataclass(frozen=True)
class Transition:
    """A named move between result statuses, with the statuses it may start from."""

    name: str
    sources: frozenset[str]
    target: str
    #: What an editor reads when the move is refused.
    refusal: str = ""


#: Every move a result can make, by name. Each caller names the move it means, so one
#: that is allowed for one actor (a sweep of a stale running result) is not accidentally
#: allowed for another (an editor's re-queue).
TRANSITIONS: dict[str, Transition] = {
    t.name: t
    for t in (
        Transition("start", frozenset({ResultStatus.QUEUED}), ResultStatus.RUNNING),  # a worker takes it
        Transition("succeed", frozenset({ResultStatus.RUNNING}), ResultStatus.SUCCEEDED),
        Transition("fail", frozenset({ResultStatus.QUEUED, ResultStatus.RUNNING}), ResultStatus.FAILED),
        Transition(
            "cancel",
            frozenset({ResultStatus.QUEUED, ResultStatus.RUNNING}),
            ResultStatus.CANCELLED,
            "only queued or running results can be cancelled",
        ),
        # An editor (or an operator) sends a failed or cancelled result again.
        Transition(
            "requeue",
            frozenset({ResultStatus.FAILED, ResultStatus.CANCELLED}),
            ResultStatus.QUEUED,
            "only failed or cancelled results can be re-queued; a running one is re-queued by itself "
            "if its worker stops reporting",
        ),
        # A running result whose worker stopped reporting goes back to the queue.
        Transition("sweep", frozenset({ResultStatus.RUNNING}), ResultStatus.QUEUED),
        # A transient provider error: back to the queue, its next attempt scheduled.
        Transition("retry", frozenset({ResultStatus.RUNNING}), ResultStatus.QUEUED),
    )
}

#: Which status may follow which (derived from the named moves).
RESULT_TRANSITIONS: dict[str, set[str]] = {
    status: {t.target for t in TRANSITIONS.values() if status in t.sources} for status in ResultStatus.values
}

ACTIVE_STATUSES = (ResultStatus.QUEUED, ResultStatus.RUNNING)


class ResultSource(models.TextChoices):
    GENERATED = "generated", _("Generated")
    UPLOADED = "uploaded", _("Uploaded")


class Operation(models.TextChoices):
    """How a result was made: from a prompt, or from another result (its ``parent``)."""

    GENERATE = "generate", _("Generated from a prompt")
    REFINE = "refine", _("Refined")
    VARIATIONS = "variations", _("Variation")
    UPSCALE = "upscale", _("Upscaled")
    REFERENCE = "reference", _("New prompt with a reference")


class ErrorKind(models.TextChoices):
    NONE = "", _("None")
    TRANSIENT = "transient", _("Transient")
    PERMANENT = "permanent", _("Permanent")


class ImageGenerationResultQuerySet(models.QuerySet):
    def active(self):
        return self.filter(status__in=ACTIVE_STATUSES)

    def succeeded(self):
        return self.filter(status=ResultStatus.SUCCEEDED)

    def for_post(self, post):
        return self.filter(review__post_type=ContentType.objects.get_for_model(post), review__post_id=str(post.pk))

    def stale(self, older_than):
        """Running results whose worker has not reported since ``older_than``."""
        return self.filter(status=ResultStatus.RUNNING, heartbeat_at__lt=older_than)

    def approved(self):
        return self.filter(approved_for__isnull=False)


class ImageGenerationResult(TimeStamped):
    """One attempt to make one image, with a snapshot of everything that was sent."""

    group = models.UUIDField(
        _("comparison group"),
        default=uuid.uuid4,
        db_index=True,
        help_text=_("Results requested together (several providers for one prompt) share a group."),
    )
    # The section this image was made for; none for the playground. PROTECT: a review is
    # only deleted by the cleanup command, which deletes its results' files first.
    review = models.ForeignKey(
        "SectionReview", models.PROTECT, null=True, blank=True, related_name="results", verbose_name=_("section")
    )
    source = models.CharField(_("source"), max_length=16, choices=ResultSource.choices, default=ResultSource.GENERATED)
    # Lineage (refine, variations, upscale, reference): the result this one was made from.
    # SET_NULL: deleting an ancestor keeps its descendants (they have their own files).
    parent = models.ForeignKey(
        "self", models.SET_NULL, null=True, blank=True, related_name="children", verbose_name=_("made from")
    )
    operation = models.CharField(_("operation"), max_length=16, choices=Operation.choices, default=Operation.GENERATE)
    mask = models.FileField(
        _("mask"),
        storage=get_storage,
        max_length=300,
        blank=True,
        help_text=_("The painted area a refine was limited to (white: change), as sent."),
    )

    # What was asked for.
    prompt_example = models.ForeignKey(ImagePromptExample, models.SET_NULL, null=True, blank=True, related_name="+")
    style = models.ForeignKey(ImageStyle, models.SET_NULL, null=True, blank=True, related_name="+")
    image_format = models.ForeignKey(ImageFormat, models.SET_NULL, null=True, blank=True, related_name="+")
    setting = models.ForeignKey(ImageSetting, models.SET_NULL, null=True, blank=True, related_name="+")
    prompt = models.TextField(_("prompt"), help_text=_("The editor's prompt before the style template."))
    final_prompt = models.TextField(_("final prompt"), help_text=_("The prompt sent, after the style template."))
    negative_prompt = models.TextField(_("negative prompt"), blank=True)
    provider = models.CharField(_("provider"), max_length=64, help_text=_("The provider alias asked for."))
    provider_used = models.CharField(
        _("provider used"), max_length=64, blank=True, help_text=_("The provider that served the image.")
    )
    model = models.CharField(_("model"), max_length=200, blank=True)
    params = models.JSONField(_("parameters"), default=dict, help_text=_("The resolved settings that were sent."))
    seed_pinned = models.BooleanField(_("seed pinned"), default=False)
    seed = models.BigIntegerField(_("seed used"), null=True, blank=True)

    # Where it is.
    status = models.CharField(
        _("status"), max_length=16, choices=ResultStatus.choices, default=ResultStatus.QUEUED, db_index=True
    )
    progress = models.PositiveSmallIntegerField(_("progress %"), default=0)
    progress_message = models.CharField(_("progress"), max_length=200, blank=True)
    error_message = models.TextField(_("error"), blank=True)
    error_kind = models.CharField(_("error kind"), max_length=16, choices=ErrorKind.choices, blank=True, default="")
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    job_id = models.CharField(_("job id"), max_length=100, blank=True)
    enqueue_count = models.PositiveIntegerField(default=0, editable=False)
    remote_id = models.CharField(
        _("remote id"), max_length=200, blank=True, help_text=_("The provider's own id, e.g. a ComfyUI prompt id.")
    )
    remote_server = models.CharField(_("remote server"), max_length=300, blank=True)
    provider_meta = models.JSONField(
        _("provider details"),
        default=dict,
        blank=True,
        help_text=_("What the provider returned besides the image: revised prompt, usage, adjustments."),
    )
    queued_at = models.DateTimeField(_("queued"), null=True, blank=True)
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    heartbeat_at = models.DateTimeField(_("last heartbeat"), null=True, blank=True)

    # The stored image.
    image = models.FileField(_("image"), storage=get_storage, max_length=300, blank=True)
    thumbnail = models.FileField(_("thumbnail"), storage=get_storage, max_length=300, blank=True)
    width = models.PositiveIntegerField(_("width"), null=True, blank=True)
    height = models.PositiveIntegerField(_("height"), null=True, blank=True)
    file_size = models.PositiveIntegerField(_("bytes"), null=True, blank=True)
    content_type = models.CharField(_("content type"), max_length=64, blank=True)
    checksum = models.CharField(_("SHA-256"), max_length=64, blank=True)
    renditions = models.JSONField(
        _("renditions"),
        default=dict,
        blank=True,
        editable=False,
        help_text=_("Resized copies for srcset: {width: storage name}."),
    )
    # The readable name the public page serves once the image is approved
    # (blogimages.naming). The slug is the arbiter: unique in the database, so two
    # sections with the same titles published at once cannot both take it (NULL: not published).
    published_slug = models.SlugField(
        _("published slug"), max_length=120, null=True, blank=True, unique=True, editable=False
    )
    published_image = models.CharField(
        _("published image"),
        max_length=300,
        blank=True,
        editable=False,
        help_text=_("The readable copy public pages serve, e.g. …/published/post-section.webp."),
    )

    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+")
    # A candidate's own decision. Approval is stored once, on SectionReview.approved_result;
    # a rejection belongs to the candidate (approving it later clears it).
    rejected_at = models.DateTimeField(_("rejected"), null=True, blank=True, editable=False)
    rejected_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+", editable=False
    )
    rejection_comment = models.TextField(_("why it was rejected"), blank=True, editable=False)

    # What it costs (blogimages.costs): estimated from the price table when queued, corrected
    # from the usage the provider reports when it finishes; NULL where no price is known.
    cost_estimate = models.DecimalField(
        _("estimated cost"), max_digits=12, decimal_places=6, null=True, blank=True, editable=False
    )
    cost_currency = models.CharField(_("currency"), max_length=3, default="USD", editable=False)
    charged_at = models.DateTimeField(
        _("charged"),
        null=True,
        blank=True,
        db_index=True,
        editable=False,
        help_text=_("When it was last sent to the queue: the month whose budget it counts against."),
    )

    objects = ImageGenerationResultQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("generation result")
        permissions = [
            ("generate_images", "Can generate images"),
            ("review_images", "Can approve and reject images"),
            ("upload_images", "Can upload images"),
        ]
        constraints = [
            # The database, not the admin, holds "one approved image per section":
            # two editors approving at once cannot both win.
            models.CheckConstraint(condition=Q(progress__lte=100), name="blogimages_progress_at_most_100"),
        ]
        indexes = [
            models.Index(fields=["review", "status"], name="blogimages_review_status_idx"),
            models.Index(fields=["status", "heartbeat_at"], name="blogimages__status_56dde6_idx"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.provider_used or self.provider} ({self.get_status_display()})"

    @property
    def is_approved(self) -> bool:
        """Whether this is its section's approved image. Approval is stored once, as
        ``SectionReview.approved_result`` (a one-to-one field: the database holds "one
        approved image per section"); lists load it with ``select_related("approved_for")``."""
        if self.review_id is None:
            return False
        try:
            return self.approved_for is not None
        except SectionReview.DoesNotExist:
            return False

    @property
    def ai_generated(self) -> bool:
        """Whether a model made this image (an upload was not): its files carry the AI mark
        (``blogimages.provenance``) and templates may label it."""
        return self.source == ResultSource.GENERATED

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    def move(self, name: str, **fields: Any) -> None:
        """Make the named move (:data:`TRANSITIONS`) if this result may, from the status this
        instance holds; :class:`InvalidTransition` says why not."""
        move = TRANSITIONS[name]
        if self.status not in move.sources:
            reason = move.refusal or f"it cannot become {ResultStatus(move.target).label.lower()}"
            raise InvalidTransition(f"Result #{self.pk} is {self.get_status_display().lower()}; {reason}.")
        self._update_status(move.target, fields)

    def transition(self, to: str, **fields: Any) -> None:
        """Move to ``to`` by any allowed move (tests and fixtures; code names its move with :meth:`move`)."""
        if to not in RESULT_TRANSITIONS[self.status]:
            raise InvalidTransition(
                f"A {self.get_status_display().lower()} result cannot become {ResultStatus(to).label.lower()}."
            )
        self._update_status(to, fields)

    def _update_status(self, to: str, fields: dict[str, Any]) -> None:
        """A conditional UPDATE from the status this instance holds, so a double click and a
        worker cannot both win; the loser gets :class:`ConcurrentTransition`."""
        current = self.status
        fields["status"] = to
        fields["updated_at"] = timezone.now()
        updated = type(self).objects.filter(pk=self.pk, status=current).update(**fields)
        if not updated:
            raise ConcurrentTransition(f"Result #{self.pk} is no longer {current}.")
        for name, value in fields.items():
            setattr(self, name, value)

    def next_job_id(self) -> str:
        return f"blogimages-result-{self.pk}-{self.enqueue_count + 1}"


# --- section reviews -----------------------------------------------------------------


class ReviewStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    APPROVED = "approved", _("Approved")
    REJECTED = "rejected", _("Rejected")


class SectionReviewQuerySet(models.QuerySet):
    def for_post(self, post):
        return self.filter(post_type=ContentType.objects.get_for_model(post), post_id=str(post.pk))

    def pending(self):
        return self.filter(status=ReviewStatus.PENDING)

    def with_approved_image(self):
        return self.filter(status=ReviewStatus.APPROVED, approved_result__isnull=False).select_related(
            "approved_result"
        )


class SectionReview(TimeStamped, PostReference):
    """The image decision for one section, and what the section's prompt is.

    The section is ``(post, section_key)``; its title is kept as last seen, so the review
    page can still name a section that was removed from its post.
    """

    section_key = models.CharField(_("section key"), max_length=128)
    section_title = models.CharField(_("section"), max_length=300, blank=True)
    status = models.CharField(
        _("status"), max_length=16, choices=ReviewStatus.choices, default=ReviewStatus.PENDING, db_index=True
    )
    approved_result = models.OneToOneField(
        ImageGenerationResult, models.SET_NULL, null=True, blank=True, related_name="approved_for"
    )
    reviewed_by = models.ForeignKey(settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+")
    reviewed_at = models.DateTimeField(_("reviewed"), null=True, blank=True)
    comment = models.TextField(_("latest comment"), blank=True)
    prompt_example = models.ForeignKey(
        ImagePromptExample,
        models.SET_NULL,
        null=True,
        blank=True,
        help_text=_("Overrides the post's prompt example for this section."),
    )
    prompt_override = models.TextField(
        _("prompt override"), blank=True, help_text=_("Used instead of the section text as the prompt.")
    )
    alt_text = models.CharField(_("alt text"), max_length=300, blank=True, help_text=_("Blank to use the prompt."))

    objects = SectionReviewQuerySet.as_manager()

    class Meta:
        verbose_name = _("section review")
        constraints = [
            models.UniqueConstraint(
                fields=["post_type", "post_id", "section_key"], name="blogimages_one_review_per_section"
            ),
            models.CheckConstraint(
                condition=~Q(status="approved") | Q(approved_result__isnull=False),
                name="blogimages_approved_review_has_image",
            ),
        ]

    def __str__(self) -> str:
        return f"Review of {self.section_title or self.section_key}"


class ReviewAction(models.TextChoices):
    GENERATED = "generated", _("Generated")
    REGENERATED = "regenerated", _("Regenerated")
    APPROVED = "approved", _("Approved")
    REJECTED = "rejected", _("Rejected")
    UPLOADED = "uploaded", _("Uploaded")
    CANCELLED = "cancelled", _("Cancelled")
    COMMENTED = "commented", _("Commented")


class ReviewEvent(models.Model):
    """Append-only history of a section's review: who did what, when, and why."""

    review = models.ForeignKey(SectionReview, models.CASCADE, related_name="events")
    action = models.CharField(_("action"), max_length=16, choices=ReviewAction.choices)
    result = models.ForeignKey(ImageGenerationResult, models.SET_NULL, null=True, blank=True, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+")
    comment = models.TextField(_("comment"), blank=True)
    created_at = models.DateTimeField(_("when"), default=timezone.now, editable=False)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name = _("review event")

    def __str__(self) -> str:
        return f"{self.get_action_display()} by {self.user or 'system'}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            raise InvalidTransition("Review history is append-only; events cannot be edited.")
        super().save(*args, **kwargs)


class RequestKey(models.Model):
    """An idempotency key that a generate or regenerate request carried, and what it made.

    The review page's forms carry a fresh key per render, API clients send an
    ``Idempotency-Key`` header. The unique constraint makes a second request with the same
    key (a double click, a client retrying after a lost answer) find the first one's
    results instead of queuing again; on PostgreSQL its insert waits until the first
    request's transaction ends, so the two cannot both pass. Rows older than
    ``services.REQUEST_KEY_WINDOW`` are deleted as new ones arrive.
    """

    key = models.CharField(_("key"), max_length=64)
    operation = models.CharField(_("operation"), max_length=200)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, models.CASCADE, null=True, blank=True, related_name="+")
    result_ids = models.JSONField(_("results"), default=list, blank=True)
    created_at = models.DateTimeField(_("when"), default=timezone.now, db_index=True, editable=False)

    class Meta:
        verbose_name = _("request key")
        constraints = [
            models.UniqueConstraint(fields=["user", "key", "operation"], name="blogimages_one_request_per_key"),
        ]

    def __str__(self) -> str:
        return f"{self.operation} {self.key}"


class BudgetLock(models.Model):
    """One row per budget (``site`` or ``user:<pk>``) and month: the lock that budget checks
    take in turn (``select_for_update``), so two requests cannot both spend the last of it.

    Spend itself is not stored here: it is summed from the results (blogimages.costs), so
    it never drifts from them. Rows are created on first use, under the unique constraint.
    """

    scope = models.CharField(_("budget"), max_length=64)
    month = models.DateField(_("month"))

    class Meta:
        verbose_name = _("budget lock")
        constraints = [models.UniqueConstraint(fields=["scope", "month"], name="blogimages_one_budget_lock_per_month")]

    def __str__(self) -> str:
        return f"{self.scope} {self.month:%Y-%m}"
