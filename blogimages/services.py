"""The service layer: every rule lives here once.

Admin actions, views, the JSON API, management commands and jobs all call these
functions. Each one runs in a transaction; jobs are enqueued only after it commits, and
a result row always exists before its job, so nothing is lost if Redis is down.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import logging
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from . import costs, provenance
from .chunks import keyset
from .conf import app_settings
from .exceptions import (
    BlogImagesError,
    ConcurrentTransition,
    InvalidTransition,
    PermanentProviderError,
    QueueUnavailable,
)
from .hosts import Section, get_host, post_reference
from .images import analyse, clean_upload, prepare_output
from .limits import PROMPT_MAX, check_prompt, check_provider
from .models import (
    ACTIVE_STATUSES,
    TRANSITIONS,
    ErrorKind,
    ImageGenerationResult,
    PostImageSettings,
    RequestKey,
    ResultSource,
    ResultStatus,
    ReviewAction,
    ReviewEvent,
    ReviewStatus,
    SectionReview,
)
from .prompts import request_from_snapshot, resolve_params
from .providers import UnknownProvider, providers
from .storage import delete_quietly, rendition_names, stored_image

if TYPE_CHECKING:  # annotations only
    from .models import ImageFormat, ImagePromptExample, ImageSetting, ImageStyle

logger = logging.getLogger("blogimages.services")


class NothingToGenerate(BlogImagesError):
    """A section has no prompt: no section text, no override and no prompt example prompt."""


# --- posts, sections and permissions -------------------------------------------------------

#: blogimages' own permission behind each action (none to look); the host adapter is asked as well.
ACTION_PERMISSIONS = {
    "view": None,
    "generate": "blogimages.generate_images",
    "review": "blogimages.review_images",
    "upload": "blogimages.upload_images",
}


def can(user, action: str, post: Any = None) -> bool:
    """Whether ``user`` may ``action`` ("view", "generate", "review", "upload") the images
    of ``post`` (or any post's, without one): blogimages' permission and the host's say."""
    permission = ACTION_PERMISSIONS[action]
    if user is None or not user.is_active or (permission and not user.has_perm(permission)):
        return False
    return post is None or get_host().has_permission(user, post, action)


def require(user, action: str, post: Any = None) -> None:
    if not can(user, action, post):
        raise PermissionDenied(
            f"You may not {action} images for “{post}”." if post is not None else f"You may not {action} images."
        )


#: What the review functions take: a section, or its review (a section removed from its
#: post is only known by its review), or the host's own object for a section (a row).
ReviewTarget = Section | SectionReview | Any


def as_section(obj: Any) -> Section:
    """``obj`` as a :class:`Section`: itself, or what the host adapter makes of a host
    object (the default adapter knows its section rows)."""
    if isinstance(obj, Section):
        return obj
    section = get_host().section_for(obj)
    if section is None:
        raise InvalidTransition(f"{obj!r} is not a section that the host adapter knows.")
    return section


def find_review(section: Section | Any) -> SectionReview | None:
    """The section's review row if it has one (no row is created)."""
    section = as_section(section)
    post_type, post_id = post_reference(section.post)
    return SectionReview.objects.filter(post_type=post_type, post_id=post_id, section_key=section.key).first()


def review_for(section: ReviewTarget) -> SectionReview:
    """The section's review row, created on first use (get_or_create: two requests may race).

    The section's title is kept up to date here, so the review page can still name a
    section after it is removed from its post.
    """
    if isinstance(section, SectionReview):
        return section
    section = as_section(section)
    post_type, post_id = post_reference(section.post)
    title = section.title[:300]
    review, created = SectionReview.objects.get_or_create(
        post_type=post_type, post_id=post_id, section_key=section.key, defaults={"section_title": title}
    )
    if not created and review.section_title != title:
        review.section_title = title
        review.save(update_fields=["section_title", "updated_at"])
    return review


def section_of(review: SectionReview) -> Section | None:
    """The host's section behind a review now, or ``None`` if it was removed from its post."""
    post = review.post
    return get_host().section(post, review.section_key) if post is not None else None


def removed_reviews(post, sections: Iterable[Section]) -> list[SectionReview]:
    """Reviews of the post whose section is no longer in it; their history stays until
    ``blogimages_cleanup --removed-sections`` deletes it."""
    keys = {section.key for section in sections}
    return [review for review in SectionReview.objects.for_post(post) if review.section_key not in keys]


def reviews_of_removed_sections() -> Iterator[SectionReview]:
    """Every review whose section is no longer in its post (or whose post is gone)."""
    from django.contrib.contenttypes.models import ContentType

    host = get_host()
    posts = SectionReview.objects.values_list("post_type_id", "post_id").distinct()
    for post_type_id, post_id in keyset(posts, ("post_type_id", "post_id")):
        reviews = SectionReview.objects.filter(post_type_id=post_type_id, post_id=post_id).order_by("pk")
        post = host.get_post(ContentType.objects.get_for_id(post_type_id), post_id)
        if post is not None:
            reviews = reviews.exclude(section_key__in=[section.key for section in host.sections(post)])
        yield from reviews


def delete_removed_section(review: SectionReview) -> int:
    """Delete a removed section's review, history, images and their files; returns how
    many images went. Refused while the section is still in its post."""
    with transaction.atomic():
        review = SectionReview.objects.select_for_update().get(pk=review.pk)
        if section_of(review) is not None:
            raise InvalidTransition(f"“{review.section_title}” is still in its post; its history stays.")
        results = list(review.results.all())
        names = [
            name
            for result in results
            for name in (
                result.image.name,
                result.thumbnail.name,
                result.mask.name,
                result.published_image,
                *rendition_names(result.renditions),
            )
            if name
        ]
        SectionReview.objects.filter(pk=review.pk).update(approved_result=None, status=ReviewStatus.PENDING)
        review.results.all().delete()
        review.delete()
        # Files go once the rows are gone for sure: a rollback leaves both in place.
        transaction.on_commit(lambda: [delete_quietly(name) for name in names])
    return len(results)


def prompt_example_for(review: SectionReview) -> ImagePromptExample | None:
    if review.prompt_example_id:
        return review.prompt_example
    settings_row = (
        PostImageSettings.objects.filter(post_type_id=review.post_type_id, post_id=review.post_id)
        .select_related("prompt_example")
        .first()
    )
    return settings_row.prompt_example if settings_row else None


def section_prompt_and_source(
    section: Section, review: SectionReview | None = None, example: ImagePromptExample | None = None
) -> tuple[str, str]:
    """The prompt for a section and where it comes from: the review's override, else the
    prompt example's prompt, else the section text."""
    section = as_section(section)
    review = review or review_for(section)
    if review.prompt_override.strip():
        return review.prompt_override.strip(), _("the section's prompt override")
    if example is not None and example.prompt.strip():
        return example.prompt.strip(), _("prompt example “%(name)s”") % {"name": example.name}
    return section.text, _("the section text")


def section_prompt(
    section: Section, review: SectionReview | None = None, example: ImagePromptExample | None = None
) -> str:
    """The prompt for a section (see :func:`section_prompt_and_source`)."""
    return section_prompt_and_source(section, review, example)[0]


def _log(review: SectionReview, action: str, user=None, result=None, comment: str = "") -> ReviewEvent:
    return ReviewEvent.objects.create(review=review, action=action, user=user, result=result, comment=comment)


# --- requesting generation ------------------------------------------------------------------


@dataclass
class GenerationSpec:
    """Everything a generation request can name; unset parts come from the prompt example."""

    prompt: str = ""
    providers: Sequence[str] = ()
    style: ImageStyle | None = None
    image_format: ImageFormat | None = None
    setting: ImageSetting | None = None
    prompt_example: ImagePromptExample | None = None
    model: str = ""
    overrides: dict[str, Any] | None = None
    #: How many candidates each provider makes (1 to BLOGIMAGES_MAX_CANDIDATES): one prompt
    #: with a batch size where the provider can batch (see :func:`can_batch`), else one job each.
    candidates: int = 1


def _check_provider(alias: str) -> str:
    if alias == "auto" and "auto" not in providers:
        raise ValidationError({"provider": "Provider 'auto' is not configured in BLOGIMAGES_PROVIDERS."})
    try:
        providers[alias]
    except UnknownProvider as exc:
        raise ValidationError({"provider": str(exc)}) from exc
    return alias


def _preflight(alias: str, prompt: str, params: dict[str, Any]) -> None:
    """Ask the provider to check the request now, so an editor hears of an unknown or
    retired model, a bad size or quality at once, and no row or job is created for it.
    ``prepare()`` makes no network calls (see BaseProvider.prepare)."""
    try:
        providers[alias].prepare(request_from_snapshot(prompt, params, seed=params["seed"], result_id=None))
    except PermanentProviderError as exc:
        raise ValidationError({"provider": f"{alias}: {exc}"}) from exc


#: How long a generate request's idempotency key is remembered: a repeat within it (a
#: double click, a client retrying after a lost answer) gets the first request's results.
REQUEST_KEY_WINDOW = timezone.timedelta(hours=24)
REQUEST_KEY_MAX = 64


def _claim_request_key(key: str | None, user, operation: str) -> tuple[RequestKey | None, list | None]:
    """Inside the caller's transaction: ``(claim, None)`` for a new key (``claim`` is
    ``None`` without a key), or ``(None, results)`` for a key this user already sent for
    this operation: the results that first request made, each with ``repeated = True``.

    The insert carries the decision: on PostgreSQL a second insert of the same key waits
    until the first request's transaction ends, then fails, and the first one's results
    are there to read; if the first failed and rolled back, the second goes ahead.
    """
    key = (key or "").strip()
    if not key:
        return None, None
    if len(key) > REQUEST_KEY_MAX:
        raise ValidationError({"idempotency_key": f"An idempotency key has at most {REQUEST_KEY_MAX} characters."})
    owner = user if user is not None and user.is_authenticated else None
    RequestKey.objects.filter(created_at__lt=timezone.now() - REQUEST_KEY_WINDOW).delete()
    try:
        with transaction.atomic():
            return RequestKey.objects.create(key=key, user=owner, operation=operation[:200]), None
    except IntegrityError:
        first = RequestKey.objects.get(key=key, user=owner, operation=operation[:200])
    results = list(ImageGenerationResult.objects.filter(pk__in=first.result_ids).order_by("pk"))
    for result in results:
        result.repeated, result.queue_error = True, None
    logger.info("Repeated request %s (%s): answered with results %s", key, operation, first.result_ids)
    return None, results


def _record_request_key(claim: RequestKey | None, results: Sequence[ImageGenerationResult]) -> None:
    if claim is not None:
        claim.result_ids = [result.pk for result in results]
        claim.save(update_fields=["result_ids"])


def request_generation(
    spec: GenerationSpec,
    *,
    section: ReviewTarget | None = None,
    user=None,
    group: uuid.UUID | None = None,
    idempotency_key: str | None = None,
) -> list[ImageGenerationResult]:
    """Create one queued result per provider and enqueue their jobs after commit.

    Several providers make a comparison group that admin shows side by side. A repeated
    ``idempotency_key`` gets the first request's results, marked ``repeated``, and
    queues nothing (see :func:`_claim_request_key`).
    """
    example = spec.prompt_example
    style = spec.style or (example.style if example else None)
    image_format = spec.image_format or (example.image_format if example else None)
    setting = spec.setting or (example.setting if example else None)
    model = spec.model or (example.model if example else "")
    aliases = list(spec.providers) or [
        (example.provider if example and example.provider else "")
        or (setting.provider if setting and setting.provider else "")
        or app_settings.DEFAULT_PROVIDER
    ]
    if not spec.providers:  # a name saved on the library before it was checked: say where it is
        if example and example.provider:
            check_provider(example.provider, owner=f"Prompt example {example.name!r}")
        elif setting and setting.provider:
            check_provider(setting.provider, owner=f"Image setting {setting.name!r}")
    prompt = (spec.prompt or (example.prompt if example else "")).strip()
    if not prompt:
        raise NothingToGenerate("There is no prompt: write one, or pick a prompt example that has one.")
    check_prompt(prompt)
    params = resolve_params(
        style=style, image_format=image_format, setting=setting, model=model, overrides=spec.overrides
    )
    final_prompt = style.apply(prompt) if style else prompt
    candidates = _check_candidates(spec.candidates)
    for alias in aliases:
        _preflight(_check_provider(alias), final_prompt, params)
    batched = {alias for alias in aliases if candidates > 1 and can_batch(alias, final_prompt, params)}
    estimates = {alias: costs.estimate(alias, final_prompt, params) for alias in aliases}
    group = group or uuid.uuid4()
    results, singles = [], []
    with transaction.atomic():
        claim, earlier = _claim_request_key(idempotency_key, user, "generate")
        if earlier is not None:
            return earlier
        # Before any row exists: a refusal leaves nothing behind (see costs.reserve).
        costs.reserve(user, sum(((estimates[alias] or costs.ZERO) * candidates for alias in aliases), costs.ZERO))
        review = review_for(section) if section is not None else None
        now = timezone.now()
        for alias in aliases:
            batch = []
            for own in _candidate_params(params, candidates, batch=alias in batched):
                result = ImageGenerationResult.objects.create(
                    group=group,
                    review=review,
                    prompt_example=example,
                    style=style,
                    image_format=image_format,
                    setting=setting,
                    prompt=prompt,
                    final_prompt=final_prompt,
                    negative_prompt=params["negative_prompt"],
                    provider=alias,
                    model=params["model"],
                    params=own,
                    seed_pinned=own["seed"] is not None,
                    seed=own["seed"],
                    requested_by=user if user and user.is_authenticated else None,
                    queued_at=now,
                    cost_estimate=costs.stored(estimates[alias]),
                    charged_at=now,
                )
                results.append(result)
                if review is not None:
                    _log(review, ReviewAction.GENERATED, user, result)
                (batch if alias in batched else singles).append(result)
            if batch:
                enqueue_batch_on_commit(batch)
        enqueue_on_commit(*singles)  # in one Redis round trip
        _record_request_key(claim, results)
    return results


def _check_candidates(value: Any) -> int:
    limit = app_settings.MAX_CANDIDATES
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit:
        raise ValidationError(
            {"candidates": f"Ask for 1 to {limit} candidates (BLOGIMAGES_MAX_CANDIDATES), not {value!r}."}
        )
    return value


def can_batch(alias: str, prompt: str, params: dict[str, Any]) -> bool:
    """Whether provider ``alias`` makes several candidates of this request in one pass
    (a ComfyUI workflow that maps ``batch_size``); asked at request time, no network."""
    request = request_from_snapshot(prompt, params, seed=params["seed"], result_id=None)
    return providers[alias].can_batch(request)


def _candidate_params(params: dict[str, Any], count: int, *, batch: bool) -> list[dict[str, Any]]:
    """Each candidate's snapshot. In a batch all share the seed (pinned, or the one the job
    picks) and ``batch_index`` says which image of the batch is theirs; separate jobs with a
    pinned seed get seed, seed + 1, ... so they differ, as a batch's images do."""
    if count == 1:
        return [params]
    if batch:
        return [{**params, "batch_index": index} for index in range(count)]
    seed = params["seed"]
    return [{**params, "seed": None if seed is None else seed + index} for index in range(count)]


def generate_for_section(
    section: Section,
    *,
    user=None,
    provider: str | None = None,
    prompt_example=None,
    idempotency_key: str | None = None,
    candidates: int = 1,
):
    """Queue the section's image (``candidates`` of them); a repeated ``idempotency_key``
    gets the first request's results (marked ``repeated``) and queues nothing."""
    section = as_section(section)
    with transaction.atomic():
        review = review_for(section)
        operation = f"generate-section:{review.pk}:{provider or ''}" + (f":{candidates}" if candidates != 1 else "")
        claim, earlier = _claim_request_key(idempotency_key, user, operation)
        if earlier is not None:
            return earlier
        example = prompt_example or prompt_example_for(review)
        prompt = section_prompt(section, review, example)
        if not prompt:
            raise NothingToGenerate(f"Section {section.title!r} has no text and no prompt.")
        spec = GenerationSpec(
            prompt=prompt, prompt_example=example, providers=[provider] if provider else (), candidates=candidates
        )
        results = request_generation(spec, section=section, user=user)
        _record_request_key(claim, results)
    return results


@dataclass
class PostGeneration:
    results: list[ImageGenerationResult]
    skipped: list[tuple[Section, str]]  # (section, reason)
    #: The request repeated an idempotency key: ``results`` are the first request's, nothing was queued.
    repeated: bool = False


def missing_image_skip_reason(section: Section) -> str | None:
    """Why ``only_missing`` generation skips a section, or None if it needs an image."""
    review = find_review(section)
    if review is None:
        return None
    if review.status == ReviewStatus.APPROVED:
        return "already has an approved image"
    if review.results.filter(status__in=ACTIVE_STATUSES).exists():
        return "already has an image queued or running"
    return None


def generate_for_sections(
    sections: Iterable[Section],
    *,
    user=None,
    provider: str | None = None,
    prompt_example: ImagePromptExample | None = None,
    only_missing: bool = False,
    idempotency_key: str | None = None,
) -> PostGeneration:
    """Queue one job per section; sections without a prompt (or, with ``only_missing``,
    with an approved or in-flight image) are skipped, each with the reason why. A repeated
    ``idempotency_key`` answers with the first request's results and queues nothing."""
    results, skipped = [], []
    sections = [as_section(section) for section in sections]
    keys = hashlib.sha256("\0".join(sorted(section.key for section in sections)).encode()).hexdigest()[:16]
    operation = f"generate-sections:{provider or ''}:{int(only_missing)}:{keys}"
    with transaction.atomic(), enqueue_together():
        claim, earlier = _claim_request_key(idempotency_key, user, operation)
        if earlier is not None:
            return PostGeneration(results=earlier, skipped=[], repeated=True)
        for section in sections:
            reason = missing_image_skip_reason(section) if only_missing else None
            if reason:
                skipped.append((section, reason))
                continue
            try:
                results += generate_for_section(section, user=user, provider=provider, prompt_example=prompt_example)
            except NothingToGenerate as exc:
                skipped.append((section, str(exc)))
            except ValidationError as exc:  # e.g. a prompt over the length limit: that section only
                skipped.append((section, " ".join(exc.messages)))
            except costs.BudgetExceeded as exc:  # this section would cross a budget; a cheaper one may fit
                skipped.append((section, str(exc)))
        _record_request_key(claim, results)
    return PostGeneration(results=results, skipped=skipped)


def generate_for_post(post, **options: Any) -> PostGeneration:
    """Queue one job per section of the post; see :func:`generate_for_sections` for the options."""
    return generate_for_sections(get_host().sections(post), **options)


def regenerate(
    result: ImageGenerationResult, *, user=None, same_seed: bool = False, idempotency_key: str | None = None
) -> ImageGenerationResult:
    """A new candidate with the same snapshot; a new seed unless ``same_seed``. A repeated
    ``idempotency_key`` gets the first request's candidate (``repeated``) and queues nothing."""
    if result.source == ResultSource.UPLOADED:
        raise InvalidTransition("An uploaded image cannot be regenerated; generate a new one for the section instead.")
    params = dict(result.params)
    params["seed"] = result.seed if same_seed and result.seed is not None else None
    # A candidate of a batch is image ``batch_index`` of its seed: "same seed" makes that
    # image again (alone, see jobs.batch_index); a new seed is a plain single image.
    index = int(result.provider_meta.get("batch_index") or params.get("batch_index") or 0)
    params.pop("batch_index", None)
    if same_seed and params["seed"] is not None and index:
        params["batch_index"] = index
    estimate = costs.estimate(result.provider, result.final_prompt, params)
    from .refining import lineage_fields, new_files

    # A refined image is made again from the same parent, with its own copy of the mask.
    with new_files() as files, transaction.atomic():
        claim, earlier = _claim_request_key(idempotency_key, user, f"regenerate:{result.pk}:{int(same_seed)}")
        if earlier:
            return earlier[0]
        costs.reserve(user, estimate)
        now = timezone.now()
        new = ImageGenerationResult.objects.create(
            group=uuid.uuid4(),
            review_id=result.review_id,
            prompt_example_id=result.prompt_example_id,
            style_id=result.style_id,
            image_format_id=result.image_format_id,
            setting_id=result.setting_id,
            prompt=result.prompt,
            final_prompt=result.final_prompt,
            negative_prompt=result.negative_prompt,
            provider=result.provider,
            model=result.model,
            params=params,
            seed_pinned=params["seed"] is not None,
            seed=params["seed"],
            requested_by=user if user and user.is_authenticated else None,
            queued_at=now,
            cost_estimate=costs.stored(estimate),
            charged_at=now,
            **lineage_fields(result, files),
        )
        if result.review_id:
            _log(result.review, ReviewAction.REGENERATED, user, new, comment=f"from #{result.pk}")
        enqueue_on_commit(new)
        _record_request_key(claim, [new])
    return new


# --- what an editor may do with a candidate ------------------------------------------------------

#: The actions on one candidate, as the review page's buttons and POST values name them.
RESULT_ACTIONS = ("approve", "reject", "cancel", "requeue", "regenerate", "regenerate-same-seed")


def result_actions(result: ImageGenerationResult, perms: dict[str, bool]) -> frozenset[str]:
    """What a user with ``perms`` (``{"generate", "review", "upload": bool}`` for the post,
    see :func:`can`) may do with ``result`` now. The state rules are the named moves'
    (``TRANSITIONS``), so a button is shown exactly when the service would accept it."""
    actions: set[str] = set()
    if perms.get("review") and result.status == ResultStatus.SUCCEEDED and result.review_id:
        actions.add("reject")
        if not result.is_approved:
            actions.add("approve")
    if not perms.get("generate"):
        return frozenset(actions)
    if result.status in TRANSITIONS["cancel"].sources:
        actions.add("cancel")
    generated = result.source == ResultSource.GENERATED
    stranded = result.status == ResultStatus.QUEUED and bool(result.error_message)  # Redis refused its job
    if stranded or (generated and result.status in TRANSITIONS["requeue"].sources):
        actions.add("requeue")
    if generated and not result.is_active:
        actions.add("regenerate")
        if result.seed is not None:
            actions.add("regenerate-same-seed")
    return frozenset(actions)


# --- the queue ----------------------------------------------------------------------------------


# Set inside :func:`enqueue_together`: the results whose jobs wait for the end of the block.
_gathered: contextvars.ContextVar[list[ImageGenerationResult] | None] = contextvars.ContextVar(
    "blogimages_enqueue_together", default=None
)


def enqueue_on_commit(*results: ImageGenerationResult) -> None:
    """Enqueue the results' jobs once the transaction commits (in one Redis round trip), and
    keep the outcome on each instance (``queue_error``) so callers learn it without reading
    the row again. Inside :func:`enqueue_together` they wait for the end of its block."""
    for result in results:
        result.queue_error = None
    gathered = _gathered.get()
    if gathered is not None:
        gathered.extend(results)
    elif results:
        _send_on_commit(results)


@contextlib.contextmanager
def enqueue_together() -> Iterator[None]:
    """Gather the jobs that :func:`enqueue_on_commit` is given in the block and send them all
    in one Redis round trip once the transaction commits: a whole post's sections reach the
    queue at once, so the workers start them together instead of one every few milliseconds.
    A job whose row a rolled-back savepoint removed is not sent (:func:`enqueue_many` finds
    no queued row for it)."""
    if _gathered.get() is not None:  # an outer block sends them
        yield
        return
    gathered: list[ImageGenerationResult] = []
    token = _gathered.set(gathered)
    try:
        yield
    finally:
        _gathered.reset(token)
    if gathered:
        _send_on_commit(gathered)


def _send_on_commit(results: Sequence[ImageGenerationResult]) -> None:
    def send() -> None:
        errors = enqueue_many([result.pk for result in results])
        for result in results:
            result.queue_error = errors.get(result.pk)

    transaction.on_commit(send)


def enqueue_batch_on_commit(results: Sequence[ImageGenerationResult]) -> None:
    """Enqueue one job for the candidates of a batch once the transaction commits; each
    result keeps the outcome in ``queue_error``, as :func:`enqueue_on_commit` does."""
    for result in results:
        result.queue_error = None

    def send() -> None:
        error = enqueue_batch([result.pk for result in results])
        for result in results:
            result.queue_error = error

    transaction.on_commit(send)


#: Job ids of batches start with this; the candidates of one batch share its job id.
BATCH_JOB_PREFIX = "blogimages-batch-"


def enqueue_batch(result_ids: Sequence[int]) -> str | None:
    """Put one ``run_generation_batch`` job on RQ for the queued candidates of a batch; all
    of them record its id (their ``job_id`` names the batch). The Redis error, else ``None``."""
    results = list(ImageGenerationResult.objects.filter(pk__in=result_ids, status=ResultStatus.QUEUED).order_by("pk"))
    if not results:
        return None
    first = results[0]
    job_id = f"{BATCH_JOB_PREFIX}{first.pk}-{first.enqueue_count + 1}"
    error = _send_job(first, job_id, batch=results)
    if error:
        return error
    ImageGenerationResult.objects.filter(pk__in=[result.pk for result in results]).update(
        job_id=job_id, enqueue_count=F("enqueue_count") + 1, error_message="", error_kind=""
    )
    return None


def batch_siblings(result: ImageGenerationResult):
    """The other candidates made by ``result``'s batch job (none outside a batch)."""
    if not result.job_id.startswith(BATCH_JOB_PREFIX):
        return ImageGenerationResult.objects.none()
    return ImageGenerationResult.objects.filter(job_id=result.job_id).exclude(pk=result.pk)


def enqueue(result_id: int) -> str | None:
    """Put the job for a queued result on RQ. On a Redis error the row records why and
    stays queued, so ``requeue`` can send it again; returns that error, else ``None``."""
    return enqueue_many([result_id]).get(result_id)


def enqueue_many(result_ids: Sequence[int]) -> dict[int, str]:
    """Put the jobs for the queued results among ``result_ids`` on RQ, in that order, in one
    Redis round trip; rows no longer queued (or gone) are left alone. On a Redis error every
    row records why and stays queued, so ``requeue`` can send it again. Returns the error
    per result that was not sent (empty when all were)."""
    rows = ImageGenerationResult.objects.order_by().in_bulk(result_ids)
    results = [rows[pk] for pk in dict.fromkeys(result_ids) if pk in rows and rows[pk].status == ResultStatus.QUEUED]
    if not results:
        return {}
    jobs = [_job(result, result.next_job_id()) for result in results]
    before = [(result.job_id, result.enqueue_count) for result in results]
    # The rows are written before the send: once a job is on the queue a worker may fail it
    # within milliseconds (RQ's synchronous mode runs it inside enqueue), and writing after the
    # send would clear the reason it gave.
    for result, job in zip(results, jobs, strict=True):
        result.job_id, result.enqueue_count = job["job_id"], result.enqueue_count + 1
        result.error_message = result.error_kind = ""
    ImageGenerationResult.objects.bulk_update(results, ["job_id", "enqueue_count", "error_message", "error_kind"])
    error = _send_jobs(jobs, ids=[result.pk for result in results])
    if error:  # nothing was sent: the rows keep their previous job and count (_send_jobs wrote why)
        for result, (job_id, count) in zip(results, before, strict=True):
            result.job_id, result.enqueue_count = job_id, count
        ImageGenerationResult.objects.bulk_update(results, ["job_id", "enqueue_count"])
        return {result.pk: error for result in results}
    return {}


def enqueue_retry(
    result: ImageGenerationResult, delay: float, *, batch: Sequence[ImageGenerationResult] = ()
) -> str | None:
    """Schedule the next attempt of a result the job moved back to the queue ("retry") on
    RQ's scheduler, ``delay`` seconds from now (with ``batch``: the candidates of a batch,
    ``result`` first, as one batch job again). Not a re-queue: ``enqueue_count`` (which
    BLOGIMAGES_MAX_REQUEUES counts) stays; the job id names the attempt."""
    prefix = BATCH_JOB_PREFIX if batch else "blogimages-result-"
    job_id = f"{prefix}{result.pk}-{result.enqueue_count}-attempt-{result.attempts + 1}"
    error = _send_job(result, job_id, delay=delay, batch=batch)
    if not error:
        ImageGenerationResult.objects.filter(pk__in=[row.pk for row in batch] or [result.pk]).update(job_id=job_id)
    return error


def _send_job(
    result: ImageGenerationResult,
    job_id: str,
    *,
    delay: float | None = None,
    batch: Sequence[ImageGenerationResult] = (),
) -> str | None:
    """Enqueue (or schedule) ``run_generation`` for ``result``, or ``run_generation_batch``
    for the candidates in ``batch``; the Redis error, recorded on the rows, else ``None``."""
    return _send_jobs([_job(result, job_id, batch)], ids=[row.pk for row in batch] or [result.pk], delay=delay)


def _job(result: ImageGenerationResult, job_id: str, batch: Sequence[ImageGenerationResult] = ()) -> dict[str, Any]:
    """RQ's arguments for the job of ``result`` (or of the candidates in ``batch``)."""
    ids = [row.pk for row in batch] or [result.pk]
    return dict(
        func="blogimages.jobs.run_generation_batch" if batch else "blogimages.jobs.run_generation",
        args=(ids,) if batch else (result.pk,),
        job_id=job_id,
        timeout=app_settings.JOB_TIMEOUT,
        result_ttl=3600,
        failure_ttl=7 * 86400,
        description=f"blogimages results #{', #'.join(map(str, ids))}" if batch else f"blogimages result #{result.pk}",
    )


def _send_jobs(jobs: Sequence[dict[str, Any]], *, ids: Sequence[int], delay: float | None = None) -> str | None:
    """Enqueue ``jobs`` (one pipeline for several), or schedule them ``delay`` seconds from
    now; the Redis error, recorded on the rows ``ids``, else ``None``."""
    import datetime

    import django_rq
    from redis.exceptions import RedisError

    try:
        # commit_mode="auto": we are already running after commit.
        queue = django_rq.get_queue(app_settings.QUEUE, commit_mode="auto")
        if delay is not None:
            for job in jobs:
                func, options = _enqueue_args(job)
                queue.enqueue_in(datetime.timedelta(seconds=delay), func, **options)
        elif len(jobs) > 1 and queue.is_async:
            queue.enqueue_many([queue.prepare_data(**job) for job in jobs])
        else:  # a synchronous queue runs each job as it is enqueued
            for job in jobs:
                func, options = _enqueue_args(job)
                queue.enqueue(func, **options)
    except RedisError as exc:
        message = (
            f"Could not reach the job queue (Redis: {exc.__class__.__name__}: {exc}). "
            "The image is still queued here; re-queue it once Redis is back."
        )
        ImageGenerationResult.objects.filter(pk__in=ids).update(
            error_message=message, error_kind=ErrorKind.TRANSIENT, updated_at=timezone.now()
        )
        logger.error("Enqueue failed for result(s) %s: %s", ids, exc)
        return message
    return None


def _enqueue_args(job: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """``job`` as ``Queue.enqueue`` takes it: the function, then ``job_timeout`` for ``prepare_data``'s ``timeout``."""
    options = {key: value for key, value in job.items() if key not in ("func", "timeout")}
    return job["func"], {**options, "job_timeout": job["timeout"]}


def requeue(result: ImageGenerationResult, *, user=None) -> ImageGenerationResult:
    """Send a failed or cancelled result to the queue again, or a queued one whose job
    never reached the queue (Redis was down). A running result is refused: if its worker
    stops reporting, the workers' sweep re-queues it (``recover_lost`` for operators)."""
    if result.status == ResultStatus.QUEUED:
        enqueue_on_commit(result)
        return result
    # A failed or cancelled result released its amount; sending it again reserves it anew,
    # against the budget of whoever asked for it.
    # Only a result that may be re-queued is priced; the move below refuses the others.
    requeueable = result.status in TRANSITIONS["requeue"].sources
    estimate = costs.estimate(result.provider, result.final_prompt, result.params) if requeueable else None
    with transaction.atomic():
        if requeueable:
            costs.reserve(result.requested_by, estimate, exclude=[result.pk])
        now = timezone.now()
        result.move(
            "requeue",
            progress=0,
            progress_message="",
            queued_at=now,
            error_message="",
            error_kind="",
            finished_at=None,
            cost_estimate=costs.stored(estimate),
            charged_at=now,
        )
        enqueue_on_commit(result)
    return result


def recover_lost(result: ImageGenerationResult) -> ImageGenerationResult:
    """An operator's re-queue of a result whose job is lost (``blogimages_requeue``): a
    running one is swept back to the queue, others re-queued as an editor would."""
    if result.status != ResultStatus.RUNNING:
        return requeue(result)
    with transaction.atomic():
        result.move("sweep", progress=0, queued_at=timezone.now(), progress_message="re-queued: its job was lost")
        enqueue_on_commit(result)
    return result


def requeue_limit_reached(result: ImageGenerationResult) -> bool:
    """Whether a transient failure has been sent to the queue again ``BLOGIMAGES_MAX_REQUEUES``
    times already (``enqueue_count`` less the first enqueue), so retrying it is pointless."""
    return result.enqueue_count - 1 >= app_settings.MAX_REQUEUES


def retry_transient_failure(result: ImageGenerationResult) -> bool:
    """An operator's retry of a transient failure (``blogimages_requeue``): re-queued while
    under ``BLOGIMAGES_MAX_REQUEUES``, else failed for good (``error_kind`` permanent, the
    reason in ``error_message``) so a provider that is gone for good settles. True if re-queued."""
    if not requeue_limit_reached(result):
        requeue(result)
        return True
    message = (
        f"Gave up after {result.enqueue_count - 1} re-queue(s) (BLOGIMAGES_MAX_REQUEUES="
        f"{app_settings.MAX_REQUEUES}); last error: {result.error_message}"
    )
    now = timezone.now()
    # Conditional, like a move: an editor's re-queue meanwhile wins.
    updated = ImageGenerationResult.objects.filter(
        pk=result.pk, status=ResultStatus.FAILED, error_kind=ErrorKind.TRANSIENT
    ).update(error_kind=ErrorKind.PERMANENT, error_message=message, updated_at=now)
    if not updated:
        raise ConcurrentTransition(f"Result #{result.pk} is no longer a transient failure.")
    result.error_kind, result.error_message, result.updated_at = ErrorKind.PERMANENT, message, now
    return False


def queue_errors(results: Iterable[ImageGenerationResult]) -> list[str]:
    """What Redis said when these results' jobs were enqueued (after the commit), if it
    refused; nothing while the commit is still to come."""
    return sorted({error for result in results if (error := getattr(result, "queue_error", None))})


def raise_for_queue_errors(results: Iterable[ImageGenerationResult]) -> None:
    errors = queue_errors(results)
    if errors:
        raise QueueUnavailable(errors[0])


def cancel(result: ImageGenerationResult, *, user=None) -> ImageGenerationResult:
    """Stop a queued or running result: its RQ job, and its remote job (by its own id only).

    A candidate of a batch shares both with the others: they are stopped once no candidate
    of the batch is queued or running any more; until then the batch runs on and the
    cancelled candidate's image is discarded when it comes."""
    import django_rq
    from redis.exceptions import RedisError
    from rq.exceptions import NoSuchJobError
    from rq.job import Job

    was_running = result.status == ResultStatus.RUNNING
    with transaction.atomic():
        result.move("cancel", finished_at=timezone.now(), progress_message="cancelled")
        if result.review_id:
            _log(result.review, ReviewAction.CANCELLED, user, result)
    if batch_siblings(result).filter(status__in=ACTIVE_STATUSES).exists():
        logger.info("Result #%s cancelled; its batch runs on for the other candidates", result.pk)
        return result
    if result.job_id and not was_running:
        try:
            connection = django_rq.get_connection(app_settings.QUEUE)
            Job.fetch(result.job_id, connection=connection).cancel()
        except (NoSuchJobError, RedisError) as exc:
            # The job re-reads the row before it runs and finds it cancelled anyway.
            logger.info("Could not cancel RQ job %s: %s", result.job_id, exc)
    if result.remote_id:
        try:
            providers[result.provider_used or result.provider].cancel(result.remote_id, result.remote_server)
        except Exception:  # noqa: BLE001 - the row is cancelled; the remote side is best effort
            logger.exception("Remote cancel failed for result #%s", result.pk)
    return result


# --- review decisions ----------------------------------------------------------------------------


#: ``approve(replaces=UNCHECKED)``: replace whatever is approved now (admin actions, scripts).
UNCHECKED: Any = object()


class ApprovalConflict(ConcurrentTransition):
    """The section's approval changed since the editor looked: someone else decided first."""


def approve(
    result: ImageGenerationResult, *, user=None, comment: str = "", replaces: int | None = UNCHECKED
) -> SectionReview:
    """Make ``result`` the section's one approved image (replacing any earlier approval).

    ``replaces`` is the approved result the editor saw (``None``: none), sent by the review
    page and the API: if the approval changed meanwhile (another editor, another tab), the
    request is refused with :class:`ApprovalConflict` saying who approved what, instead of
    quietly replacing a decision the editor never saw. Approving the result that is already
    approved changes nothing (the returned review has ``unchanged = True``); without
    ``replaces`` it runs the host's idempotent publish hook again, so re-approving retries
    a hook that failed. The returned review's ``replaced_id`` names the approval replaced.

    The host adapter hears of it after commit (``image_approved``), and renditions are
    queued after commit, for the winning request only: a Wagtail site gets the image in
    its library only once the approval is certain.
    """
    if result.review_id is None:
        raise InvalidTransition("Only an image made for a section can be approved.")
    if result.status != ResultStatus.SUCCEEDED or not result.image:
        raise InvalidTransition(f"Result #{result.pk} has no finished image to approve.")
    with transaction.atomic():
        # Lock the review so two editors approving at once take turns: the second reads
        # the first one's decision, after it committed, and is told. The one-to-one
        # approved_result is the backstop where locks are not available.
        review = SectionReview.objects.select_for_update().get(pk=result.review_id)
        current = review.approved_result_id
        review.unchanged, review.replaced_id = current == result.pk, None
        if current == result.pk:
            if replaces is UNCHECKED:
                _publish_on_commit("approved", review.pk, result.pk, None, user)
            return review
        if replaces is not UNCHECKED and current != replaces:
            raise ApprovalConflict(_approval_changed(review, replaces))
        review.replaced_id = current
        review.status = ReviewStatus.APPROVED
        review.approved_result = result
        review.reviewed_by = user if user and user.is_authenticated else None
        review.reviewed_at = timezone.now()
        if comment:
            review.comment = comment
        review.save(update_fields=["status", "approved_result", "reviewed_by", "reviewed_at", "comment", "updated_at"])
        # The caller's instance now knows it is approved, without another query.
        ImageGenerationResult.approved_for.related.set_cached_value(result, review)
        if result.rejected_at is not None or result.rejection_comment:
            # Approving a rejected candidate (approve anyway) takes its rejection back.
            result.rejected_at, result.rejected_by, result.rejection_comment = None, None, ""
            ImageGenerationResult.objects.filter(pk=result.pk).update(
                rejected_at=None, rejected_by=None, rejection_comment="", updated_at=timezone.now()
            )
        _log(review, ReviewAction.APPROVED, user, result, comment)
        _publish_on_commit("approved", review.pk, result.pk, current, user)
        # Public rendering: queue the srcset renditions after commit (blogimages.renditions),
        # after the publish hook gave the image its readable name, so they get one too.
        from .renditions import enqueue_on_commit as enqueue_renditions_on_commit

        enqueue_renditions_on_commit(result.pk)
    return review


def _approval_changed(review: SectionReview, expected: int | None) -> str:
    """One sentence for an editor whose approval lost: who decided what, and when."""
    who = str(review.reviewed_by) if review.reviewed_by_id else _("someone")
    when = _("a moment ago")
    if review.reviewed_at and timezone.now() - review.reviewed_at > timezone.timedelta(minutes=1):
        from django.utils.timesince import timesince

        when = _("%(time)s ago") % {"time": timesince(review.reviewed_at)}
    if review.approved_result_id is not None:
        return _("Already changed: #%(id)s was approved by %(who)s %(when)s; reload to see it.") % {
            "id": review.approved_result_id,
            "who": who,
            "when": when,
        }
    return _("Already changed: #%(id)s is no longer approved (%(who)s, %(when)s); reload to see it.") % {
        "id": expected,
        "who": who,
        "when": when,
    }


def approve_batch(
    results: Iterable[ImageGenerationResult], *, user=None
) -> tuple[list[ImageGenerationResult], list[tuple[ImageGenerationResult, str]]]:
    """Approve several results, newest first and at most one per section (the newest
    selected one wins); returns ``(approved, [(result, why it was skipped)])``."""
    approved: list[ImageGenerationResult] = []
    skipped: list[tuple[ImageGenerationResult, str]] = []
    sections: set[int] = set()
    for result in sorted(results, key=lambda r: (r.created_at, r.pk), reverse=True):
        if result.review_id in sections:
            skipped.append((result, "another selected image of the same section was approved"))
            continue
        try:
            approve(result, user=user)
        except (BlogImagesError, ValidationError) as exc:
            skipped.append((result, " ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)))
            continue
        approved.append(result)
        sections.add(result.review_id)
    return approved, skipped


def approve_newest(review: SectionReview, *, user=None) -> SectionReview:
    """Approve the section's newest finished image."""
    latest = newest_result(review, status=ResultStatus.SUCCEEDED)
    if latest is None:
        raise InvalidTransition("no finished image yet")
    if latest.pk == review.approved_result_id:
        raise InvalidTransition("its newest image is already approved")
    return approve(latest, user=user)


def regenerate_newest(review: SectionReview, *, user=None) -> ImageGenerationResult:
    """A new candidate like the section's newest generated one, with a new seed."""
    latest = newest_result(review, source=ResultSource.GENERATED)
    if latest is None:
        raise InvalidTransition("nothing was generated for it yet")
    return regenerate(latest, user=user)


def newest_result(review: SectionReview, **filters: Any) -> ImageGenerationResult | None:
    queryset = review.results.filter(**filters)
    if filters.get("status") == ResultStatus.SUCCEEDED:
        queryset = queryset.exclude(image="")
    return queryset.order_by("-created_at", "-id").first()


def _publish_on_commit(event: str, review_id: int, result_id: int, replaced_id: int | None, user) -> None:
    """Tell the host adapter after commit; a failing hook is logged, the decision stands
    (it is in the database and the history), and re-approving runs the hook again."""

    def publish() -> None:
        review = SectionReview.objects.get(pk=review_id)
        result = ImageGenerationResult.objects.get(pk=result_id)
        if event == "approved":
            # The readable file name public pages serve (blogimages.naming); a failure
            # leaves the page serving the original, and blogimages_publish_names retries.
            from .naming import publish as publish_name

            try:
                publish_name(result)
            except BlogImagesError as exc:  # no longer approved, storage down: said in one sentence
                logger.warning("Result #%s was not published under a readable name: %s", result_id, exc)
            except Exception:
                logger.exception("Result #%s could not be published under a readable name", result_id)
        try:
            if event == "approved":
                replaced = ImageGenerationResult.objects.filter(pk=replaced_id).first() if replaced_id else None
                get_host().image_approved(review, result, replaced=replaced, user=user)
            else:
                get_host().image_unapproved(review, result, user=user)
        except Exception:
            logger.exception("The host's publish hook failed for result #%s (%s)", result_id, event)

    transaction.on_commit(publish)


def reject(
    section: ReviewTarget | None = None, *, result: ImageGenerationResult | None = None, user=None, comment: str
) -> SectionReview:
    """Reject a candidate (or the section's images as a whole). A comment is required."""
    comment = (comment or "").strip()
    if not comment:
        raise ValidationError({"comment": "Say why the image is rejected; the comment is required."})
    if section is None:
        if result is None or result.review_id is None:
            raise InvalidTransition("Only an image made for a section can be rejected.")
        review_id = result.review_id
    else:
        review_id = review_for(section).pk
    with transaction.atomic():
        review = SectionReview.objects.select_for_update().get(pk=review_id)
        unapproved_id = review.approved_result_id
        unapprove = unapproved_id is not None and (result is None or unapproved_id == result.pk)
        if result is None or review.approved_result_id == result.pk:
            review.approved_result = None
            review.status = ReviewStatus.REJECTED
        review.reviewed_by = user if user and user.is_authenticated else None
        review.reviewed_at = timezone.now()
        review.comment = comment
        review.save(update_fields=["status", "approved_result", "reviewed_by", "reviewed_at", "comment", "updated_at"])
        if result is not None:
            # The candidate carries its own decision: who rejected it, when and why.
            result.rejected_at = review.reviewed_at
            result.rejected_by = review.reviewed_by
            result.rejection_comment = comment
            ImageGenerationResult.objects.filter(pk=result.pk).update(
                rejected_at=result.rejected_at,
                rejected_by=result.rejected_by,
                rejection_comment=comment,
                updated_at=timezone.now(),
            )
        _log(review, ReviewAction.REJECTED, user, result, comment)
        if unapprove:
            _publish_on_commit("unapproved", review.pk, unapproved_id, None, user)
    return review


# --- several decisions at once (the review page's "approve/reject the selected") -----------------


@dataclass
class Decisions:
    """What :func:`decide_many` did: the results decided, the approvals each replaced, and
    one sentence saying so."""

    decision: str
    results: list[ImageGenerationResult]
    replaced: dict[int, int]  # approved result id -> the approved result it replaced
    summary: str


def decide_many(
    results: Iterable[ImageGenerationResult],
    *,
    decision: str,
    user=None,
    comment: str = "",
    allow_missing_alt: bool = True,
) -> Decisions:
    """Approve or reject several candidates in one transaction: all of them or, when one is
    refused, none. A rejection needs one comment (it goes on every candidate); only one image
    per section can be approved, so ticking two of the same section is refused, naming them.
    Unless ``allow_missing_alt``, an approval that would publish images without alt text is
    refused with :class:`MissingAltText` naming them (the review page then asks to confirm)."""
    results = sorted(results, key=lambda r: r.pk)
    if decision not in ("approve", "reject"):
        raise ValidationError({"decision": f"Say “approve” or “reject”, not “{decision}”."})
    if not results:
        raise ValidationError({"ids": "Tick the images to approve or reject first."})
    comment = (comment or "").strip()
    if decision == "reject" and not comment:
        raise ValidationError({"comment": "Say why the images are rejected; one comment is required for all of them."})
    for result in results:
        if result.review_id is None:
            raise InvalidTransition(f"Image #{result.pk} was not made for a section.")
    if decision == "approve":
        by_section: dict[int, list[ImageGenerationResult]] = {}
        for result in results:
            by_section.setdefault(result.review_id, []).append(result)
        for group in by_section.values():
            if len(group) > 1:
                ids = " and ".join(f"#{r.pk}" for r in group)
                title = group[0].review.section_title or group[0].review.section_key
                raise ValidationError(
                    {
                        "ids": f"Only one image per section can be approved: {ids} are both for “{title}”. "
                        "Tick one of them; nothing was approved."
                    }
                )
        bare = [] if allow_missing_alt else without_alt_text(results)
        if bare:
            raise MissingAltText(missing_alt_text_many(bare), bare)
    replaced: dict[int, int] = {}
    with transaction.atomic():
        for result in results:
            try:
                if decision == "approve":
                    review = approve(result, user=user, comment=comment)
                    if review.replaced_id:
                        replaced[result.pk] = review.replaced_id
                else:
                    reject(result=result, user=user, comment=comment)
            except InvalidTransition as exc:
                raise InvalidTransition(f"Nothing was {decision}d: image #{result.pk}: {exc}") from exc
    ids = ", ".join(f"#{r.pk}" for r in results)
    if decision == "approve":
        summary = f"Approved {len(results)} image{'s' if len(results) != 1 else ''} ({ids})."
        if replaced:
            summary += " " + "; ".join(f"#{new} replaces #{old}" for new, old in replaced.items()) + "."
    else:
        summary = f"Rejected {len(results)} image{'s' if len(results) != 1 else ''} ({ids}): “{comment}”."
    return Decisions(decision=decision, results=results, replaced=replaced, summary=summary)


ALT_MAX = SectionReview._meta.get_field("alt_text").max_length


def clean_alt_text(text: str | None) -> str | None:
    """Alt text as it will be saved (one line), ValidationError if too long; None stays None."""
    if text is None:
        return None
    text = " ".join(text.split())
    if len(text) > ALT_MAX:
        raise ValidationError({"alt_text": f"The alt text is {len(text)} characters; the limit is {ALT_MAX}."})
    return text


def save_alt_text(review: SectionReview, text: str) -> SectionReview:
    """Store the alt text the editor confirmed for the section's approved image; a host
    that published a copy of the image (Wagtail, filer) updates it after commit."""
    text = clean_alt_text(text) or ""
    if review.alt_text != text:
        review.alt_text = text
        review.save(update_fields=["alt_text", "updated_at"])
        # Re-read after commit: this instance may not know of an approval made meanwhile.
        transaction.on_commit(lambda: _alt_text_changed(review.pk))
    return review


def _alt_text_changed(review_id: int) -> None:
    review = SectionReview.objects.select_related("approved_result").filter(pk=review_id).first()
    if review is None or review.approved_result is None:
        return
    try:
        get_host().alt_text_changed(review, review.approved_result)
    except Exception:  # noqa: BLE001 - the alt text is saved; the host copy is retried by re-approving
        logger.exception("The host could not update the alt text of result #%s", review.approved_result_id)


def save_prompt(section: ReviewTarget, text: str) -> SectionReview:
    """Store the prompt the editor confirmed as the section's prompt override (blank: none)."""
    text = (text or "").strip()
    check_prompt(text)
    with transaction.atomic():
        review = review_for(section)
        if review.prompt_override != text:
            review.prompt_override = text
            review.save(update_fields=["prompt_override", "updated_at"])
    return review


def add_comment(section: ReviewTarget, *, user=None, text: str) -> ReviewEvent:
    text = (text or "").strip()
    if not text:
        raise ValidationError({"comment": "The comment is empty."})
    with transaction.atomic():
        review = review_for(section)
        review.comment = text
        review.save(update_fields=["comment", "updated_at"])
        return _log(review, ReviewAction.COMMENTED, user, comment=text)


def upload(section: ReviewTarget, uploaded_file, *, user=None, approve_now: bool = False) -> ImageGenerationResult:
    """Store an editor's file as a candidate for the section (vetted, re-encoded and stripped
    of its metadata first: a camera's GPS position and serial number stay out of storage)."""
    data, content_type = clean_upload(uploaded_file)
    info, thumbnail = analyse(data)
    with stored_image(data, content_type, thumbnail) as (name, thumb), transaction.atomic():
        review = review_for(section)
        now = timezone.now()
        filename = getattr(uploaded_file, "name", "") or "upload"
        result = ImageGenerationResult.objects.create(
            review=review,
            source=ResultSource.UPLOADED,
            prompt=f"Uploaded file {filename}"[:PROMPT_MAX],
            final_prompt="",
            provider="upload",
            provider_used="upload",
            params={},
            status=ResultStatus.SUCCEEDED,
            progress=100,
            queued_at=now,
            started_at=now,
            finished_at=now,
            **_stored_fields(name, thumb, info),
            requested_by=user if user and user.is_authenticated else None,
        )
        _log(review, ReviewAction.UPLOADED, user, result, filename)
        if approve_now:
            approve(result, user=user)
    return result


# --- used by jobs -------------------------------------------------------------------------------------


def _stored_fields(name: str, thumbnail: str, info) -> dict[str, Any]:
    """A result's fields for an image stored under ``name`` (``info``: ``images.analyse``)."""
    return {
        "image": name,
        "thumbnail": thumbnail,
        "width": info.width,
        "height": info.height,
        "file_size": info.size,
        "content_type": info.content_type,
        "checksum": info.checksum,
    }


def store_output(result: ImageGenerationResult, data: bytes, *, fields: dict[str, Any]) -> None:
    """Store a finished image once and mark the result succeeded; no orphan if it lost a race.

    The stored file carries no generator metadata (``images.prepare_output``): what was
    sent stays in the row's snapshot, not in a file the public page serves. It and its
    thumbnail say they are AI-made (``blogimages.provenance``).
    """
    data, info, thumbnail = prepare_output(data, provenance.for_result(result))
    cost = _finished_cost(result, fields)
    with stored_image(data, info.content_type, thumbnail) as (name, thumb):
        result.move(
            "succeed",
            **_stored_fields(name, thumb, info),
            progress=100,
            progress_message="done",
            finished_at=timezone.now(),
            error_message="",
            error_kind="",
            cost_estimate=cost,
            **fields,
        )


def _finished_cost(result: ImageGenerationResult, fields: dict[str, Any]):
    """The finished image's cost: from the usage its provider reported, where the price
    table can price it, else the estimate made when it was queued. A price table that
    cannot be read (an operator's typo) keeps the estimate and logs why: the image is
    paid for and stays."""
    try:
        return costs.stored(
            costs.actual_cost(
                result,
                fields.get("provider_used") or result.provider,
                fields.get("model") or result.model,
                fields.get("provider_meta") or {},
            )
        )
    except Exception:  # noqa: BLE001 - see the docstring
        logger.exception("Could not price result #%s from its usage; kept the estimate", result.pk)
        return result.cost_estimate


#: Seconds between two recovery rounds: ``blogimages.cron`` schedules one this often, and a
#: worker picking up a job runs one if none ran for this long.
RECOVER_EVERY = 10

# RQ statuses of a job that will still run (or is running) the result.
LIVE_JOB_STATUSES = {"queued", "deferred", "scheduled", "started"}

#: Seconds a just-queued result without a job in Redis is given for its on-commit enqueue.
JUST_QUEUED = 5.0

LAST_RECOVERY_KEY = "blogimages:recover:last"


@dataclass
class Recovery:
    swept: list[int]  # running without a heartbeat for STUCK_AFTER: re-queued (or failed)
    recovered: list[int]  # queued or running with no live job in Redis: re-queued


def recover_if_due(redis) -> Recovery | None:
    """Run :func:`recover` unless one ran in the last ``RECOVER_EVERY`` seconds.

    ``SET NX EX`` on the queue's Redis lets one caller a period win, however many workers
    and schedulers there are; editors' pages never call this.
    """
    if not redis.set("blogimages:recover", 1, nx=True, ex=RECOVER_EVERY - 1):
        return None
    return recover(redis)


def recover(redis) -> Recovery:
    """The workers' own recovery: sweep running results whose worker went silent, and
    re-queue queued or running results whose job Redis lost (a flush, a restart). What
    ``blogimages_requeue`` does without an operator, except retrying transient failures."""
    swept = sweep_stuck()
    recovered = []
    for result, lost, _reason in examine_active(redis, older_than=app_settings.STUCK_AFTER, exclude=swept):
        if not lost:
            continue
        try:
            recover_lost(result)
        except (InvalidTransition, ConcurrentTransition):
            continue  # it moved on by itself meanwhile
        recovered.append(result.pk)
    # For the status page: when did a round last run (is anything running them?).
    redis.set(LAST_RECOVERY_KEY, timezone.now().timestamp(), ex=86400)
    return Recovery(swept, recovered)


def examine_active(
    redis, *, older_than: float, exclude: Iterable[int] = ()
) -> Iterator[tuple[ImageGenerationResult, bool, str]]:
    """Each queued or running result, whether it is lost (no job will finish it), and why.

    A running result whose worker reported in the last ``older_than`` seconds is not lost.
    Jobs are read from Redis a page of results at a time, in one round trip.
    """
    from rq.job import Job

    now = timezone.now()
    heard_cutoff = now - timezone.timedelta(seconds=older_than)
    queued_cutoff = now - timezone.timedelta(seconds=min(JUST_QUEUED, older_than))
    active = ImageGenerationResult.objects.active().exclude(pk__in=list(exclude))
    page: list[ImageGenerationResult] = []

    def examine_page() -> Iterator[tuple[ImageGenerationResult, bool, str]]:
        ids = [r.job_id for r in page if r.job_id]
        jobs = {job.id: job for job in Job.fetch_many(ids, connection=redis) if job is not None} if ids else {}
        for result in page:
            yield result, *_examine(result, jobs.get(result.job_id), redis, heard_cutoff, queued_cutoff)

    for result in keyset(active):
        page.append(result)
        if len(page) == 200:
            yield from examine_page()
            page = []
    yield from examine_page()


def _examine(result: ImageGenerationResult, job: Any, redis: Any, heard_cutoff: Any, queued_cutoff: Any):
    from rq.worker import Worker

    if result.status == ResultStatus.RUNNING and result.heartbeat_at and result.heartbeat_at > heard_cutoff:
        seconds = (timezone.now() - result.heartbeat_at).total_seconds()
        return False, f"running, its worker reported {seconds:.0f} s ago"
    raw = job.get_status(refresh=False) if job else None
    status = str(getattr(raw, "value", raw) or "unknown")
    # Only this narrow case waits: a row committed a moment ago whose on-commit enqueue may
    # not have run, so it has no job id yet, or still the previous job's, ended. A job id
    # that Redis does not know at all is lost whatever its age.
    not_sent_yet = not result.job_id or (job is not None and status not in LIVE_JOB_STATUSES)
    if result.status == ResultStatus.QUEUED and not_sent_yet and result.queued_at and result.queued_at > queued_cutoff:
        return False, "queued a moment ago, its enqueue may still be on its way"
    if not result.job_id:
        return True, "never reached the queue"
    if job is None:
        return True, "its job is gone from Redis"
    if status not in LIVE_JOB_STATUSES:
        return True, f"its job is {status} but the result is still {result.status}"
    if status == "started" and job.worker_name:
        if not redis.exists(Worker.redis_worker_namespace_prefix + job.worker_name):
            return True, "its worker is gone"
        # A live work-horse moves its row to running within moments of taking the job; a
        # SIGKILLed one leaves the worker's key in Redis for minutes (its TTL), so the age says it.
        if result.status == ResultStatus.QUEUED and job.started_at and job.started_at < heard_cutoff:
            return True, "its job was taken but never started it (the worker died)"
    return False, f"its job is {status} in Redis"


def sweep_stuck(now=None) -> list[int]:
    """Re-queue (or fail, past MAX_ATTEMPTS) running results whose worker stopped reporting.

    RQ leaves a job "started" for many minutes when a worker and its work-horse die
    together; this bounded sweep does not wait for RQ's registry cleanup.
    """
    now = now or timezone.now()
    cutoff = now - timezone.timedelta(seconds=app_settings.STUCK_AFTER)
    swept = []
    for result in ImageGenerationResult.objects.stale(cutoff):
        try:
            if result.attempts >= app_settings.MAX_ATTEMPTS:
                result.move(
                    "fail",
                    finished_at=now,
                    error_kind=ErrorKind.TRANSIENT,
                    error_message=f"The worker stopped responding after {result.attempts} attempts.",
                )
            else:
                with transaction.atomic():
                    result.move(
                        "sweep",
                        progress=0,
                        queued_at=now,
                        progress_message="re-queued: the worker stopped responding",
                    )
                    enqueue_on_commit(result)
        except ConcurrentTransition:
            continue
        swept.append(result.pk)
    return swept


# --- sending a playground result to a section ------------------------------------------------------


def attach_to_section(result: ImageGenerationResult, section: ReviewTarget, *, user=None) -> ImageGenerationResult:
    """Make a playground result a candidate of ``section``: the same row (its provider, model,
    seed, prompt and files: its provenance) now belongs to the section's review, and the
    section's history says where it came from. Only a finished playground image can be sent;
    one already sent, or made for a section, is refused with a sentence."""
    section = section if isinstance(section, SectionReview) else as_section(section)
    post = section.post
    if user is not None:
        require(user, "generate", post)
    with transaction.atomic():
        row = ImageGenerationResult.objects.select_for_update().filter(pk=result.pk).first()
        if row is None:
            raise ValidationError({"result": f"Image #{result.pk} no longer exists."})
        if row.review_id is not None:
            raise ValidationError(
                {"result": f"Image #{row.pk} already belongs to a section; only playground images can be sent."}
            )
        if row.status != ResultStatus.SUCCEEDED or not row.image:
            raise ValidationError(
                {"result": f"Image #{row.pk} is {row.get_status_display().lower()}; only a finished image can be sent."}
            )
        review = review_for(section)
        row.review = review
        row.save(update_fields=["review", "updated_at"])
        _log(review, ReviewAction.GENERATED, user, row, comment=f"sent from the playground (#{row.pk})")
    for name in ("review", "review_id", "updated_at"):
        setattr(result, name, getattr(row, name))
    return result


# --- refining (blogimages.refining: refine, variations, upscale, reference, with lineage) -------------

from .refining import edit_options, lineage, refine  # noqa: E402, F401 - re-exported; refining uses the above

# --- editor actions the review page and the JSON API share ------------------------------------------


def refuse_removed_section(target: ReviewTarget) -> None:
    """A section removed from its post keeps its history but gets no new image (no approval,
    upload, prompt or generation); ``target`` is a :class:`Section` (present) or the review
    the review page falls back to for a removed one."""
    if isinstance(target, SectionReview) and section_of(target) is None:
        raise InvalidTransition(
            _("“%(section)s” was removed from the post; it keeps its history, but gets no new images.")
            % {"section": target.section_title or target.section_key}
        )


def upload_once(
    section: ReviewTarget,
    uploaded_file,
    *,
    user=None,
    approve_now: bool = False,
    alt_text: str | None = None,
    idempotency_key: str | None = None,
) -> ImageGenerationResult:
    """:func:`upload` (and the approved image's alt text, in the same transaction, so the
    publish hook sees it), once per ``idempotency_key``: a client that sends the same upload
    again gets the first one's result (``repeated``) and nothing new is stored."""
    alt_text = clean_alt_text(alt_text)
    with transaction.atomic():
        review = review_for(section)
        claim, earlier = _claim_request_key(idempotency_key, user, f"upload:{review.pk}")
        if earlier:
            return earlier[0]
        result = upload(section, uploaded_file, user=user, approve_now=approve_now)
        if approve_now and alt_text is not None:
            save_alt_text(result.review, alt_text)
        _record_request_key(claim, [result])
    return result


# --- Publishing without alt text (issue 11, point 8) ----------------------------------------
#
# An approved image is published with the section's alt text (SectionReview.alt_text) and
# nothing else: a generated image's prompt is no description. The review page asks before
# an approval would publish an image without one; the JSON API warns after the fact.

MISSING_ALT_TEXT = "This image will be published without alt text; screen readers will say nothing. Approve anyway?"


class MissingAltText(ValidationError):
    """The approval would publish an image without alt text and the editor did not confirm it."""

    def __init__(self, message: str | None = None, results: Iterable[ImageGenerationResult] = ()) -> None:
        super().__init__({"alt_text": message or _(MISSING_ALT_TEXT)})
        self.results = list(results)  # for several at once: the images that have none


def without_alt_text(results: Iterable[ImageGenerationResult]) -> list[ImageGenerationResult]:
    """Those of ``results`` whose section has no alt text: approved, they would be published without."""
    return [r for r in results if r.review_id is not None and not (r.review.alt_text or "").strip()]


def missing_alt_text_many(results: Sequence[ImageGenerationResult]) -> str:
    """What is said when approving several would publish ``results`` without alt text."""
    named = ", ".join(f"#{r.pk} (“{r.review.section_title or r.review.section_key}”)" for r in results)
    if len(results) == 1:
        return _(
            "Image %(images)s would be published without alt text; screen readers would say nothing. "
            "Nothing was approved: write its alt text, or approve anyway."
        ) % {"images": named}
    return _(
        "Images %(images)s would be published without alt text; screen readers would say nothing. "
        "Nothing was approved: write their alt text, or approve anyway."
    ) % {"images": named}


def check_alt_text(review: SectionReview | None, alt_text: str | None, *, allow_missing_alt: bool) -> str | None:
    """``alt_text`` as it will be saved (:func:`clean_alt_text`); :class:`MissingAltText` when
    the approved image would have none (the field empty, or absent and the section has none)
    and ``allow_missing_alt`` is false. Nothing is stored here."""
    alt_text = clean_alt_text(alt_text)
    kept = alt_text if alt_text is not None else (review.alt_text if review is not None else "")
    if not allow_missing_alt and not (kept or "").strip():
        raise MissingAltText()
    return alt_text


def approve_with_alt_text(
    result: ImageGenerationResult,
    *,
    alt_text: str | None,
    allow_missing_alt: bool = True,
    user=None,
    comment: str = "",
    replaces: int | None = UNCHECKED,
) -> SectionReview:
    """:func:`approve` and the alt text the editor confirmed (None: keep the section's), in one
    transaction so the host's publish hook sees it; refused with :class:`MissingAltText`
    before anything changes when the image would be published without alt text unless
    ``allow_missing_alt``."""
    review = SectionReview.objects.filter(pk=result.review_id).first() if result.review_id else None
    alt_text = check_alt_text(review, alt_text, allow_missing_alt=allow_missing_alt)
    with transaction.atomic():
        review = approve(result, user=user, comment=comment, replaces=replaces)
        if alt_text is not None:
            save_alt_text(review, alt_text)
    return review
