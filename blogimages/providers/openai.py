"""OpenAI's image API (and servers that speak it: Azure OpenAI, LiteLLM) through the official client.

What a model accepts is data (:mod:`.capabilities`), checked in :meth:`prepare` before
any money is spent. So is when OpenAI shuts a model down (:mod:`.lifecycle`): the table's
date, or the one ``GET /v1/models`` reports, read at most once a day. A model past that
date is refused, naming its successor, or sent to the one ``BLOGIMAGES_OPENAI_MODEL_REPLACEMENTS``
names (recorded on the result like a snapped size). The client is built with
``max_retries=0``: the job owns retries, so a 429 is not retried twice over and the
editor sees one count of attempts.

Edits go to ``POST /v1/images/edits`` (``client.images.edit``): a refine sends the source
image, the instruction and the mask (converted to OpenAI's convention: a PNG of the same
size whose fully transparent pixels are the area to change); a new prompt with a
reference sends the source as a reference image (``image[]``). GPT image models have no
variations endpoint (DALL·E 2's was retired with it), so a variation is an edit of the
source with the parent's prompt and an instruction to keep the composition and change
the details (recorded as an adjustment). OpenAI cannot upscale; such a request is refused
before it is queued. Where the model streams, the edit is sent with ``stream=True`` and
``partial_images``; each partial image goes to ``reporter.preview`` (the card's live
preview) and the ``image_edit.completed`` event carries the image and its usage.
"""

from __future__ import annotations

import binascii
import io
import logging
import math
import os
import threading
import time
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from ..conf import app_settings
from ..contract import (
    GeneratedImage,
    GenerationRequest,
    ModelChoice,
    PreparedRequest,
    ProgressReporter,
    ProviderHealth,
    plain_request,
)
from ..exceptions import GenerationCancelled, PermanentProviderError, TransientProviderError
from ..remote import BlockingCall, decode_base64_image, is_transient_status, retry_after
from . import lifecycle
from .base import BaseProvider
from .capabilities import CHOICE_KEYS, DEFAULT_MODEL, ModelCaps, build_table, parse_size

logger = logging.getLogger("blogimages.providers.openai")

SAFETY_CODES = {"moderation_blocked", "content_policy_violation"}
# A 429 that waiting cannot fix: the account is out of money, not over a rate.
QUOTA_CODES = {"insufficient_quota", "billing_hard_limit_reached", "billing_not_active"}
NOT_CONFIGURED = (
    "OpenAI is not configured: set OPENAI_API_KEY (or the older OPENAI_AUTH_TOKEN) in the environment, "
    "or the provider's 'api_key' option."
)
INSTALL_HINT = "The OpenAI provider needs the openai package: pip install blogimages[openai]"
POLL_EVERY = 0.5  # how often the job checks for cancel (and heartbeats) while OpenAI works
# How OpenAI's image model ids begin. An unknown id that begins so is a typo or a retired
# model (an error); any other is another provider's model from a shared setting.
OPENAI_MODEL_PREFIXES = ("gpt-", "dall-e", "chatgpt-")
#: What a variation asks of the edits endpoint, before the parent's prompt.
VARIATION_INSTRUCTION = "Make a variation of this image: keep its composition and subject, change the details."
# [EDIT] in capabilities.py: each image "less than 50MB", the mask "less than 4MB".
EDIT_IMAGE_MAX_BYTES = 50 * 1024 * 1024
EDIT_MASK_MAX_BYTES = 4 * 1024 * 1024
#: Edit parameters the images API takes only for new images (not sent with an edit).
NOT_FOR_EDITS = ("style", "moderation")


