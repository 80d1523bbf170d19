"""OpenAI's image API (and servers that speak it: Azure OpenAI, LiteLLM) through the official client.

What a model accepts is data (:mod:`.capabilities`), checked in :meth:`prepare` before
any money is spent. The client is built with ``max_retries=0``: the job owns retries,
so a 429 is not retried twice over and the editor sees one count of attempts.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import math
import os
import threading
import time
from dataclasses import replace
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from ..exceptions import GenerationCancelled, PermanentProviderError, TransientProviderError
from .base import BaseProvider, GeneratedImage, GenerationRequest, ProgressReporter, ProviderHealth
from .capabilities import CHOICE_KEYS, DEFAULT_MODEL, ModelCaps, build_table, parse_size

SAFETY_CODES = {"moderation_blocked", "content_policy_violation"}
# A 429 that waiting cannot fix: the account is out of money, not over a rate.
QUOTA_CODES = {"insufficient_quota", "billing_hard_limit_reached", "billing_not_active"}
CONTENT_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
NOT_CONFIGURED = (
    "OpenAI is not configured: set OPENAI_API_KEY (or the older OPENAI_AUTH_TOKEN) in the environment, "
    "or the provider's 'api_key' option."
)
INSTALL_HINT = "The OpenAI provider needs the openai package: pip install blogimages[openai]"
POLL_EVERY = 0.5  # how often the job checks for cancel (and heartbeats) while OpenAI works
# How OpenAI's image model ids begin. An unknown id that begins so is a typo or a retired
# model (an error); any other is another provider's model from a shared setting.
OPENAI_MODEL_PREFIXES = ("gpt-", "dall-e", "chatgpt-")


class OpenAIImagesProvider(BaseProvider):
    label = "OpenAI"
    is_cloud = True
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
        "timeout": 180.0,  # seconds for one image; keep below BLOGIMAGES_STUCK_AFTER
        "health_timeout": 5.0,
        "models": {},  # capability table additions and overrides, see capabilities.py
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
                    api_key=key, base_url=base_url, organization=self.options["organization"],
                    default_headers=self.options["default_headers"] or None,
                    timeout=float(self.options["timeout"]), max_retries=0,
                )
                self._clients[(key, base_url)] = client
            return client

    def models(self) -> list[str]:
        return [model for model, caps in self.table.items() if not caps.retired]

    # --- checking a request ---------------------------------------------------------------------

    def prepare(self, request: GenerationRequest) -> tuple[GenerationRequest, list[str]]:
        prepared, _, adjustments = self._resolve(request)
        return prepared, adjustments

    def _caps(self, model: str) -> ModelCaps:
        caps = self.table.get(model)
        if caps is None:
            raise PermanentProviderError(
                f"OpenAI model {model!r} is not one this site knows; use one of {', '.join(self.models())} "
                "(an operator can add models under the provider's 'models' option)."
            )
        if caps.retired:
            instead = f"; use {caps.replacement} instead" if caps.replacement else ""
            raise PermanentProviderError(f"OpenAI retired {caps.label} ({model}) on {caps.retired}{instead}.")
        return caps

    def _resolve(self, request: GenerationRequest) -> tuple[GenerationRequest, dict[str, Any], list[str]]:
        """(the request as it will be sent, the API's keyword arguments, adjustments made).

        Idempotent: resolving a resolved request changes nothing more, so ``generate``
        can resolve again without trusting that ``prepare`` ran.
        """
        model = request.model or self.options["model"]
        adjustments: list[str] = []
        if model not in self.table and not model.lower().startswith(OPENAI_MODEL_PREFIXES):
            # A setting shared by several providers names a ComfyUI workflow or a checkpoint
            # ("sd35_large_turbo"): OpenAI cannot run it, so its own model is used, and said so.
            adjustments.append(f"model {model!r} is not an OpenAI image model; used {self.options['model']}")
            model = self.options["model"]
        caps = self._caps(model)
        if caps.max_prompt and len(request.prompt) > caps.max_prompt:
            raise PermanentProviderError(
                f"The prompt is {len(request.prompt)} characters; {model} takes at most {caps.max_prompt}."
            )
        extra = dict(request.extra)
        values: dict[str, str] = {}
        for key in CHOICE_KEYS:
            raw = extra.get(key)
            if raw in (None, ""):
                raw = self.options[key]
            if raw in (None, ""):
                continue
            value = str(raw).strip().lower()  # legacy settings say "HD" as often as "hd"
            allowed = caps.allowed(key)
            translation = (caps.translate or {}).get(key, {})
            name = key.replace("_", " ")
            if value not in allowed and value in translation:
                new = translation[value]
                if not new:
                    adjustments.append(f"{name} {value!r} dropped: {model} takes no {name}; describe it in the prompt")
                    extra.pop(key, None)
                    continue
                adjustments.append(f"{name} {value!r} is not one of {model}'s; sent {new!r}")
                value = new
            if value not in allowed:
                if not allowed:
                    raise PermanentProviderError(
                        f"{model} takes no {name}, so {value!r} cannot be used; leave it empty."
                    )
                raise PermanentProviderError(
                    f"{name.capitalize()} {value!r} is not available for {model}; choose one of {', '.join(allowed)}."
                )
            values[key] = extra[key] = value
        if values.get("background") == "transparent" and values.get("output_format") == "jpeg":
            raise PermanentProviderError("A transparent background needs output format png or webp, not jpeg.")

        kwargs: dict[str, Any] = {"model": model, "prompt": request.prompt, **values}
        compression = extra.get("output_compression")
        if compression not in (None, ""):
            if values.get("output_format") not in ("jpeg", "webp"):
                raise PermanentProviderError(
                    "Output compression only applies to jpeg or webp output; set output_format."
                )
            if not (isinstance(compression, int) and 0 <= compression <= 100):
                raise PermanentProviderError(
                    f"Output compression must be a whole number from 0 to 100, not {compression!r}."
                )
            kwargs["output_compression"] = compression

        n = extra.get("n", 1)
        if not isinstance(n, int) or not caps.n[0] <= n <= caps.n[1]:
            raise PermanentProviderError(f"{model} makes {caps.n[0]} to {caps.n[1]} images per request, not {n!r}.")
        if n != 1:
            raise PermanentProviderError(
                f"Each result holds one image, so n={n} cannot be used; request several results instead."
            )
        kwargs["n"] = 1
        if caps.response_format:
            kwargs["response_format"] = caps.response_format

        width, height = request.width, request.height
        size = extra.get("size")
        if size == "auto":
            if not caps.auto_size:
                raise PermanentProviderError(f"{model} cannot choose its own size; give a width and height.")
            kwargs["size"] = "auto"
        else:
            if size:
                try:
                    width, height = parse_size(size)
                except ValueError as exc:
                    raise PermanentProviderError(f"Size {exc}; write it like 1536x1024.") from None
                extra.pop("size")
            new_w, new_h, why = caps.snap_size(width, height)
            if why:
                adjustments.append(f"size {width}x{height} changed to {new_w}x{new_h}: {model} {why}")
            width, height = new_w, new_h
            kwargs["size"] = f"{width}x{height}"

        ignored = [
            name for name, value in (
                ("negative prompt", request.negative_prompt), ("steps", request.steps),
                ("guidance", request.guidance_scale), ("sampler", request.sampler),
                ("scheduler", request.scheduler), ("LoRAs", request.loras), ("seed", request.seed is not None),
            ) if value
        ]
        if ignored:
            adjustments.append(f"OpenAI does not use {', '.join(ignored)}; they were not sent")
        prepared = replace(request, model=model, width=width, height=height, extra=extra)
        return prepared, kwargs, adjustments

    # --- generating ---------------------------------------------------------------------------------

    def generate(self, request: GenerationRequest, reporter: ProgressReporter) -> GeneratedImage:
        import openai

        request, kwargs, _ = self._resolve(request)
        client = self.client()
        if reporter.cancelled():
            raise GenerationCancelled("Cancelled before the request was sent to OpenAI.")
        reporter.progress(2, f"sent to OpenAI ({request.model})")
        outcome: dict[str, Any] = {}
        done = threading.Event()

        def call() -> None:
            try:
                raw = client.images.with_raw_response.generate(**kwargs)
                outcome["request_id"] = raw.headers.get("x-request-id", "")
                outcome["response"] = raw.parse()
            except BaseException as exc:  # noqa: BLE001 - handed to the job's thread below
                outcome["error"] = exc
            finally:
                done.set()

        # The call blocks for up to a minute or more; run it aside so this thread keeps
        # heartbeating and notices a cancel instead of looking stuck.
        started = time.monotonic()
        threading.Thread(target=call, name=f"blogimages-openai-{request.result_id}", daemon=True).start()
        while not done.wait(POLL_EVERY):
            if reporter.cancelled():
                raise GenerationCancelled("Cancelled while OpenAI was generating (OpenAI may still bill for it).")
            elapsed = time.monotonic() - started
            reporter.progress(5 + 85 * (1 - math.exp(-elapsed / 30)), f"OpenAI is drawing ({elapsed:.0f} s)")
        elapsed = time.monotonic() - started

        error = outcome.get("error")
        if isinstance(error, openai.APIStatusError):
            raise self._status_error(error) from error
        if isinstance(error, openai.APITimeoutError):
            raise TransientProviderError(
                f"OpenAI did not answer within {self.options['timeout']:g} seconds."
            ) from error
        if isinstance(error, openai.APIConnectionError):
            where = self.base_url() or "api.openai.com"
            raise TransientProviderError(f"Could not reach OpenAI at {where}: {error.__cause__ or error}.") from error
        if isinstance(error, openai.OpenAIError):
            raise TransientProviderError(f"OpenAI's answer could not be read ({error}).") from error
        if error is not None:
            raise error

        response = outcome["response"]
        item = (response.data or [None])[0]
        if item is None or not item.b64_json:
            raise PermanentProviderError(
                "OpenAI answered without a base64 image"
                + (" (it sent a URL; this server ignores response_format)" if item is not None and item.url else "")
                + "."
            )
        try:
            content = base64.b64decode(item.b64_json, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise PermanentProviderError(f"OpenAI sent an image that is not valid base64 ({exc}).") from exc
        output_format = response.output_format or kwargs.get("output_format") or "png"
        metadata = {
            "revised_prompt": item.revised_prompt,
            "usage": response.usage.model_dump(exclude_none=True) if response.usage else None,
            "size": response.size or kwargs["size"],
            "quality": response.quality or kwargs.get("quality"),
            "background": response.background or kwargs.get("background"),
            "output_format": output_format,
            "request_id": outcome.get("request_id") or None,
            "seconds": round(elapsed, 2),
        }
        reporter.progress(100, "received from OpenAI")
        return GeneratedImage(
            content=content, content_type=CONTENT_TYPES.get(output_format, "image/png"), seed=None,
            model=request.model, provider=self.alias,
            metadata={key: value for key, value in metadata.items() if value not in (None, "")},
        )

    def _status_error(self, exc) -> PermanentProviderError | TransientProviderError:
        body = exc.body if isinstance(exc.body, dict) else {}
        code = str(exc.code or body.get("code") or "")
        message = _clause(_api_message(exc))
        status = exc.status_code
        retry_after = retry_after_seconds(exc.response.headers)
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
            return TransientProviderError(
                f"OpenAI is rate limiting requests (429): {message}.", retry_after=retry_after
            )
        if status >= 500 or status in (408, 409):
            return TransientProviderError(f"OpenAI had a server error ({status}): {message}.", retry_after=retry_after)
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
            # Listing models costs nothing, unlike generating a test image.
            page = self.client().with_options(timeout=float(self.options["health_timeout"])).models.list()
            info["models"] = len(page.data)
        except openai.AuthenticationError as exc:
            return ProviderHealth(ok=False, detail=f"API key rejected (401): {_api_message(exc)}"[:300], info=info)
        except openai.NotFoundError:
            # Some compatible servers have no /models; they answered, so they are up.
            return ProviderHealth(ok=True, detail="reachable (no /models endpoint)", info=info)
        except openai.APIStatusError as exc:
            return ProviderHealth(ok=False, detail=f"answered {exc.status_code}: {_api_message(exc)}"[:300], info=info)
        except openai.APIConnectionError as exc:
            return ProviderHealth(ok=False, detail=f"unreachable: {exc.__cause__ or exc}"[:300], info=info)
        return ProviderHealth(ok=True, detail=f"reachable at {info['base_url']}", info=info)


def _api_message(exc) -> str:
    """The server's own words: the body's message, not the client's "Error code: 429 - {...}" rendering."""
    body = exc.body if isinstance(exc.body, dict) else {}
    return str(body.get("message") or exc.message or "")


def _clause(text: str) -> str:
    """An API message cut to size, without its closing full stop (ours ends the sentence)."""
    text = " ".join(text.split())[:300]
    return text.rstrip(".!") or "no message"


def retry_after_seconds(headers) -> float | None:
    """Seconds from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date); None if absent."""
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) / divisor
        except ValueError:
            parsed = email.utils.parsedate_tz(value)
            if parsed is None:
                continue
            seconds = email.utils.mktime_tz(parsed) - time.time()
        if math.isfinite(seconds):
            return max(0.0, seconds)
    return None
