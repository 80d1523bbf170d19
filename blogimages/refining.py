"""Refining a result instead of starting over: edits, variations, upscales and new prompts
with a reference, each recorded with its parent (the lineage).

:func:`refine` checks everything before anything is stored or queued: the parent's file
is still there, the operation and its inputs make sense (a mask the size of the source,
not all black; a strength in 0..1; an upscale within the size limits), and the provider
can do it (``BaseProvider.edit_refusal`` and ``prepare``, both offline). Then, in one
transaction, it creates one queued result per candidate, in the parent's section, with
``parent``, ``operation`` and the mask (a PNG, white where the image may change) stored
beside it. The job (:func:`edit_request`) reads the parent's file and the mask again and
hands them to the provider as ``GenerationRequest.edit``.

While a result runs, a provider may send partial images (``ProgressReporter.preview``):
the newest one is kept in the queue's Redis for a few minutes (:func:`store_preview`,
:func:`preview`), for the review page's card.
"""

from __future__ import annotations

import base64
import binascii
import io
import logging
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from PIL import Image, UnidentifiedImageError

from . import costs, limits
from .conf import app_settings
from .contract import EDIT_OPERATIONS, EditInputs, GenerationRequest, SourceImage
from .exceptions import InvalidTransition, PermanentProviderError, TransientProviderError
from .images import CONTENT_TYPES, strict_decoding
from .models import ImageGenerationResult, Operation, ResultStatus, ReviewAction
from .prompts import request_from_snapshot, resolve_params
from .providers import UnknownProvider, providers
from .storage import EXTENSIONS, delete_quietly, get_storage, save_bytes, storage_error_reason, storage_errors

logger = logging.getLogger("blogimages.refining")

#: Operations that need an instruction (what to change, or the new prompt).
NEEDS_INSTRUCTION = ("refine", "reference")
#: The storage folder masks go to (beside "images" and "thumbnails").
MASK_KIND = "masks"
#: What editors read for each operation, in sentences.
VERBS = {
    "refine": "refine an image",
    "variations": "make variations of an image",
    "upscale": "upscale an image",
    "reference": "use an image as a reference",
}


# --- the entry point ------------------------------------------------------------------------------