class OpenAIImagesProvider(BaseProvider):
    label = "OpenAI"
    kind = "openai"
    is_cloud = True
    operations = frozenset({"refine", "variations", "reference"})
    follows_instructions = True  # gpt-image edits take "make the sky stormier" as it is
    default_options = {
        # None: settings.OPENAI_API_KEY, env OPENAI_API_KEY, then env OPENAI_AUTH_TOKEN.
        "api_key": None,
        # None: env OPENAI_BASE_URL, else api.openai.com. E.g. "https://<name>.openai.azure.com/openai/v1/".
        "base_url": None,
        "organization": None,
        "default_headers": {},
        "model": DEFAULT_MODEL,  # used when the request names no model
        # Defaults for requests that do not set them in extra; "" lets the API decide.
        "quality": "",
        "background": "",
        "output_format": "",
        "style": "",
        "moderation": "",
        "complexity": "",
        "timeout": 180.0,  # seconds for one image; keep below BLOGIMAGES_STUCK_AFTER
        "health_timeout": 5.0,  # also bounds the daily read of GET /models for shutdown dates
        "models": {},  # capability table additions and overrides, see capabilities.py
        # Partial images an edit streams as live previews (0..3; 0: no streaming). Each costs
        # 100 output tokens more (OpenAI's image generation guide); the model's table entry caps it.
        "partial_images": 2,
    }

    def __init__(self, alias: str, **options: Any):
        super().__init__(alias, **options)
        try:
            import openai  # noqa: F401
        except ImportError as exc:
            raise ImproperlyConfigured(f"BLOGIMAGES_PROVIDERS[{alias!r}]: {INSTALL_HINT}.") from exc
        self.table = build_table(self.options["models"], alias=alias)
        default = self.options["model"]
        if default not in self.table:
            raise ImproperlyConfigured(
                f"BLOGIMAGES_PROVIDERS[{alias!r}]: model {default!r} is not in the capability table; "
                f"add it under OPTIONS['models'] or pick one of {', '.join(self.models())}."
            )
        self._clients: dict[tuple[str, str | None], Any] = {}
        self._lock = threading.Lock()

    # --- configuration ------------------------------------------------------------------------

    def api_key(self) -> str:
        return (
            self.options["api_key"]
            or getattr(settings, "OPENAI_API_KEY", None)
            or os.environ.get("OPENAI_API_KEY")
            or os.environ.get("OPENAI_AUTH_TOKEN")
            or ""
        )

    def base_url(self) -> str | None:
        return self.options["base_url"] or os.environ.get("OPENAI_BASE_URL") or None

    def client(self):
        """The openai client for the current key and base URL (read at call time, so env changes apply)."""
        key = self.api_key()
        if not key:
            raise PermanentProviderError(NOT_CONFIGURED)
        base_url = self.base_url()
        with self._lock:
            client = self._clients.get((key, base_url))
            if client is None:
                import openai

                client = openai.OpenAI(
                    api_key=key,
                    base_url=base_url,
                    organization=self.options["organization"],
                    default_headers=self.options["default_headers"] or None,
                    timeout=float(self.options["timeout"]),
                    max_retries=0,
                )
                self._clients[(key, base_url)] = client
            return client

    def models(self) -> list[str]:
        snapshot = self.lifecycle_snapshot()
        return [model for model, caps in self.table.items() if not lifecycle.merge(caps, snapshot).retired()]

    # --- when models shut down ------------------------------------------------------------------

    def models_url(self) -> str:
        return (self.base_url() or "https://api.openai.com/v1").rstrip("/")

    def lifecycle_snapshot(self) -> lifecycle.ModelsSnapshot | None:
        """The cached read of ``GET /models`` (no network call); None when there is none."""
        return lifecycle.cached(self.models_url())

    def lifecycle(self, model: str) -> lifecycle.Lifecycle | None:
        """``model``'s shutdown date and successor, from the cache and the table; None for a model not in the table."""
        caps = self.table.get(model)
        return None if caps is None else lifecycle.merge(caps, self.lifecycle_snapshot())

    def refresh_lifecycle(self) -> lifecycle.ModelsSnapshot | None:
        """Read ``GET /models`` unless a read (or a failed one) is still cached; never raises.

        The one network call of the lifecycle, bounded by ``health_timeout``. None without an
        API key (nothing is sent; the table applies).
        """
        snapshot = self.lifecycle_snapshot()
        if snapshot is not None or not self.api_key():
            return snapshot
        import openai

        try:
            page = self.client().with_options(timeout=float(self.options["health_timeout"])).models.list()
        except openai.OpenAIError as exc:
            logger.warning("Could not read shutdown dates from %s/models: %s", self.models_url(), _short(exc))
            return lifecycle.remember(lifecycle.failed(self.models_url(), _short(exc)))
        return lifecycle.remember(lifecycle.from_models(self.models_url(), page.data))

    def lifecycle_note(self) -> str:
        """Where shutdown dates come from now, when that is the table because the live read failed; else ""."""
        snapshot = self.lifecycle_snapshot()
        return snapshot.describe() if snapshot is not None and not snapshot.ok else ""

    def _current_model(self, model: str) -> tuple[str, str]:
        """The model to send for ``model`` and a note when it was swapped for its successor.

        Raises PermanentProviderError for a model past its shutdown date that
        BLOGIMAGES_OPENAI_MODEL_REPLACEMENTS does not map.
        """
        lc = self.lifecycle(model)
        if lc is None or not lc.retired():
            return model, ""
        said = "" if lc.source == lifecycle.TABLE else f" ({lifecycle.LIVE})"
        successor = (app_settings.OPENAI_MODEL_REPLACEMENTS or {}).get(model)
        if not successor:
            # The operator's way out (a successor in BLOGIMAGES_OPENAI_MODEL_REPLACEMENTS) is
            # named by check W040 and the status page, which operators read; editors read this.
            raise PermanentProviderError(f"OpenAI retired {lc.label} ({model}) on {lc.shutdown}{said}; {lc.instead()}.")
        target = self.lifecycle(successor)
        if target is None or target.retired():
            why = "is not a model this site knows" if target is None else f"was itself retired on {target.shutdown}"
            raise PermanentProviderError(
                f"OpenAI retired {model} on {lc.shutdown}{said}, and {lifecycle.SETTING} sends it to "
                f"{successor!r}, which {why}; {lc.instead()}."
            )
        note = f"model {model} was retired by OpenAI on {lc.shutdown}; sent {successor} ({lifecycle.SETTING})"
        return successor, note

    # --- checking a request ---------------------------------------------------------------------

    def choose_model(self, request: GenerationRequest) -> ModelChoice:
        """The model id; a name that is neither in the table nor shaped like OpenAI's is
        another provider's (a ComfyUI workflow or a checkpoint from a shared setting)."""
        model = request.model or self.options["model"]
        if model in self.table or model.lower().startswith(OPENAI_MODEL_PREFIXES):
            return ModelChoice(model)
        default = self.options["model"]
        return ModelChoice(default, note=f"model {model!r} is not an OpenAI image model; used {default}")

    def _caps(self, model: str) -> ModelCaps:
        caps = self.table.get(model)
        if caps is None:
            raise PermanentProviderError(
                f"OpenAI model {model!r} is not one this site knows; use one of {', '.join(self.models())} "
                "(an operator can add models under the provider's 'models' option)."
            )
        return caps

    def adjust(self, request: GenerationRequest, choice: ModelChoice) -> tuple[GenerationRequest, list[str]]:
        """Check the request against the model's capabilities, before anything is paid for.

        The prepared request holds every value the API is sent (see :meth:`api_arguments`).
        """
        self._caps(choice.name)  # a model this site knows (its lifecycle is in the table)
        model, swapped = self._current_model(choice.name)
        caps = self._caps(model)
        if request.edit is not None:
            if refusal := self._edit_refusal(request, caps):
                raise PermanentProviderError(refusal)
        elif caps.max_prompt and len(request.prompt) > caps.max_prompt:
            raise PermanentProviderError(
                f"The prompt is {len(request.prompt)} characters; {model} takes at most {caps.max_prompt}."
            )
        adjustments: list[str] = [swapped] if swapped else []
        extra = dict(request.extra)
        if request.edit is not None:
            for key in NOT_FOR_EDITS:  # (nor the provider's default: see edit_arguments)
                if extra.pop(key, None) not in (None, ""):
                    adjustments.append(f"OpenAI takes no {key} for an edit; it was not sent")
            if request.edit.strength is not None:
                adjustments.append("OpenAI has no strength setting for edits; it was not sent")
            if request.edit.operation == "variations":
                adjustments.append("OpenAI has no variations endpoint for GPT image models: sent as an edit")
        self._check_choices(caps, extra, adjustments)
        _check_compression(extra)
        _check_n(caps, extra.get("n", 1))
        width, height = _sized(caps, request, extra, adjustments)
        ignored = [
            name
            for name, value in (
                ("negative prompt", request.negative_prompt),
                ("steps", request.steps),
                ("guidance", request.guidance_scale),
                ("sampler", request.sampler),
                ("scheduler", request.scheduler),
                ("LoRAs", request.loras),
                ("seed", request.seed is not None),
            )
            if value
        ]
        if ignored:
            adjustments.append(f"OpenAI does not use {', '.join(ignored)}; they were not sent")
        return replace(request, model=model, width=width, height=height, extra=extra), adjustments

    # --- edits ------------------------------------------------------------------------------------

    def _edit_model(self, request: GenerationRequest) -> ModelCaps | None:
        """The capabilities of the model an edit would go to (None: not in the table)."""
        model = self.choose_model(request).name
        successor = (app_settings.OPENAI_MODEL_REPLACEMENTS or {}).get(model)
        lc = self.lifecycle(model)
        if lc is not None and lc.retired() and successor in self.table:
            model = successor
        return self.table.get(model)

    def edit_refusal(self, request: GenerationRequest) -> str:
        """Why this edit cannot go to OpenAI (offline, from the capability table), or ""."""
        if request.edit is None:
            return ""
        caps = self._edit_model(request)
        if caps is None:
            return ""  # prepare() names the unknown model
        return self._edit_refusal(request, caps)

    def _edit_refusal(self, request: GenerationRequest, caps: ModelCaps) -> str:
        edit = request.edit
        assert edit is not None
        if edit.operation == "upscale":
            return (
                f"OpenAI ({self.alias}) cannot upscale an image; use a provider with an upscale model "
                "(ComfyUI or Automatic1111)."
            )
        if edit.operation not in self.operations:
            return super().edit_refusal(request)
        if not caps.edits:
            return f"{caps.label} ({caps.model}) cannot edit images; choose a GPT image model."
        limit = caps.edit_prompt_limit
        prompt = self.edit_prompt(request)
        if limit and len(prompt) > limit:
            return f"The instruction is {len(prompt)} characters; {caps.model} takes at most {limit} for an edit."
        if edit.fidelity and edit.fidelity not in caps.input_fidelity:
            if not caps.input_fidelity:
                return f"{caps.model} takes no input fidelity; leave fidelity empty."
            return (
                f"Input fidelity {edit.fidelity!r} is not available for {caps.model}; "
                f"choose {', '.join(caps.input_fidelity)} or leave it empty."
            )
        if len(edit.source.content) > EDIT_IMAGE_MAX_BYTES:
            return f"The image is {len(edit.source.content) // 1024 // 1024} MB; OpenAI takes images under 50 MB."
        return ""

    def edit_offers(self, request: GenerationRequest) -> dict[str, Any]:
        """What the refine dialog may offer for this provider's model: no strength, and the
        input fidelities the model takes."""
        caps = self._edit_model(request)
        return {"strength": False, "fidelity": list(caps.input_fidelity) if caps else []}

    @staticmethod
    def edit_prompt(request: GenerationRequest) -> str:
        """The prompt an edit sends: the instruction, or for a variation the parent's prompt
        after :data:`VARIATION_INSTRUCTION`."""
        if request.edit is not None and request.edit.operation == "variations":
            return f"{VARIATION_INSTRUCTION} {request.prompt}".strip()
        return request.prompt

    def edit_arguments(self, request: PreparedRequest) -> dict[str, Any]:
        """``images.edit``'s keyword arguments for a prepared edit request."""
        edit = request.edit
        assert edit is not None
        kwargs = self.api_arguments(request)
        kwargs.pop("response_format", None)
        for key in NOT_FOR_EDITS:
            kwargs.pop(key, None)
        kwargs["prompt"] = self.edit_prompt(request)
        source = (edit.source.name, edit.source.content, edit.source.content_type)
        # A reference is one of the images a new picture is drawn from (``image[]``); a refine
        # and a variation edit the one image (``image``), which the mask applies to.
        kwargs["image"] = [source] if edit.operation == "reference" else source
        if edit.mask is not None and edit.operation == "refine":
            kwargs["mask"] = ("mask.png", openai_mask(edit.mask), "image/png")
        if edit.fidelity:
            kwargs["input_fidelity"] = edit.fidelity
        partial = min(int(self.options["partial_images"] or 0), self.table[request.model].partial_images)
        if partial > 0:
            kwargs["stream"] = True
            kwargs["partial_images"] = partial
        return kwargs

    def _check_choices(self, caps: ModelCaps, extra: dict[str, Any], adjustments: list[str]) -> None:
        """Write each choice (quality, style, ...) into ``extra`` as sent: checked, translated or dropped."""
        for key in CHOICE_KEYS:
            raw = extra.get(key)
            if raw in (None, ""):
                raw = self.options[key]
            if raw in (None, ""):
                continue
            value = _translated(caps, key, str(raw).strip().lower(), adjustments)  # legacy says "HD" as often
            if value is None:
                extra.pop(key, None)
            else:
                extra[key] = value
        if extra.get("background") == "transparent" and extra.get("output_format") == "jpeg":
            raise PermanentProviderError("A transparent background needs output format png or webp, not jpeg.")

    def api_arguments(self, request: PreparedRequest) -> dict[str, Any]:
        """The Images API's keyword arguments for a prepared request."""
        extra = request.extra
        kwargs: dict[str, Any] = {"model": request.model, "prompt": request.prompt, "n": 1}
        kwargs.update({key: extra[key] for key in CHOICE_KEYS if extra.get(key) not in (None, "")})
        if extra.get("output_compression") not in (None, ""):
            kwargs["output_compression"] = extra["output_compression"]
        response_format = self.table[request.model].response_format
        if response_format:
            kwargs["response_format"] = response_format
        kwargs["size"] = "auto" if extra.get("size") == "auto" else f"{request.width}x{request.height}"
        return kwargs

    # --- generating ---------------------------------------------------------------------------------

    def generate(self, request: GenerationRequest, reporter: ProgressReporter) -> GeneratedImage:
        request = self.prepared(request)
        client = self.client()
        late: list[str] = []
        self.refresh_lifecycle()  # at most once a day; the image request below is what costs money
        current = self.lifecycle(request.model)
        if current is not None and current.retired():
            # Prepared while the cache did not yet know: refused or swapped now, still before paying.
            request, late = self.prepare(plain_request(request))
        if request.edit is not None:
            kwargs = self.edit_arguments(request)

            def send(client: Any, kwargs: dict[str, Any]) -> tuple[str, Any]:
                return _send_edit(client, kwargs, reporter)
        else:
            kwargs, send = self.api_arguments(request), _send
        if reporter.cancelled():
            raise GenerationCancelled("Cancelled before the request was sent to OpenAI.")
        reporter.progress(2, f"sent to OpenAI ({request.model})")
        started = time.monotonic()
        request_id, response = self._call(client, kwargs, request, reporter, send=send)
        elapsed = time.monotonic() - started
        item = (response.data or [None])[0]
        if item is None or not item.b64_json:
            raise PermanentProviderError(
                "OpenAI answered without a base64 image"
                + (" (it sent a URL; this server ignores response_format)" if item is not None and item.url else "")
                + "."
            )
        try:
            content = decode_base64_image(item.b64_json)
        except (binascii.Error, ValueError) as exc:
            raise PermanentProviderError(f"OpenAI sent an image that is not valid base64 ({exc}).") from exc
        metadata = {
            "revised_prompt": item.revised_prompt,
            "usage": response.usage.model_dump(exclude_none=True) if response.usage else None,
            "size": response.size or kwargs["size"],
            "quality": response.quality or kwargs.get("quality"),
            "background": response.background or kwargs.get("background"),
            "output_format": response.output_format or kwargs.get("output_format") or "png",
            "request_id": request_id or None,
            "seconds": round(elapsed, 2),
            "adjustments": late or None,
        }
        if request.choice.name and request.choice.name != request.model:
            metadata["model_replaced"] = {"requested": request.choice.name, "sent": request.model}
        if request.edit is not None:
            sent = {
                "endpoint": "images/edits",
                "operation": request.edit.operation,
                "mask": "mask" in kwargs,
                "input_fidelity": kwargs.get("input_fidelity"),
                "partial_images": getattr(response, "partials", None) if kwargs.get("stream") else None,
            }
            metadata["edit"] = {key: value for key, value in sent.items() if value is not None}
        reporter.progress(100, "received from OpenAI")
        return GeneratedImage(
            content=content,
            seed=None,
            model=request.model,
            provider=self.alias,
            metadata={key: value for key, value in metadata.items() if value not in (None, "")},
        )

    def _call(
        self,
        client: Any,
        kwargs: dict[str, Any],
        request: PreparedRequest,
        reporter: ProgressReporter,
        send: Any = None,
    ) -> tuple[str, Any]:
        """OpenAI's request id and parsed answer, with progress and cancel checks while OpenAI works."""
        import openai

        # The call blocks for up to a minute or more; run it aside so this thread keeps
        # heartbeating and notices a cancel instead of looking stuck.
        started = time.monotonic()
        send = send or _send
        call = BlockingCall(lambda: send(client, kwargs), name=f"blogimages-openai-{request.result_id}")
        while not call.wait(POLL_EVERY):
            if reporter.cancelled():
                raise GenerationCancelled("Cancelled while OpenAI was generating (OpenAI may still bill for it).")
            elapsed = time.monotonic() - started
            reporter.progress(5 + 85 * (1 - math.exp(-elapsed / 30)), f"OpenAI is drawing ({elapsed:.0f} s)")
        try:
            return call.result()
        except openai.APIStatusError as exc:
            raise self._status_error(exc) from exc
        except openai.APITimeoutError as exc:
            raise TransientProviderError(f"OpenAI did not answer within {self.options['timeout']:g} seconds.") from exc
        except openai.APIConnectionError as exc:
            where = self.base_url() or "api.openai.com"
            raise TransientProviderError(f"Could not reach OpenAI at {where}: {exc.__cause__ or exc}.") from exc
        except openai.OpenAIError as exc:
            raise TransientProviderError(f"OpenAI's answer could not be read ({exc}).") from exc

    def _status_error(self, exc) -> PermanentProviderError | TransientProviderError:
        body = exc.body if isinstance(exc.body, dict) else {}
        code = str(exc.code or body.get("code") or "")
        message = _clause(_api_message(exc))
        status = exc.status_code
        wait = retry_after(exc.response.headers)
        if code in SAFETY_CODES:
            return PermanentProviderError(
                f"OpenAI's safety system blocked this request ({code}); reword the prompt, "
                "because sending the same one again will be blocked again."
            )
        if status == 429 and code in QUOTA_CODES:
            return PermanentProviderError(
                f"OpenAI says the account has no quota left ({code}); add credit or raise the limit, then try again."
            )
        if status == 429:
            return TransientProviderError(f"OpenAI is rate limiting requests (429): {message}.", retry_after=wait)
        # 409: OpenAI's own "try again" (a lock timeout), retried by its SDK too.
        if is_transient_status(status) or status == 409:
            return TransientProviderError(f"OpenAI had a server error ({status}): {message}.", retry_after=wait)
        if status == 401:
            return PermanentProviderError(f"OpenAI rejected the API key (401: {message}); check OPENAI_API_KEY.")
        if status == 403:
            return PermanentProviderError(f"OpenAI refused access (403): {message}.")
        if status == 404:
            return PermanentProviderError(f"OpenAI has no such model or endpoint (404): {message}.")
        label = f"{status}, {code}" if code else str(status)
        return PermanentProviderError(f"OpenAI rejected the request ({label}): {message}.")

    # --- health -----------------------------------------------------------------------------------

    def health(self) -> ProviderHealth:
        import openai

        info = {"base_url": self.base_url() or "https://api.openai.com/v1", "model": self.options["model"]}
        if not self.api_key():
            return ProviderHealth(ok=False, detail=NOT_CONFIGURED, info=info)
        try:
            # Listing models costs nothing, unlike generating a test image; the list also
            # carries the shutdown dates, so it refreshes the cached ones.
            page = self.client().with_options(timeout=float(self.options["health_timeout"])).models.list()
            info["models"] = len(page.data)
        except openai.OpenAIError as exc:
            snapshot = lifecycle.remember(lifecycle.failed(self.models_url(), _short(exc)))
            info["model lifecycle"] = snapshot.describe()
            if isinstance(exc, openai.AuthenticationError):
                return ProviderHealth(ok=False, detail=f"API key rejected (401): {_api_message(exc)}"[:300], info=info)
            if isinstance(exc, openai.NotFoundError):
                # Some compatible servers have no /models; they answered, so they are up.
                return ProviderHealth(ok=True, detail="reachable (no /models endpoint)", info=info)
            if isinstance(exc, openai.APIStatusError):
                detail = f"answered {exc.status_code}: {_api_message(exc)}"
                return ProviderHealth(ok=False, detail=detail[:300], info=info)
            if isinstance(exc, openai.APIConnectionError):
                return ProviderHealth(ok=False, detail=f"unreachable: {exc.__cause__ or exc}"[:300], info=info)
            return ProviderHealth(ok=False, detail=f"its answer could not be read: {exc}"[:300], info=info)
        info["model lifecycle"] = lifecycle.remember(lifecycle.from_models(self.models_url(), page.data)).describe()
        return ProviderHealth(ok=True, detail=f"reachable at {info['base_url']}", info=info)


