"""The provider interface: what every image backend implements.

A provider turns a :class:`GenerationRequest` into a :class:`GeneratedImage`. It
raises :class:`~blogimages.exceptions.TransientProviderError` for what is worth
retrying and :class:`~blogimages.exceptions.PermanentProviderError` for what is not;
the job decides from the class. Providers know nothing of models or storage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

from django.core.exceptions import ImproperlyConfigured


@dataclass(frozen=True)
class Lora:
    name: str
    strength: float = 1.0
    role: str = "style"  # "style", "character" or "cinematic": decides order and strength


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


@dataclass
class GeneratedImage:
    content: bytes
    content_type: str = "image/png"
    seed: int | None = None
    model: str = ""
    provider: str = ""  # alias that served it; ``auto`` fills in the one it chose
    remote_id: str = ""
    remote_server: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class ProviderHealth:
    ok: bool
    detail: str = ""
    info: dict[str, Any] = field(default_factory=dict)


def retry_after_seconds(value: str | None) -> float | None:
    """A ``Retry-After`` header given in seconds, or None (HTTP dates are not honoured)."""
    return float(value) if value and value.strip().isdigit() else None


class ProgressReporter:
    """Passed to :meth:`BaseProvider.generate`: report progress, learn about cancels."""

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


class BaseProvider:
    """Subclass this and register the class by dotted path in ``BLOGIMAGES_PROVIDERS``.

    ``default_options`` lists every option the provider accepts with its default;
    an unknown option is an ``ImproperlyConfigured`` naming it.
    """

    #: Shown to editors, e.g. "ComfyUI" or "OpenAI".
    label: ClassVar[str] = "provider"
    #: Paid cloud APIs join ``auto`` fallback only when ENABLE_CLOUD_APIS is true.
    is_cloud: ClassVar[bool] = False
    default_options: ClassVar[dict[str, Any]] = {}

    def __init__(self, alias: str, **options: Any):
        unknown = sorted(set(options) - set(self.default_options))
        if unknown:
            raise ImproperlyConfigured(
                f"BLOGIMAGES_PROVIDERS[{alias!r}]: unknown option(s) {', '.join(unknown)} for "
                f"{type(self).__name__}; it accepts {', '.join(sorted(self.default_options)) or 'none'}."
            )
        self.alias = alias
        self.options = {**self.default_options, **options}

    def prepare(self, request: GenerationRequest) -> tuple[GenerationRequest, list[str]]:
        """Check and adjust a request before any money or GPU time is spent.

        Returns the request to send and a list of adjustments (e.g. a snapped size) to
        record on the result. Raise PermanentProviderError for what cannot be sent.
        It is called twice: when the editor makes the request (so errors show at once)
        and again in the job, so it must be quick, idempotent and make no network calls.
        """
        return request, []

    def generate(self, request: GenerationRequest, reporter: ProgressReporter) -> GeneratedImage:
        raise NotImplementedError

    def health(self) -> ProviderHealth:
        return ProviderHealth(ok=True, detail="no health check")

    def cancel(self, remote_id: str, remote_server: str = "") -> bool:
        """Stop a queued or running remote job; True if the provider acted on it."""
        return False

    def models(self) -> list[str]:
        """Model names an editor can pick for this provider (for forms and the playground)."""
        return []