def refine(
    parent: ImageGenerationResult,
    *,
    operation: str,
    instruction: str = "",
    mask: Any = None,
    strength: float | None = None,
    fidelity: str = "",
    scale: float | None = None,
    provider: str | None = None,
    candidates: int = 1,
    user=None,
    idempotency_key: str | None = None,
) -> list[ImageGenerationResult]:
    """Queue ``candidates`` new results made from ``parent`` by ``operation`` (one of
    ``contract.EDIT_OPERATIONS``); see the module's docstring. Bad input raises
    ValidationError keyed by the field (``parent``, ``operation``, ``instruction``, ``mask``,
    ``strength``, ``fidelity``, ``scale``, ``provider``, ``candidates``) before anything is
    stored or queued; a user who may not generate for the post gets PermissionDenied.
    A repeated ``idempotency_key`` answers with the first request's results (``repeated``)."""
    from . import services

    found = ImageGenerationResult.objects.select_related("review", "style", "image_format").filter(pk=parent.pk)
    parent = found.first()
    if parent is None:
        raise ValidationError({"parent": "The image to start from no longer exists."})
    _check_permission(user, parent)
    if operation not in EDIT_OPERATIONS:
        raise ValidationError(
            {"operation": f"Unknown operation {operation!r}; choose one of {', '.join(EDIT_OPERATIONS)}."}
        )
    source = read_source(parent)
    errors: dict[str, list[str]] = {}

    def check(field: str, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ValidationError as exc:
            for name, messages in (exc.message_dict if hasattr(exc, "error_dict") else {field: exc.messages}).items():
                errors.setdefault(name, []).extend(messages)
            return None

    instruction = check("instruction", _check_instruction, operation, instruction)
    strength = check("strength", limits.check_strength, strength)
    fidelity = check("fidelity", limits.check_fidelity, fidelity) or ""
    size = check("scale", _target_size, operation, scale, parent, source)
    mask_png = check("mask", _check_mask, operation, mask, source) if mask is not None else None
    count = check("candidates", services._check_candidates, candidates)
    if errors:
        raise ValidationError(errors)
    width, height, scale = size

    edit = EditInputs(
        operation=operation,
        source=source,
        mask=mask_png,
        strength=strength,
        fidelity=fidelity,
        scale=scale,
        source_prompt=parent.final_prompt,
    )
    probe = GenerationRequest(prompt=instruction or parent.final_prompt, width=width, height=height, edit=edit)
    alias = _choose_provider(parent, provider, probe)
    prompt, final_prompt = _prompts(parent, operation, instruction)
    params = _params(parent, alias, operation, (width, height), edit)
    request = replace(request_from_snapshot(final_prompt, params, seed=None, result_id=None), edit=edit)
    _preflight(alias, request)
    estimate = costs.estimate(alias, final_prompt, params)

    results: list[ImageGenerationResult] = []
    written: list[str] = []
    operation_key = f"refine:{parent.pk}:{operation}:{alias}:{uuid.uuid5(uuid.NAMESPACE_OID, repr(params))}"
    try:
        with transaction.atomic():
            claim, earlier = services._claim_request_key(idempotency_key, user, operation_key)
            if earlier is not None:
                return earlier
            # Before any row exists: a refusal leaves nothing behind (see costs.reserve).
            costs.reserve(user, (estimate or costs.ZERO) * count)
            group, now = uuid.uuid4(), timezone.now()
            for _ in range(count):
                mask_name = ""
                if mask_png is not None:  # one file per result: deleting one result deletes its own
                    mask_name = save_bytes(mask_png, "image/png", kind=MASK_KIND)
                    written.append(mask_name)
                result = ImageGenerationResult.objects.create(
                    group=group,
                    review=parent.review,
                    parent=parent,
                    operation=operation,
                    mask=mask_name,
                    prompt_example_id=parent.prompt_example_id,
                    style_id=parent.style_id,
                    image_format_id=parent.image_format_id,
                    setting_id=parent.setting_id,
                    prompt=prompt,
                    final_prompt=final_prompt,
                    negative_prompt=params["negative_prompt"],
                    provider=alias,
                    model=params["model"],
                    params=params,
                    seed_pinned=False,
                    seed=None,
                    requested_by=user if user is not None and user.is_authenticated else None,
                    queued_at=now,
                    cost_estimate=costs.stored(estimate),
                    charged_at=now,
                )
                results.append(result)
                if parent.review_id:
                    # No action of its own (ReviewAction would need a migration): "generated",
                    # the comment saying what it was made from.
                    services._log(
                        parent.review, ReviewAction.GENERATED, user, result, comment=_history_comment(operation, parent)
                    )
                services.enqueue_on_commit(result)
            services._record_request_key(claim, results)
    except BaseException:
        for name in written:
            delete_quietly(name)
        raise
    return results


def _history_comment(operation: str, parent: ImageGenerationResult) -> str:
    return f"{Operation(operation).label} from #{parent.pk}"


def _check_permission(user, parent: ImageGenerationResult) -> None:
    from . import services

    if user is None:
        return  # scripts and jobs: the caller decided
    post = parent.review.post if parent.review_id else None
    services.require(user, "generate", post)


# --- checks ----------------------------------------------------------------------------------------


def read_source(parent: ImageGenerationResult, content: bytes | None = None) -> SourceImage:
    """The parent's stored image (``content``: its bytes, already read) as a
    :class:`SourceImage`, or ValidationError("parent") saying why it cannot be one."""
    if parent.status != ResultStatus.SUCCEEDED or not parent.image:
        status = parent.get_status_display().lower()
        raise ValidationError({"parent": f"Result #{parent.pk} has no finished image ({status}) to start from."})
    try:
        if content is None:
            content = _read(parent.image.name)
    except FileNotFoundError:
        raise ValidationError({"parent": _gone(parent)}) from None
    except storage_errors() as exc:
        why = storage_error_reason(exc)
        raise ValidationError(
            {"parent": f"The image of result #{parent.pk} could not be read from storage ({why})."}
        ) from None
    try:
        with strict_decoding(), warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(content)) as image:
                width, height, fmt = image.width, image.height, image.format
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ValidationError({"parent": f"The stored image of result #{parent.pk} is not a readable image."}) from None
    if problem := limits.edit_source_problem(width, height):
        raise ValidationError({"parent": problem})
    content_type = CONTENT_TYPES.get(fmt or "", parent.content_type or "image/png")
    return SourceImage(
        content=content,
        width=width,
        height=height,
        content_type=content_type,
        name=f"source-{parent.pk}.{EXTENSIONS.get(content_type, 'png')}",
    )


def _gone(parent: ImageGenerationResult) -> str:
    return f"The image of result #{parent.pk} is no longer in storage; it cannot be refined."