def _translated(caps: ModelCaps, key: str, value: str, adjustments: list[str]) -> str | None:
    """``value`` as the model takes it (a legacy value translated, with a note); None when dropped."""
    model, allowed, name = caps.model, caps.allowed(key), key.replace("_", " ")
    translation = (caps.translate or {}).get(key, {})
    if value not in allowed and value in translation:
        new = translation[value]
        if not new:
            adjustments.append(f"{name} {value!r} dropped: {model} takes no {name}; describe it in the prompt")
            return None
        adjustments.append(f"{name} {value!r} is not one of {model}'s; sent {new!r}")
        value = new
    if value in allowed:
        return value
    if not allowed:
        raise PermanentProviderError(f"{model} takes no {name}, so {value!r} cannot be used; leave it empty.")
    raise PermanentProviderError(
        f"{name.capitalize()} {value!r} is not available for {model}; choose one of {', '.join(allowed)}."
    )


def _check_compression(extra: dict[str, Any]) -> None:
    compression = extra.get("output_compression")
    if compression in (None, ""):
        return
    if extra.get("output_format") not in ("jpeg", "webp"):
        raise PermanentProviderError("Output compression only applies to jpeg or webp output; set output_format.")
    if isinstance(compression, bool) or not (isinstance(compression, int) and 0 <= compression <= 100):
        raise PermanentProviderError(f"Output compression must be a whole number from 0 to 100, not {compression!r}.")


