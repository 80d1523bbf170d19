"""The provider interface: what every image backend implements.

A provider turns a :class:`GenerationRequest` into a :class:`GeneratedImage`. It
raises :class:`~blogimages.exceptions.TransientProviderError` for what is worth
retrying and :class:`~blogimages.exceptions.PermanentProviderError` for what is not;
the job decides from the class. Providers know nothing of models or storage.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from django.core.exceptions import ImproperlyConfigured

# The contract types live below both this package and ``blogimages.comfyui``; they are
# re-exported here, where providers and hosts have always imported them from.
from ..contract import (
    EditInputs,
    ForwardingReporter,
    GeneratedImage,
    GenerationRequest,
    Lora,
    ModelChoice,
    PreparedRequest,
    ProgressReporter,
    ProviderHealth,
    SourceImage,
    edit_prompt,
    plain_request,
)

__all__ = [
    "BaseProvider",
    "EditInputs",
    "ForwardingReporter",
    "GeneratedImage",
    "GenerationRequest",
    "Lora",
    "ModelChoice",
    "PreparedRequest",
    "ProgressReporter",
    "ProviderHealth",
    "SourceImage",
]


class BaseProvider:
    """Subclass this and register the class by dotted path in ``BLOGIMAGES_PROVIDERS``.

    ``default_options`` lists every option the provider accepts with its default;
    an unknown option is an ``ImproperlyConfigured`` naming it.
    """

    #: Shown to editors, e.g. "ComfyUI" or "OpenAI".
    label: ClassVar[str] = "provider"
    #: What the backend is, one lowercase word ("comfyui", "openai", "auto", ...). The status
    #: page, ``blogimages_status`` and the API ask this, never the class or the label.
    kind: ClassVar[str] = "custom"
    #: Runs ComfyUI workflows (on its own servers or a hosted worker), so
    #: ``GET /api/v1/comfyui/status`` lists it.
    runs_comfyui: ClassVar[bool] = False
    #: Paid cloud APIs join ``auto`` fallback only when ENABLE_CLOUD_APIS is true.
    is_cloud: ClassVar[bool] = False
    default_options: ClassVar[dict[str, Any]] = {}
    #: The edit operations (``contract.EDIT_OPERATIONS``) this provider can run on
    #: ``request.edit``; a request for another is refused before anything is queued.
    operations: ClassVar[frozenset[str]] = frozenset()
    #: Whether the model follows an edit instruction as it is (OpenAI's, Gemini's image
    #: editing). Otherwise ``prepare()`` puts a refine's instruction after the source's
    #: prompt (``contract.edit_prompt``), as image-to-image models need a description.
    follows_instructions: ClassVar[bool] = False

    def __init__(self, alias: str, **options: Any):
        unknown = sorted(set(options) - set(self.default_options))
        if unknown:
            raise ImproperlyConfigured(
                f"BLOGIMAGES_PROVIDERS[{alias!r}]: unknown option(s) {', '.join(unknown)} for "
                f"{type(self).__name__}; it accepts {', '.join(sorted(self.default_options)) or 'none'}."
            )
        self.alias = alias
        self.options = {**self.default_options, **options}

    def choose_model(self, request: GenerationRequest) -> ModelChoice:
        """Which model ``request.model`` means here: this provider's own, or (with a note)
        its default when the name belongs to another provider. Raise PermanentProviderError
        for a name that is this provider's kind but one it does not have."""
        return ModelChoice(request.model)

    def adjust(self, request: GenerationRequest, choice: ModelChoice) -> tuple[GenerationRequest, list[str]]:
        """Check and adjust a request for ``choice``; returns it and what was changed.

        Override this (not ``prepare``): raise PermanentProviderError for what cannot be sent.
        """
        return request, []

    def prepare(self, request: GenerationRequest) -> tuple[PreparedRequest, list[str]]:
        """Check and adjust a request before any money or GPU time is spent.

        Returns the request to send and a list of adjustments (e.g. a snapped size) to
        record on the result. It is called when the editor makes the request (so errors
        show at once) and in the job, so it must be quick and make no network calls. A
        request this provider already prepared is returned as it is.
        """
        if isinstance(request, PreparedRequest) and request.provider == self.alias:
            return request, []
        request = plain_request(request)
        if request.edit is not None and not self.follows_instructions:
            request = dataclasses.replace(request, prompt=edit_prompt(request))
        choice = self.choose_model(request)
        adjusted, adjustments = self.adjust(request, choice)
        if choice.note:
            adjustments.append(choice.note)
        fields = {name: getattr(adjusted, name) for name in GenerationRequest.__dataclass_fields__}
        prepared = PreparedRequest(**fields, provider=self.alias, choice=choice, adjustments=tuple(adjustments))
        return prepared, adjustments

    def prepared(self, request: GenerationRequest) -> PreparedRequest:
        """``request`` as ``prepare()`` leaves it; a no-op for the job's already prepared request."""
        return self.prepare(request)[0]

    def generate(self, request: PreparedRequest, reporter: ProgressReporter) -> GeneratedImage:
        raise NotImplementedError

    def can_batch(self, request: GenerationRequest) -> bool:
        """Whether one ``generate()`` can make several candidates of ``request`` in one model
        pass: asked for with ``request.extra["batch_size"]``, returned in batch order in
        ``GeneratedImage.batch``. Candidates of a provider that cannot are separate jobs."""
        return False

    def edit_refusal(self, request: GenerationRequest) -> str:
        """Why this provider cannot run ``request.edit``, as a sentence for the editor ("" when
        it can). Quick and offline, like ``prepare()``: called before anything is queued and by
        ``auto`` to choose among the providers that can. Override to add limits (mask
        support, instruction length, source size)."""
        if request.edit is None or request.edit.operation in self.operations:
            return ""
        can = ", ".join(sorted(self.operations)) or "no edits"
        return f"{self.label} ({self.alias}) cannot {request.edit.operation} an image; it can do: {can}."

    def health(self) -> ProviderHealth:
        return ProviderHealth(ok=True, detail="no health check")

    def cancel(self, remote_id: str, remote_server: str = "") -> bool:
        """Stop a queued or running remote job; True if the provider acted on it."""
        return False

    def models(self) -> list[str]:
        """Model names an editor can pick for this provider (for forms and the playground)."""
        return []
