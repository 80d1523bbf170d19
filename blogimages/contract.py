"""What passes between the job and an image backend: requests, progress, results.

These types sit below both :mod:`blogimages.providers` and :mod:`blogimages.comfyui`
(which import them, never each other), and import neither. ``providers.base`` re-exports
them, so ``from blogimages.providers.base import GenerationRequest`` keeps working.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass(frozen=True)
class Lora:
    name: str
    strength: float = 1.0
    role: str = "style"  # "style", "character" or "cinematic": decides order and strength


#: What ``EditInputs.operation`` may be (the same words as ``models.Operation``, without "generate").
EDIT_OPERATIONS = ("refine", "variations", "upscale", "reference")


@dataclass(frozen=True)
class SourceImage:
    """An image a request starts from: the parent result's file as stored."""

    content: bytes
    width: int
    height: int
    content_type: str = "image/png"
    name: str = "source.png"


@dataclass(frozen=True)
class EditInputs:
    """What a refine, variation, upscale or reference request starts from.

    ``mask`` is a PNG the size of ``source``: white (255) where the image may change,
    black (0) where it must stay. Each provider converts it to its own convention
    (OpenAI: transparent = change; ComfyUI: the alpha channel; A1111: white = change).
    """

    operation: str  # one of EDIT_OPERATIONS
    source: SourceImage
    mask: bytes | None = None
    strength: float | None = None  # 0..1: how far from the source (img2img denoise); None: the provider's default
    fidelity: str = ""  # OpenAI's input_fidelity ("low" or "high"); "" where not offered
    scale: float | None = None  # upscale factor; None: to the request's width and height
    #: The prompt the source was made with. A model that draws what a prompt describes
    #: (img2img) gets a refine's instruction after it; see ``edit_prompt``.
    source_prompt: str = ""


@dataclass(frozen=True)
class GenerationRequest:
    prompt: str
    negative_prompt: str = ""
    width: int = 1024
    height: int = 1024
    steps: int | None = None
    guidance_scale: float | None = None
    sampler: str = ""
    scheduler: str = ""
    seed: int | None = None  # None: the provider picks one and reports it
    model: str = ""
    loras: tuple[Lora, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)
    result_id: int | None = None  # for logs and remote ids only
    edit: EditInputs | None = None  # None: a new image from the prompt alone


@dataclass(frozen=True)
class ModelChoice:
    """Which model a request means for one provider, decided once, in ``prepare()``.

    ``name`` is the provider's own model id, workflow or checkpoint ("" for the one the
    server has loaded); ``file`` a model file to load into a workflow; ``note`` says why
    the request's model was not used (it named another provider's) and is recorded.
    """

    name: str
    file: str = ""
    note: str = ""


@dataclass(frozen=True)
class PreparedRequest(GenerationRequest):
    """A request as one provider's ``prepare()`` left it: what ``generate()`` receives.

    A subclass, so a provider that reads only the request's fields needs no change.
    """

    provider: str = ""  # the alias that prepared it: another provider prepares it afresh
    choice: ModelChoice = ModelChoice("")
    adjustments: tuple[str, ...] = ()


def edit_prompt(request: GenerationRequest) -> str:
    """The prompt for a model that draws what a prompt describes rather than following an
    instruction (img2img, inpainting): a refine's instruction ("make the sky stormier")
    after the source's own prompt, which alone would say little to such a model."""
    edit = request.edit
    if edit is None or edit.operation != "refine" or not edit.source_prompt:
        return request.prompt
    combined = f"{edit.source_prompt}, {request.prompt}"
    # Another provider may prepare a request this one already prepared (auto's fallback).
    return request.prompt if request.prompt.startswith(f"{edit.source_prompt}, ") else combined


def plain_request(request: GenerationRequest) -> GenerationRequest:
    """The request's own fields, without what a ``prepare()`` added."""
    if type(request) is GenerationRequest:
        return request
    names = [f.name for f in dataclasses.fields(GenerationRequest)]
    return GenerationRequest(**{name: getattr(request, name) for name in names})