def _check_n(caps: ModelCaps, n: Any) -> None:
    if not isinstance(n, int) or not caps.n[0] <= n <= caps.n[1]:
        raise PermanentProviderError(f"{caps.model} makes {caps.n[0]} to {caps.n[1]} images per request, not {n!r}.")
    if n != 1:
        raise PermanentProviderError(
            f"Each result holds one image, so n={n} cannot be used; request several results instead."
        )


def _send(client: Any, kwargs: dict[str, Any]) -> tuple[str, Any]:
    raw = client.images.with_raw_response.generate(**kwargs)
    return raw.headers.get("x-request-id", ""), raw.parse()


def _send_edit(client: Any, kwargs: dict[str, Any], reporter: ProgressReporter) -> tuple[str, Any]:
    """Send an edit; streamed (``stream=True``), each partial image goes to ``reporter.preview``
    and the completed event is returned shaped like an ``ImagesResponse``."""
    raw = client.images.with_raw_response.edit(**kwargs)
    request_id = raw.headers.get("x-request-id", "")
    if not kwargs.get("stream"):
        return request_id, raw.parse()
    completed, partials = None, 0
    for event in raw.parse():
        kind = getattr(event, "type", "")
        if kind == "image_edit.partial_image":
            partials += 1
            try:
                reporter.preview(decode_base64_image(event.b64_json))
            except Exception:  # noqa: BLE001 - a preview that cannot be shown costs the preview only
                logger.warning("A partial image from OpenAI could not be shown", exc_info=True)
        elif kind == "image_edit.completed":
            completed = event
    if completed is None:
        import openai

        raise openai.APIError("The stream ended without an image_edit.completed event.", request=None, body=None)  # type: ignore[arg-type]
    item = SimpleNamespace(b64_json=completed.b64_json, revised_prompt=None, url=None)
    response = SimpleNamespace(
        data=[item],
        usage=completed.usage,
        size=completed.size,
        quality=completed.quality,
        background=completed.background,
        output_format=completed.output_format,
        partials=partials,
    )
    return request_id, response