def _read(name: str) -> bytes:
    storage = get_storage()
    if not storage.exists(name):
        raise FileNotFoundError(name)
    with storage.open(name, "rb") as fh:
        return fh.read()


def _check_instruction(operation: str, instruction: Any) -> str:
    if instruction is None:
        instruction = ""
    if not isinstance(instruction, str):
        raise ValidationError({"instruction": f"The instruction must be text, not {instruction!r}."})
    instruction = instruction.strip()
    if operation in NEEDS_INSTRUCTION and not instruction:
        what = "say what to change" if operation == "refine" else "write the new prompt"
        raise ValidationError({"instruction": f"The instruction is required to {VERBS[operation]}: {what}."})
    if operation not in NEEDS_INSTRUCTION and instruction:
        raise ValidationError({"instruction": f"An instruction is not used to {VERBS[operation]}; leave it empty."})
    if len(instruction) > limits.PROMPT_MAX:
        raise ValidationError(
            {"instruction": f"The instruction is {len(instruction)} characters; the limit is {limits.PROMPT_MAX}."}
        )
    return instruction


def _target_size(
    operation: str, scale: Any, parent: ImageGenerationResult, source: SourceImage
) -> tuple[int, int, float | None]:
    """(width, height, factor) of the new image: the source's size, or for an upscale the
    source's times ``scale`` (None: up to the parent's format size when that is larger, else 2)."""
    if operation != "upscale":
        if scale not in (None, ""):
            raise ValidationError({"scale": "An upscale factor is only used to upscale; leave it empty."})
        return source.width, source.height, None
    if scale in (None, ""):
        fmt = parent.image_format
        larger = fmt is not None and fmt.width >= source.width and fmt.height >= source.height
        if larger and (fmt.width, fmt.height) != (source.width, source.height):
            factor = max(fmt.width / source.width, fmt.height / source.height)
            limits.check_scale(factor, source.width, source.height)
            return fmt.width, fmt.height, round(factor, 4)
        scale = 2
    width, height = limits.check_scale(scale, source.width, source.height)
    return width, height, float(scale)


def _check_mask(operation: str, mask: Any, source: SourceImage) -> bytes:
    if operation != "refine":
        raise ValidationError({"mask": f"A mask limits a refine; it is not used to {VERBS[operation]}."})
    return normalise_mask(mask, (source.width, source.height))


def normalise_mask(mask: Any, size: tuple[int, int]) -> bytes:
    """``mask`` (an uploaded file, a file object, bytes or a base64 data URL) as an L-mode PNG of
    exactly ``size``: 255 where the image may change, 0 where it must stay.

    Painted on a transparent canvas, the paint counts (transparent is "keep"); otherwise bright
    is "change". Values are made black or white at the half-way mark. ValidationError("mask")
    for something that is not an image, another size, or all black (nothing would change)."""
    data = _mask_bytes(mask)
    try:
        with strict_decoding(), warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                image.load()
                has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
                pixels = image.convert("RGBA") if has_alpha else image.convert("L")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ValidationError({"mask": f"The mask is not a readable PNG, JPEG or WebP image ({exc})."}) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ValidationError({"mask": "The mask is too large to decode safely."}) from None
    if pixels.size != tuple(size):
        raise ValidationError(
            {
                "mask": f"The mask is {pixels.width}x{pixels.height} pixels; it must be the size of the image, "
                f"{size[0]}x{size[1]}."
            }
        )
    if has_alpha:
        black = Image.new("RGBA", pixels.size, (0, 0, 0, 255))
        pixels = Image.alpha_composite(black, pixels).convert("L")
    binary = pixels.point(lambda value: 255 if value >= 128 else 0)
    if binary.getbbox() is None:
        raise ValidationError(
            {"mask": "The mask is all black, so nothing would change; paint the area to change in white."}
        )
    buffer = io.BytesIO()
    binary.save(buffer, format="PNG")
    return buffer.getvalue()


def _mask_bytes(mask: Any) -> bytes:
    limit = app_settings.UPLOAD_MAX_BYTES
    if isinstance(mask, str):
        text = mask.split(",", 1)[1] if mask.startswith("data:") else mask
        try:
            data = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise ValidationError(
                {"mask": "The mask must be an image file, or a PNG as base64 or a data: URL."}
            ) from None
    elif isinstance(mask, (bytes, bytearray, memoryview)):
        data = bytes(mask)
    elif hasattr(mask, "read"):
        size = getattr(mask, "size", None)
        if size is not None and size > limit:
            raise ValidationError({"mask": f"The mask file is larger than the {limit // 1024 // 1024} MB limit."})
        data = mask.read(limit + 1)
    else:
        raise ValidationError({"mask": f"The mask must be an image file, not {type(mask).__name__}."})
    if len(data) > limit:
        raise ValidationError({"mask": f"The mask file is larger than the {limit // 1024 // 1024} MB limit."})
    if not data:
        raise ValidationError({"mask": "The mask file is empty."})
    return data