@dataclass
class GeneratedImage:
    content: bytes
    seed: int | None = None
    model: str = ""
    provider: str = ""  # alias that served it; ``auto`` fills in the one it chose
    remote_id: str = ""
    remote_server: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    #: Every image of a batched request (``extra["batch_size"]`` > 1, see
    #: ``BaseProvider.can_batch``) in batch order, ``content`` first; empty for one image.
    #: ``metadata["outputs"]`` may name each one, in the same order.
    batch: list[bytes] = field(default_factory=list)


@dataclass
class ProviderHealth:
    ok: bool
    detail: str = ""
    info: dict[str, Any] = field(default_factory=dict)


class ProgressReporter:
    """Passed to ``BaseProvider.generate``: report progress, learn about cancels."""

    def __init__(
        self,
        on_progress: Callable[[int, str], None] | None = None,
        is_cancelled: Callable[[], bool] | None = None,
        on_remote_id: Callable[[str, str], None] | None = None,
    ):
        self._on_progress = on_progress
        self._is_cancelled = is_cancelled
        self._on_remote_id = on_remote_id

    def progress(self, percent: float, message: str = "") -> None:
        if self._on_progress:
            self._on_progress(max(0, min(100, int(percent))), message[:200])

    def cancelled(self) -> bool:
        return bool(self._is_cancelled and self._is_cancelled())

    def remote_id(self, remote_id: str, server: str = "") -> None:
        """Record the provider's own id (and server) as soon as it is known, for cancel."""
        if self._on_remote_id:
            self._on_remote_id(remote_id, server)

    def seed(self, seed: int) -> None:
        """Record the seed the provider is about to send, before it sends it, so a result
        cancelled or failed on the way still knows it ("same seed" works for it)."""

    def preview(self, content: bytes) -> None:
        """A partial image on the way (OpenAI's streamed partial images, ComfyUI's previews):
        shown on the candidate's card while it runs; never stored as the result."""


class ForwardingReporter(ProgressReporter):
    """Passes every report to ``inner``; subclasses change or note what passes."""

    def __init__(self, inner: ProgressReporter):
        super().__init__()
        self.inner = inner

    def progress(self, percent: float, message: str = "") -> None:
        self.inner.progress(percent, message)

    def cancelled(self) -> bool:
        return self.inner.cancelled()

    def remote_id(self, remote_id: str, server: str = "") -> None:
        self.inner.remote_id(remote_id, server)

    def seed(self, seed: int) -> None:
        self.inner.seed(seed)

    def preview(self, content: bytes) -> None:
        self.inner.preview(content)


# --- request arithmetic every backend shares -------------------------------------------------------


def snap_to_multiple(value: float, multiple: int) -> int:
    """``value`` rounded half up to a multiple of ``multiple``, never below one multiple."""
    return max(multiple, int(value / multiple + 0.5) * multiple)


def snapped_size(request: GenerationRequest, multiple: int) -> tuple[int, int]:
    return snap_to_multiple(request.width, multiple), snap_to_multiple(request.height, multiple)


def sent_size(request: GenerationRequest, multiple: int, backend: str) -> tuple[int, int, list[str]]:
    """The size a backend that needs multiples of ``multiple`` is sent, and what was snapped.

    An img2img edit (refine, variations) keeps its source's size: another one would stretch
    the source and its mask. A new image, or one made with a reference, takes the request's.
    """
    edit = request.edit
    if edit is not None and edit.operation not in ("reference", "upscale"):
        asked, what = (edit.source.width, edit.source.height), "source size"
    else:
        asked, what = (request.width, request.height), "size"
    width, height = snap_to_multiple(asked[0], multiple), snap_to_multiple(asked[1], multiple)
    if (width, height) == asked:
        return width, height, []
    return (
        width,
        height,
        [f"{what} {asked[0]}x{asked[1]} snapped to {width}x{height} ({backend} needs multiples of {multiple})"],
    )


def seed_for(request: GenerationRequest, limit: int) -> int:
    """The pinned seed, else a fresh random one below ``limit`` (reported on the result)."""
    return request.seed if request.seed is not None else random.SystemRandom().randrange(limit)