def openai_mask(mask: bytes) -> bytes:
    """A mask as blogimages keeps it (a PNG, white = change) as OpenAI takes it: an RGBA PNG of
    the same size whose fully transparent pixels (alpha 0) are the area to change."""
    from PIL import Image

    with Image.open(io.BytesIO(mask)) as image:
        grey = image.convert("L")
    alpha = grey.point(lambda value: 0 if value >= 128 else 255)
    rgba = Image.new("RGBA", grey.size, (0, 0, 0, 255))
    rgba.putalpha(alpha)
    buffer = io.BytesIO()
    rgba.save(buffer, format="PNG")
    data = buffer.getvalue()
    if len(data) > EDIT_MASK_MAX_BYTES:
        raise PermanentProviderError("The mask is over OpenAI's 4 MB limit as a PNG; paint a simpler area.")
    return data


def _sized(
    caps: ModelCaps, request: GenerationRequest, extra: dict[str, Any], adjustments: list[str]
) -> tuple[int, int]:
    """The width and height to send; ``extra["size"]`` ("WxH") is folded into them, "auto" kept."""
    width, height = request.width, request.height
    size = extra.get("size")
    if size == "auto":
        if not caps.auto_size:
            raise PermanentProviderError(f"{caps.model} cannot choose its own size; give a width and height.")
        return width, height
    if size:
        try:
            width, height = parse_size(size)
        except ValueError as exc:
            raise PermanentProviderError(f"Size {exc}; write it like 1536x1024.") from None
        extra.pop("size")
    new_w, new_h, why = caps.snap_size(width, height)
    if why:
        adjustments.append(f"size {width}x{height} changed to {new_w}x{new_h}: {caps.model} {why}")
    return new_w, new_h


def _short(exc: Exception) -> str:
    """An SDK error as one short clause for the status page."""
    import openai

    if isinstance(exc, openai.APIStatusError):
        return f"{exc.status_code}: {_clause(_api_message(exc))}"
    if isinstance(exc, openai.APIConnectionError):
        return f"unreachable: {exc.__cause__ or exc}"
    return f"{exc.__class__.__name__}: {exc}"


def _api_message(exc) -> str:
    """The server's own words: the body's message, not the client's "Error code: 429 - {...}" rendering."""
    body = exc.body if isinstance(exc.body, dict) else {}
    return str(body.get("message") or exc.message or "")


def _clause(text: str) -> str:
    """An API message cut to size, without its closing full stop (ours ends the sentence)."""
    text = " ".join(text.split())[:300]
    return text.rstrip(".!") or "no message"