# --- the provider ---------------------------------------------------------------------------------


def _auto_alias() -> str | None:
    if "auto" in providers:
        return "auto"
    for alias in providers.aliases:
        try:
            if providers[alias].kind == "auto":
                return alias
        except Exception:  # noqa: BLE001, S112 - a misconfigured alias is not the automatic one
            continue
    return None


def _refusal(alias: str, request: GenerationRequest) -> str:
    try:
        return providers[alias].edit_refusal(request)
    except UnknownProvider as exc:
        return str(exc)
    except Exception as exc:  # noqa: BLE001 - a provider that cannot even answer cannot do it
        return f"{alias} is not usable ({exc.__class__.__name__}: {exc})"


def default_provider(parent: ImageGenerationResult, request: GenerationRequest | None = None) -> str:
    """The parent's provider when it can do ``request``'s kind of edit, else ``auto`` (when
    configured) when it can, else the parent's provider (or ``auto``, or the default one),
    whose refusal then says why. A parent's provider that can do the operation but not as
    asked (a fidelity, a mask) keeps the request, so its refusal says what to change rather
    than another provider quietly ignoring what was asked."""
    own = parent.provider if parent.provider in providers else ""
    if own and (request is None or request.edit is None or request.edit.operation in providers[own].operations):
        return own
    auto = _auto_alias()
    if auto and (request is None or not _refusal(auto, request)):
        return auto
    return own or auto or app_settings.DEFAULT_PROVIDER


def _choose_provider(parent: ImageGenerationResult, alias: str | None, request: GenerationRequest) -> str:
    alias = (alias or "").strip()
    if not alias:
        alias = default_provider(parent, request)
    if alias not in providers:
        defined = ", ".join(providers.aliases) or "none"
        raise ValidationError({"provider": f"No provider {alias!r}; BLOGIMAGES_PROVIDERS defines {defined}."})
    if refusal := _refusal(alias, request):
        raise ValidationError({"provider": refusal})
    return alias


def _preflight(alias: str, request: GenerationRequest) -> None:
    """The provider's own offline check (``prepare``), as for a new image."""
    try:
        providers[alias].prepare(request)
    except PermanentProviderError as exc:
        raise ValidationError({"provider": f"{alias}: {exc}"}) from exc


def _prompts(parent: ImageGenerationResult, operation: str, instruction: str) -> tuple[str, str]:
    """(prompt, final prompt): a refine sends its instruction as it is; a new prompt with a
    reference gets the parent's style; variations and upscales keep the parent's prompt."""
    if operation == "refine":
        return instruction, instruction
    if operation == "reference":
        return instruction, parent.style.apply(instruction) if parent.style_id else instruction
    return parent.prompt, parent.final_prompt


def _params(
    parent: ImageGenerationResult, alias: str, operation: str, size: tuple[int, int], edit: EditInputs
) -> dict[str, Any]:
    """The new result's snapshot: the parent's settings (an upload's: the defaults), the new
    size, a fresh seed, and what the edit asked for under ``"edit"``."""
    params = dict(parent.params) if parent.params else resolve_params()
    params.pop("batch_index", None)
    for name, default in (("negative_prompt", ""), ("loras", []), ("extra", {}), ("model", "")):
        params.setdefault(name, default)
    if parent.provider != alias:
        params["model"] = ""  # the parent's model belongs to its provider; this one uses its own default
    params["width"], params["height"] = size
    params["seed"] = None
    params["edit"] = {
        "operation": operation,
        "parent": parent.pk,
        "strength": edit.strength,
        "fidelity": edit.fidelity,
        "scale": edit.scale,
    }
    return params


def edit_options(parent: ImageGenerationResult, provider: str | None = None) -> dict[str, Any]:
    """What the refine dialog may offer for ``parent`` on ``provider`` (None: the default one),
    offline: ``{"provider", "operations": {operation: "" or why not}, "strength": bool,
    "fidelity": [values]}``. A parent without a readable image refuses every operation."""
    width, height = parent.width or 1024, parent.height or 1024
    source = SourceImage(content=b"", width=width, height=height, content_type=parent.content_type or "image/png")
    alias = (provider or "").strip() or default_provider(parent)
    operations: dict[str, str] = {}
    unusable = ""
    if parent.status != ResultStatus.SUCCEEDED or not parent.image:
        unusable = f"Result #{parent.pk} has no finished image to start from."
    elif alias not in providers:
        unusable = f"No provider {alias!r}."
    for operation in EDIT_OPERATIONS:
        if unusable:
            operations[operation] = unusable
            continue
        edit = EditInputs(operation=operation, source=source)
        request = GenerationRequest(prompt="-" if operation in NEEDS_INSTRUCTION else "", edit=edit)
        refusal = _refusal(alias, request)
        if refusal and provider is None and alias != (auto := _auto_alias() or alias):
            refusal = _refusal(auto, request) and refusal  # the default falls back to auto per operation
        operations[operation] = refusal
    strength, fidelity = False, []
    if not unusable:
        instance = providers[alias]
        probe = GenerationRequest(prompt="-", edit=EditInputs(operation="refine", source=source))
        offers = getattr(instance, "edit_offers", None)
        if callable(offers):
            found = offers(probe)
            strength, fidelity = bool(found.get("strength")), list(found.get("fidelity") or [])
        else:
            strength = bool(set(instance.operations) & {"refine", "variations"})
    return {"provider": alias, "operations": operations, "strength": strength, "fidelity": fidelity}


# --- lineage --------------------------------------------------------------------------------------

#: The longest chain :func:`lineage` follows (a guard, not a limit editors meet).
LINEAGE_MAX = 100


def lineage(result: ImageGenerationResult) -> list[ImageGenerationResult]:
    """The chain from the original image to ``result``, oldest first, ``result`` last. It stops
    at an ancestor that was deleted (its child's ``parent`` is then empty)."""
    chain = [result]
    seen = {result.pk}
    current = result
    while current.parent_id and len(chain) < LINEAGE_MAX:
        parent = ImageGenerationResult.objects.filter(pk=current.parent_id).first()
        if parent is None or parent.pk in seen:
            break
        chain.append(parent)
        seen.add(parent.pk)
        current = parent
    return list(reversed(chain))


class NewFiles:
    """Names of files written for rows that may not be saved (see :func:`new_files`)."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def copy(self, name: str, kind: str = MASK_KIND) -> str:
        content_type = next((ct for ct, ext in EXTENSIONS.items() if name.endswith(f".{ext}")), "image/png")
        stored = save_bytes(_read(name), content_type, kind=kind)
        self.names.append(stored)
        return stored


@contextmanager
def new_files() -> Iterator[NewFiles]:
    """Files written inside the block are deleted again if it raises: no orphans."""
    files = NewFiles()
    try:
        yield files
    except BaseException:
        for name in files.names:
            delete_quietly(name)
        raise


def lineage_fields(result: ImageGenerationResult, files: NewFiles) -> dict[str, Any]:
    """The fields a regenerated copy of ``result`` takes to re-run the same edit from the same
    parent (its own copy of the mask); ``{}`` for an image made from a prompt."""
    if result.operation == Operation.GENERATE:
        return {}
    if result.parent_id is None:
        raise InvalidTransition(
            f"The image result #{result.pk} was made from has been deleted, so it cannot be made again; "
            "refine another image instead."
        )
    mask = ""
    if result.mask:
        try:
            mask = files.copy(result.mask.name)
        except FileNotFoundError:
            raise InvalidTransition(
                f"The mask of result #{result.pk} is no longer in storage; refine the image again with a new mask."
            ) from None
    return {"parent_id": result.parent_id, "operation": result.operation, "mask": mask}


# --- the job --------------------------------------------------------------------------------------


def edit_request(result: ImageGenerationResult, request: GenerationRequest) -> GenerationRequest:
    """``request`` with ``edit`` filled from ``result``'s parent and mask as stored now; the
    request itself for an image made from a prompt. PermanentProviderError when the parent or
    its file is gone, TransientProviderError when storage cannot be read now."""
    if result.operation == Operation.GENERATE:
        return request
    recorded = result.params.get("edit") or {}
    parent_id = result.parent_id or recorded.get("parent")
    parent = ImageGenerationResult.objects.filter(pk=result.parent_id).first() if result.parent_id else None
    if parent is None:
        raise PermanentProviderError(
            f"The image this {Operation(result.operation).label.lower()} starts from "
            f"(#{parent_id or '?'}) was deleted; refine another image instead."
        )
    try:
        content = _read(parent.image.name) if parent.image else None
    except FileNotFoundError:
        raise PermanentProviderError(_gone(parent)) from None
    except storage_errors() as exc:  # storage down: worth another attempt
        raise TransientProviderError(
            f"The image of result #{parent.pk} could not be read from storage ({storage_error_reason(exc)})."
        ) from exc
    try:
        source = read_source(parent, content)
    except ValidationError as exc:
        raise PermanentProviderError(" ".join(exc.messages)) from None
    mask = None
    if result.mask:
        try:
            mask = _read(result.mask.name)
        except FileNotFoundError:
            raise PermanentProviderError(
                f"The mask of result #{result.pk} is no longer in storage; refine the image again."
            ) from None
        except storage_errors() as exc:
            raise TransientProviderError(f"The mask could not be read ({storage_error_reason(exc)}).") from exc
    edit = EditInputs(
        operation=result.operation,
        source=source,
        mask=mask,
        strength=recorded.get("strength"),
        fidelity=recorded.get("fidelity") or "",
        scale=recorded.get("scale"),
        source_prompt=parent.final_prompt,
    )
    return replace(request, edit=edit)


# --- live previews --------------------------------------------------------------------------------

PREVIEW_TTL = 600  # seconds a partial image is kept after the last one arrived
PREVIEW_SIDE = 512  # the longest side it is kept at
PREVIEW_KEY = "blogimages:preview:{}"
PREVIEW_COUNT_KEY = "blogimages:preview:{}:count"


def _redis():
    import django_rq

    return django_rq.get_connection(app_settings.QUEUE)


def small_preview(content: bytes) -> bytes | None:
    """A partial image downscaled to at most PREVIEW_SIDE px as WebP; None if it cannot be read."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(content)) as image:
                image.draft("RGB", (PREVIEW_SIDE, PREVIEW_SIDE))
                pixels = image.convert("RGB")
    except Exception:  # noqa: BLE001 - a preview that cannot be read is skipped, never an error
        return None
    pixels.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    pixels.save(buffer, format="WEBP", quality=70, method=0)
    return buffer.getvalue()


def store_preview(result_ids: list[int], content: bytes) -> bool:
    """Keep ``content`` as the newest preview of each result; False (logged) where it could not be."""
    data = small_preview(content)
    if data is None:
        logger.info("A preview for result(s) %s is not a readable image; skipped", result_ids)
        return False
    try:
        pipe = _redis().pipeline(transaction=False)
        for result_id in result_ids:
            pipe.set(PREVIEW_KEY.format(result_id), data, ex=PREVIEW_TTL)
            pipe.incr(PREVIEW_COUNT_KEY.format(result_id))
            pipe.expire(PREVIEW_COUNT_KEY.format(result_id), PREVIEW_TTL)
        pipe.execute()
    except Exception:  # noqa: BLE001 - a lost preview costs nothing but the preview
        logger.warning("Could not keep the preview of result(s) %s", result_ids, exc_info=True)
        return False
    return True


def preview(result_id: int) -> bytes | None:
    """The newest partial image of a running result (WebP, small), or None."""
    try:
        return _redis().get(PREVIEW_KEY.format(result_id))
    except Exception:  # noqa: BLE001
        logger.warning("Could not read the preview of result #%s", result_id, exc_info=True)
        return None


def preview_count(result_id: int) -> int:
    """How many previews result ``result_id`` has had (0: none, or they expired)."""
    try:
        return int(_redis().get(PREVIEW_COUNT_KEY.format(result_id)) or 0)
    except Exception:  # noqa: BLE001
        return 0


# --- live previews for a page of cards -------------------------------------------------------------


def preview_counts(result_ids: list[int]) -> dict[int, int]:
    """How many previews each of ``result_ids`` has had, in one Redis MGET (the review page and
    the playground ask for all their running cards at once); results without one are left out,
    and so is everything when Redis cannot answer (a preview is never worth an error)."""
    if not result_ids:
        return {}
    try:
        values = _redis().mget([PREVIEW_COUNT_KEY.format(pk) for pk in result_ids])
    except Exception:  # noqa: BLE001
        logger.warning("Could not read the previews of results %s", result_ids, exc_info=True)
        return {}
    return {pk: int(value) for pk, value in zip(result_ids, values, strict=True) if value and int(value) > 0}
