"""Hosted image APIs: what FLUX (BFL), Replicate, fal.ai and Gemini share.

:class:`HostedProvider` holds the parts every paid HTTP image API has: a key read from
the provider's options, the Django settings or the environment; a model table as data
(like OpenAI's in :mod:`.capabilities`) that sizes are snapped to or refused by before
any money is spent; errors sorted into transient and permanent (a safety block is
permanent, a 429 is transient with its ``Retry-After``); and a result URL that is
fetched exactly once.

:class:`AsyncJobProvider` adds the job loop of the APIs that answer "accepted, ask me
later": submit, then poll with backoff within a wall-clock deadline, cancel on the
service when the editor cancels (or the deadline passes), and take a webhook's outcome
the moment it arrives. A webhook is only asked for when the operator sets
``BLOGIMAGES_WEBHOOK_BASE_URL``; its URL carries a per-job nonce and a token signed with
``SECRET_KEY``, and :mod:`blogimages.webhooks` files what arrives in Redis (the queue's,
which web and worker processes share) under that nonce. The job looks there before
every poll, so a webhook that arrives before the first poll, or even before the submit
call has answered, is used at once. Polling goes on regardless: a webhook that never
comes costs nothing but time.

RunPod (:mod:`.runpod`) predates this base and keeps its own loop, which its tests pin
down in detail; it shares the HTTP helpers of :mod:`blogimages.remote` with these.
"""

from __future__ import annotations

import json
import logging
import math
import os
import secrets
import time
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import requests
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.urls import NoReverseMatch, reverse
from django.utils.crypto import constant_time_compare, salted_hmac

from ..conf import app_settings
from ..contract import GeneratedImage, GenerationRequest, ModelChoice, PreparedRequest, ProgressReporter, ProviderHealth
from ..exceptions import GenerationCancelled, PermanentProviderError, ProviderError, TransientProviderError
from ..remote import clip, connection_reason, image_type, is_transient_status, json_body, retry_after
from .base import BaseProvider

logger = logging.getLogger("blogimages.providers.hosted")

#: How long a webhook's outcome waits in Redis for its job (a job never waits longer).
WEBHOOK_TTL = 3600
#: Consecutive failed polls (network, 5xx) tolerated before the job gives up: a hiccup must
#: not abandon a job that is running and billing.
POLL_ERRORS_TOLERATED = 5
#: How often the waiting loop looks for a cancel or a webhook between polls.
TICK = 0.1
#: Answers to fetching a result URL that mean it is gone for good (signed URLs that expired,
#: deleted files): the job must not be retried by downloading again.
EXPIRED_STATUSES = (403, 404, 410)

# --- the model table ------------------------------------------------------------------------------

#: Keys a model entry may have; see :class:`HostedModel`.
MODEL_KEYS = {
    "label",
    "retired",
    "replacement",
    "multiple",
    "min_side",
    "max_side",
    "max_pixels",
    "aspect_ratios",
    "steps",
    "guidance",
    "seed",
    "negative_prompt",
    "max_prompt",
    "image_sizes",
    "safety_tolerance",
    "base",
}


@dataclass(frozen=True)
class HostedModel:
    """One model's limits, from a provider's table merged with the operator's ``models`` option.

    ``aspect_ratios`` set: the API takes an aspect ratio ("16:9"), not a size; a request is
    sent the nearest one. Otherwise sizes are free within ``multiple`` (both sides),
    ``min_side``, ``max_side`` and ``max_pixels``. ``steps`` and ``guidance`` are
    ``[min, max]`` when the API takes them, None when it does not (they are then not
    sent, with a note). ``image_sizes`` are named resolutions ("1K", "2K") a request may
    ask for in ``extra["image_size"]``.
    """

    model: str
    label: str = ""
    retired: str | None = None
    replacement: str = ""
    multiple: int = 16
    min_side: int = 64
    max_side: int = 0
    max_pixels: int = 0
    aspect_ratios: tuple[str, ...] = ()
    steps: tuple[int, int] | None = None
    guidance: tuple[float, float] | None = None
    seed: bool = True
    negative_prompt: bool = False
    max_prompt: int | None = None
    image_sizes: tuple[str, ...] = ()
    safety_tolerance: tuple[int, int] | None = None

    def snap(self, width: int, height: int) -> tuple[int, int, str, str]:
        """(width, height, aspect ratio or "", why it changed or "") for a request of ``width`` x ``height``."""
        if self.aspect_ratios:
            ratio = nearest_ratio(width, height, self.aspect_ratios)
            rw, rh = (int(part) for part in ratio.split(":"))
            # The service picks the pixels; record the shape it was asked for at about the same area.
            new_h = max(1, round(math.sqrt(width * height * rh / rw)))
            new_w = max(1, round(new_h * rw / rh))
            why = "" if rw * height == rh * width else f"takes an aspect ratio; sent {ratio}"
            return (width, height, ratio, why) if not why else (new_w, new_h, ratio, why)
        new_w, new_h, why = _snap_size(width, height, self)
        return new_w, new_h, "", why


def nearest_ratio(width: int, height: int, ratios: tuple[str, ...]) -> str:
    want = math.log(width / height)

    def distance(ratio: str) -> float:
        w, h = (int(part) for part in ratio.split(":"))
        return abs(math.log(w / h) - want)

    return min(ratios, key=distance)


def _snap_size(width: int, height: int, caps: HostedModel) -> tuple[int, int, str]:
    multiple = max(1, caps.multiple)
    reasons = []
    scale = 1.0
    if caps.max_side and max(width, height) > caps.max_side:
        scale = min(scale, caps.max_side / max(width, height))
    if caps.max_pixels and width * height > caps.max_pixels:
        scale = min(scale, math.sqrt(caps.max_pixels / (width * height)))
    if scale < 1:
        limits = [
            f"{caps.max_side} px a side" if caps.max_side else "",
            f"{caps.max_pixels} pixels" if caps.max_pixels else "",
        ]
        reasons.append("at most " + " and ".join(limit for limit in limits if limit))
    if caps.min_side and min(width, height) * scale < caps.min_side:
        scale = max(scale, caps.min_side / min(width, height))
        reasons.append(f"at least {caps.min_side} px a side")
    lowest = math.ceil(caps.min_side / multiple) * multiple if caps.min_side else multiple
    highest = caps.max_side // multiple * multiple if caps.max_side else 0

    def fit(value: float) -> int:
        # Shrunk sizes round down, so rounding cannot push them back over a limit.
        snapped = math.floor(value / multiple) * multiple if scale < 1 else round(value / multiple) * multiple
        snapped = max(lowest, snapped)
        return min(snapped, highest) if highest else snapped

    new_w, new_h = fit(width * scale), fit(height * scale)
    while caps.max_pixels and new_w * new_h > caps.max_pixels and max(new_w, new_h) > lowest:
        if new_w >= new_h:
            new_w -= multiple
        else:
            new_h -= multiple
    if (new_w, new_h) == (width, height):
        return width, height, ""
    if multiple > 1 and (width % multiple or height % multiple):
        reasons.append(f"sides divisible by {multiple}")
    return new_w, new_h, "needs " + " and ".join(reasons or ["a different size"])


def build_models(defaults: dict[str, dict[str, Any]], overrides: Any, *, alias: str) -> dict[str, HostedModel]:
    """``defaults`` with the operator's ``models`` option merged over it (``"base"`` copies an entry first)."""
    where = f"BLOGIMAGES_PROVIDERS[{alias!r}]['OPTIONS']['models']"
    if overrides is not None and not isinstance(overrides, dict):
        raise ImproperlyConfigured(f"{where} must be a dict of {{model id: {{limits}}}}.")
    raw = {model: dict(entry) for model, entry in defaults.items()}
    for model, entry in (overrides or {}).items():
        if not isinstance(entry, dict):
            raise ImproperlyConfigured(f"{where}[{model!r}] must be a dict of limits.")
        unknown = sorted(set(entry) - MODEL_KEYS)
        if unknown:
            raise ImproperlyConfigured(
                f"{where}[{model!r}]: unknown key(s) {', '.join(unknown)}; "
                f"known keys are {', '.join(sorted(MODEL_KEYS))}."
            )
        base = entry.get("base")
        if base is not None and base not in raw:
            raise ImproperlyConfigured(f"{where}[{model!r}]: base {base!r} is not a known model.")
        merged = {**raw[base], "label": model} if base is not None else dict(raw.get(model, {}))
        merged.update({k: v for k, v in entry.items() if k != "base"})
        raw[model] = merged
    table = {}
    for model, entry in raw.items():
        try:
            table[model] = HostedModel(
                model=model,
                label=entry.get("label") or model,
                retired=entry.get("retired") or None,
                replacement=entry.get("replacement") or "",
                multiple=int(entry.get("multiple", 16)),
                min_side=int(entry.get("min_side", 64)),
                max_side=int(entry.get("max_side") or 0),
                max_pixels=int(entry.get("max_pixels") or 0),
                aspect_ratios=tuple(entry.get("aspect_ratios") or ()),
                steps=_pair(entry.get("steps"), int),
                guidance=_pair(entry.get("guidance"), float),
                seed=bool(entry.get("seed", True)),
                negative_prompt=bool(entry.get("negative_prompt", False)),
                max_prompt=entry.get("max_prompt"),
                image_sizes=tuple(entry.get("image_sizes") or ()),
                safety_tolerance=_pair(entry.get("safety_tolerance"), int),
            )
        except (TypeError, ValueError) as exc:
            raise ImproperlyConfigured(f"{where}[{model!r}]: {exc}.") from None
    return table


def _pair(value: Any, kind: type) -> tuple | None:
    if value is None:
        return None
    low, high = value
    return kind(low), kind(high)


# --- webhooks: where they are filed ------------------------------------------------------------------


def webhook_token(alias: str, nonce: str) -> str:
    """The token in a webhook URL: only this site (holding SECRET_KEY) can make one."""
    return salted_hmac("blogimages.webhooks", f"{alias}:{nonce}", algorithm="sha256").hexdigest()[:40]


def valid_webhook_token(alias: str, nonce: str, token: str) -> bool:
    return constant_time_compare(webhook_token(alias, nonce), token)


def webhook_url(alias: str, nonce: str) -> str:
    """The public URL a service calls back for one job; "" when BLOGIMAGES_WEBHOOK_BASE_URL is not set."""
    base = app_settings.WEBHOOK_BASE_URL
    if not base:
        return ""
    try:
        path = reverse(
            "blogimages:api-webhook", kwargs={"alias": alias, "nonce": nonce, "token": webhook_token(alias, nonce)}
        )
    except NoReverseMatch as exc:
        raise ImproperlyConfigured(
            "BLOGIMAGES_WEBHOOK_BASE_URL is set, but blogimages' URLs are not included in the site's URLconf "
            '(path("", include("blogimages.urls"))).'
        ) from exc
    return base.rstrip("/") + path


def _inbox_key(alias: str, nonce: str) -> str:
    return f"blogimages:webhook:{alias}:{nonce}"


def _redis():
    import django_rq

    return django_rq.get_connection(app_settings.QUEUE)


def file_webhook(alias: str, nonce: str, payload: Any) -> None:
    """Keep a verified webhook's body for the job waiting on ``nonce`` (raises redis errors)."""
    _redis().set(_inbox_key(alias, nonce), json.dumps(payload), ex=WEBHOOK_TTL)


def take_webhook(alias: str, nonce: str) -> Any | None:
    """The body a webhook filed for ``nonce``, once; None when none came (or Redis is away: polling goes on)."""
    import redis

    key = _inbox_key(alias, nonce)
    try:
        pipe = _redis().pipeline()
        pipe.get(key)
        pipe.delete(key)
        raw, _ = pipe.execute()
    except redis.RedisError as exc:
        logger.warning("Could not read webhooks for %s: %s", alias, exc)
        return None
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


class WebhookRejected(Exception):
    """A webhook that fails its service's signature check: answered 403, never filed."""


# --- the base of hosted providers ------------------------------------------------------------------------


class HostedProvider(BaseProvider):
    """A paid HTTP image API: a key, a model table, sorted errors, result URLs fetched once."""

    is_cloud = True
    #: Shown in messages: "Replicate", "fal.ai", ...
    service: ClassVar[str] = "the image API"
    #: Names the key is looked up under, in order: Django settings, then the environment.
    key_names: ClassVar[tuple[str, ...]] = ()
    #: The built-in model table (see :class:`HostedModel`).
    default_models: ClassVar[dict[str, dict[str, Any]]] = {}
    #: Error codes or words in an error body that mean a safety system refused the request.
    safety_markers: ClassVar[tuple[str, ...]] = ()

    def __init__(self, alias: str, **options: Any):
        super().__init__(alias, **options)
        self.table = build_models(self.default_models, self.options.get("models"), alias=alias)
        default = self.options.get("model")
        if default not in self.table:
            raise ImproperlyConfigured(
                f"BLOGIMAGES_PROVIDERS[{alias!r}]: model {default!r} is not in {self.label}'s model table; "
                f"add it under OPTIONS['models'] or pick one of {', '.join(self.models())}."
            )

    # --- configuration (read at call time) ---------------------------------------------------------

    def api_key(self) -> str:
        key = self.options.get("api_key")
        if key:
            return str(key)
        for name in self.key_names:
            value = getattr(settings, name, None) or os.environ.get(name)
            if value:
                return str(value)
        return ""

    def require_key(self) -> str:
        key = self.api_key()
        if not key:
            raise PermanentProviderError(self.not_configured())
        return key

    def not_configured(self) -> str:
        return (
            f"{self.service} is not configured: set {' or '.join(self.key_names)} in the settings or the "
            "environment, or the provider's 'api_key' option."
        )

    def base_url(self) -> str:
        return str(self.options["base_url"]).rstrip("/")

    def models(self) -> list[str]:
        return [model for model, caps in self.table.items() if not caps.retired]

    # --- checking a request before money is spent ------------------------------------------------

    def choose_model(self, request: GenerationRequest) -> ModelChoice:
        """The request's model when this provider has it, else the default with a note (another
        provider's model from a shared setting); a model shaped like ours but unknown is refused."""
        model = request.model or self.options["model"]
        if model in self.table:
            return ModelChoice(model)
        if self.looks_like_ours(model):
            raise PermanentProviderError(
                f"{self.service} model {model!r} is not one this site knows; use one of {', '.join(self.models())} "
                "(an operator can add models under the provider's 'models' option)."
            )
        default = self.options["model"]
        return ModelChoice(default, note=f"model {model!r} is not a {self.service} model; used {default}")

    def looks_like_ours(self, model: str) -> bool:
        return False

    def caps(self, model: str) -> HostedModel:
        caps = self.table[model]
        if caps.retired:
            instead = f"; use {caps.replacement} instead" if caps.replacement else ""
            raise PermanentProviderError(f"{self.service} retired {caps.label} ({model}) on {caps.retired}{instead}.")
        return caps

    def adjust(self, request: GenerationRequest, choice: ModelChoice) -> tuple[GenerationRequest, list[str]]:
        """Snap the size (or pick the aspect ratio) and check ranges; what the API cannot use is noted and not sent."""
        model = choice.name
        caps = self.caps(model)
        if caps.max_prompt and len(request.prompt) > caps.max_prompt:
            raise PermanentProviderError(
                f"The prompt is {len(request.prompt)} characters; {model} takes at most {caps.max_prompt}."
            )
        adjustments: list[str] = []
        extra = dict(request.extra)
        width, height, ratio, why = caps.snap(request.width, request.height)
        if why:
            adjustments.append(f"size {request.width}x{request.height} changed to {width}x{height}: {model} {why}")
        if ratio:
            extra["aspect_ratio"] = ratio
        image_size = extra.get("image_size")
        if image_size not in (None, "") and str(image_size) not in caps.image_sizes:
            choices = ", ".join(caps.image_sizes) or "none"
            raise PermanentProviderError(f"Image size {image_size!r} is not available for {model}; it takes {choices}.")
        steps, guidance = request.steps, request.guidance_scale
        ignored = []
        if steps is not None:
            if caps.steps is None:
                ignored.append("steps")
                steps = None
            elif not caps.steps[0] <= steps <= caps.steps[1]:
                raise PermanentProviderError(f"{model} takes {caps.steps[0]} to {caps.steps[1]} steps, not {steps}.")
        if guidance is not None:
            if caps.guidance is None:
                ignored.append("guidance")
                guidance = None
            elif not caps.guidance[0] <= guidance <= caps.guidance[1]:
                raise PermanentProviderError(
                    f"{model} takes a guidance of {caps.guidance[0]:g} to {caps.guidance[1]:g}, not {guidance:g}."
                )
        negative = request.negative_prompt
        if negative and not caps.negative_prompt:
            ignored.append("negative prompt")
            negative = ""
        seed = request.seed
        if seed is not None and not caps.seed:
            ignored.append("seed")
            seed = None
        ignored += [
            name
            for name, value in (
                ("sampler", request.sampler),
                ("scheduler", request.scheduler),
                ("LoRAs", request.loras),
            )
            if value
        ]
        if ignored:
            adjustments.append(f"{model} does not use {', '.join(ignored)}; not sent")
        adjusted = replace(
            request,
            model=model,
            width=width,
            height=height,
            steps=steps,
            guidance_scale=guidance,
            negative_prompt=negative,
            seed=seed,
            sampler="",
            scheduler="",
            loras=(),
            extra=extra,
        )
        return adjusted, adjustments

    # --- HTTP -----------------------------------------------------------------------------------

    def headers(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    def call(self, session: requests.Session, method: str, url: str, doing: str, **kwargs: Any) -> requests.Response:
        """One HTTP call: a connection failure is transient, an error answer sorted by :meth:`error_for`."""
        kwargs.setdefault("timeout", float(self.options.get("request_timeout", 30.0)))
        try:
            response = session.request(method, url, **kwargs)
        except requests.RequestException as exc:
            raise TransientProviderError(
                f"{self.service} could not be reached while {doing} ({connection_reason(exc)})."
            ) from exc
        if response.status_code >= 400:
            raise self.error_for(response, doing)
        return response

    def error_text(self, body: Any) -> str:
        """The service's own words from an error body."""
        if isinstance(body, dict):
            for key in ("detail", "error", "message"):
                value = body.get(key)
                if isinstance(value, dict):
                    value = value.get("message") or json.dumps(value)
                if isinstance(value, list) and value and isinstance(value[0], dict):
                    value = value[0].get("msg") or json.dumps(value[0])
                if value:
                    return clip(value, 300)
        if isinstance(body, list) and body and isinstance(body[0], dict):
            return clip(body[0].get("msg") or json.dumps(body[0]), 300)
        return ""

    def is_safety_block(self, body: Any, text: str = "") -> bool:
        haystack = (json.dumps(body) if body is not None else "") + " " + text
        haystack = haystack.lower()
        return any(marker.lower() in haystack for marker in self.safety_markers)

    def safety_error(self, detail: str = "") -> PermanentProviderError:
        detail = f" ({clip(detail, 200).rstrip('.')})" if detail else ""
        return PermanentProviderError(
            f"{self.service}'s safety system blocked this request{detail}; reword the prompt, because sending the "
            "same one again will be blocked again."
        )

    def error_for(self, response: requests.Response, doing: str) -> ProviderError:
        """An error answer sorted: safety blocks and bad requests permanent, 429 and 5xx transient."""
        status = response.status_code
        body = json_body(response)
        text = self.error_text(body) or clip(response.text or response.reason or "", 300)
        if self.is_safety_block(body, text):
            return self.safety_error(text)
        if status == 429:
            return TransientProviderError(
                f"{self.service} is rate limiting requests (429) while {doing}: {text or 'too many requests'}.",
                retry_after=retry_after(response.headers),
            )
        if is_transient_status(status):
            return TransientProviderError(
                f"{self.service} failed while {doing} ({status}): {text or 'server error'}.",
                retry_after=retry_after(response.headers),
            )
        if status == 401:
            names = " / ".join(self.key_names) or "the api_key option"
            return PermanentProviderError(f"{self.service} rejected the API key (401); check {names}.")
        if status == 402:
            return PermanentProviderError(f"{self.service} says the account has no credit left (402): {text}.")
        return PermanentProviderError(f"{self.service} rejected the request while {doing} ({status}): {text}.")

    def fetch_result(self, session: requests.Session, url: str, what: str) -> bytes:
        """Download a result URL, once. Such URLs are signed and short-lived; an expired one is permanent."""
        timeout = float(self.options.get("download_timeout", 60.0))
        try:
            # No API key: result URLs are signed for anyone, and the key must not leak to a CDN.
            response = requests.get(url, timeout=timeout)
        except requests.RequestException as exc:
            raise TransientProviderError(
                f"{self.service} finished {what}, but its image could not be downloaded ({connection_reason(exc)})."
            ) from exc
        if response.status_code in EXPIRED_STATUSES:
            raise PermanentProviderError(
                f"{self.service} finished {what}, but the result URL expired before it was fetched "
                f"({response.status_code}); generate the image again."
            )
        if response.status_code >= 400:
            raise TransientProviderError(
                f"{self.service} finished {what}, but downloading its image failed ({response.status_code}).",
                retry_after=retry_after(response.headers),
            )
        if not image_type(response.content):
            raise PermanentProviderError(
                f"{self.service} returned data for {what} that is not a PNG, JPEG or WebP image."
            )
        return response.content

    def health(self) -> ProviderHealth:
        info = {"base_url": self.base_url(), "model": self.options["model"]}
        if not self.api_key():
            return ProviderHealth(ok=False, detail=self.not_configured(), info=info)
        return self.check_health(info)

    def check_health(self, info: dict[str, Any]) -> ProviderHealth:
        """A free call that proves the key works; without one, say the key is set and not checked."""
        return ProviderHealth(ok=True, detail=f"API key set; {self.service} offers no free check", info=info)

    def health_get(self, url: str, info: dict[str, Any], headers: dict[str, str]) -> ProviderHealth:
        try:
            response = requests.get(url, headers=headers, timeout=float(self.options.get("health_timeout", 5.0)))
        except requests.RequestException as exc:
            return ProviderHealth(
                ok=False, detail=f"{self.service} is unreachable ({connection_reason(exc)})", info=info
            )
        if response.status_code in (401, 403):
            return ProviderHealth(
                ok=False, detail=f"{self.service} refused the API key ({response.status_code})", info=info
            )
        if response.status_code >= 400:
            return ProviderHealth(ok=False, detail=f"{self.service} answered {response.status_code}", info=info)
        return ProviderHealth(ok=True, detail=f"{self.service} reachable at {self.base_url()}", info=info)


# --- asynchronous job APIs ---------------------------------------------------------------------------------


QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = "queued", "running", "succeeded", "failed", "cancelled"
FINAL = {SUCCEEDED, FAILED, CANCELLED}


@dataclass
class Job:
    """A submitted job: the service's id and the URLs it gave for it (polling, cancel, result)."""

    id: str
    model: str
    urls: dict[str, str] = field(default_factory=dict)
    #: What the submit answer already said (Replicate's ``Prefer: wait`` can finish the job there).
    state: JobState | None = None


@dataclass
class JobState:
    status: str  # QUEUED, RUNNING, SUCCEEDED, FAILED or CANCELLED
    message: str = ""  # progress text for editors
    result_url: str = ""  # SUCCEEDED: where the image is
    seed: int | None = None
    error: ProviderError | None = None  # FAILED: why, already sorted into transient / permanent
    metadata: dict[str, Any] = field(default_factory=dict)


class AsyncJobProvider(HostedProvider):
    """Submit, then poll with backoff (and take webhooks) until the job settles, then fetch its image once."""

    #: Whether the service can call a webhook (and so whether one is asked for).
    supports_webhooks: ClassVar[bool] = True
    #: Whether the service can cancel a job; if not, a cancel only stops our waiting.
    can_cancel: ClassVar[bool] = True

    # --- what each service implements ----------------------------------------------------------

    def submit(self, session: requests.Session, request: PreparedRequest, hook: str) -> Job:
        raise NotImplementedError

    def poll(self, session: requests.Session, job: Job) -> JobState:
        raise NotImplementedError

    def state_from_webhook(self, payload: Any, job: Job) -> JobState | None:
        """The outcome a webhook's body tells for ``job``; None if it is not about that job."""
        raise NotImplementedError

    def cancel_job(self, session: requests.Session, job: Job) -> bool:
        return False

    def verify_webhook(self, headers: dict[str, str], body: bytes) -> None:
        """Raise WebhookRejected unless the service signed this delivery (where it signs)."""

    def image_for(self, session: requests.Session, job: Job, state: JobState) -> bytes:
        if not state.result_url:
            raise PermanentProviderError(f"{self.service} job {job.id} finished without an image.")
        return self.fetch_result(session, state.result_url, f"job {job.id}")

    # --- timing options ---------------------------------------------------------------------------

    def _number(self, option: str) -> float:
        value = self.options[option]
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ImproperlyConfigured(
                f"BLOGIMAGES_PROVIDERS[{self.alias!r}]['OPTIONS'][{option!r}] must be a number, not {value!r}."
            ) from None

    # --- the loop ----------------------------------------------------------------------------------------

    def remote_server(self, job: Job) -> str:
        """Recorded beside the job id, so a later cancel knows the job is this alias's (and its model)."""
        return f"{self.alias}|{job.model}"

    def generate(self, request: GenerationRequest, reporter: ProgressReporter) -> GeneratedImage:
        request = self.prepared(request)
        key = self.require_key()
        if reporter.cancelled():
            raise GenerationCancelled(f"Cancelled before the request was sent to {self.service}.")
        nonce = secrets.token_urlsafe(18)
        hook = webhook_url(self.alias, nonce) if self.supports_webhooks else ""
        started = time.monotonic()
        with requests.Session() as session:
            session.headers.update(self.headers(key))
            job = self.submit(session, request, hook)
            reporter.remote_id(job.id, self.remote_server(job))
            reporter.progress(2, f"sent to {self.service} ({request.model})")
            # No webhook asked for: nothing to look for in Redis between polls.
            state = self._wait(session, job, nonce if hook else "", reporter, started)
            reporter.progress(97, f"downloading the image from {self.service}")
            content = self.image_for(session, job, state)
        metadata = {
            "job_id": job.id,
            "seconds": round(time.monotonic() - started, 2),
            "webhook": bool(hook),
            **{k: v for k, v in request.extra.items() if k in ("aspect_ratio", "image_size")},
            **state.metadata,
        }
        reporter.progress(100, f"received from {self.service}")
        return GeneratedImage(
            content=content,
            seed=state.seed if state.seed is not None else request.seed,
            model=request.model,
            provider=self.alias,
            remote_id=job.id,
            remote_server=self.remote_server(job),
            metadata={k: v for k, v in metadata.items() if v not in (None, "")},
        )

    def _wait(
        self, session: requests.Session, job: Job, nonce: str, reporter: ProgressReporter, started: float
    ) -> JobState:
        interval = self._number("poll_interval")
        max_interval = max(interval, self._number("max_poll_interval"))
        deadline = started + self._number("timeout")
        state = job.state or JobState(QUEUED, "queued")
        next_poll = time.monotonic() + interval
        errors = 0
        polls = 0
        while state.status not in FINAL:
            if reporter.cancelled():
                acted = self._cancel(session, job)
                billed = "" if acted else f" ({self.service} cannot cancel it and may still bill for it)"
                raise GenerationCancelled(f"Cancelled while {self.service} job {job.id} was {state.status}{billed}.")
            # A webhook may have come at any time, even before the submit call answered.
            payload = take_webhook(self.alias, nonce) if nonce else None
            if payload is not None:
                from_hook = self.state_from_webhook(payload, job)
                if from_hook is not None:
                    from_hook.metadata = {**from_hook.metadata, "settled_by": "webhook"}
                    state = from_hook
                    continue
            now = time.monotonic()
            if now >= deadline:
                self._cancel(session, job)
                limit = self._number("timeout")
                raise TransientProviderError(
                    f"{self.service} job {job.id} did not finish within {limit:g} s (last status {state.status}); it "
                    "was cancelled. Raise the provider's 'timeout' option if images take longer."
                )
            if now >= next_poll:
                polls += 1
                try:
                    state = self.poll(session, job)
                    errors = 0
                except TransientProviderError as exc:
                    errors += 1
                    if errors >= POLL_ERRORS_TOLERATED:
                        self._cancel(session, job)
                        raise
                    if exc.retry_after is not None:
                        next_poll = time.monotonic() + min(exc.retry_after, max_interval)
                        continue
                next_poll = time.monotonic() + interval
                interval = min(interval * float(self.options.get("poll_backoff", 1.5)), max_interval)
                if state.status not in FINAL:
                    elapsed = time.monotonic() - started
                    base = 3 if state.status == QUEUED else 10
                    reporter.progress(base + 85 * (1 - math.exp(-elapsed / 30)), state.message or state.status)
                continue
            time.sleep(max(0.0, min(TICK, next_poll - now, deadline - now)))
        if state.status == FAILED:
            raise state.error or PermanentProviderError(f"{self.service} job {job.id} failed.")
        if state.status == CANCELLED:
            if reporter.cancelled():
                raise GenerationCancelled(f"{self.service} job {job.id} was cancelled.")
            raise PermanentProviderError(
                f"{self.service} job {job.id} was cancelled on {self.service} (not by blogimages)."
            )
        state.metadata = {"polls": polls, **state.metadata}
        return state

    def _cancel(self, session: requests.Session, job: Job) -> bool:
        if not self.can_cancel:
            return False
        try:
            return self.cancel_job(session, job)
        except ProviderError as exc:
            logger.warning("Could not cancel %s job %s: %s", self.service, job.id, exc)
            return False

    def cancel(self, remote_id: str, remote_server: str = "") -> bool:
        """Cancel a job this alias recorded (``auto`` asks every provider; others' ids are left alone)."""
        alias, _, model = remote_server.partition("|")
        if not remote_id or alias != self.alias or not self.can_cancel:
            return False
        key = self.api_key()
        if not key:
            return False
        with requests.Session() as session:
            session.headers.update(self.headers(key))
            return self._cancel(session, Job(id=remote_id, model=model or self.options["model"]))


#: Options every asynchronous job provider takes, with their defaults.
ASYNC_OPTIONS: dict[str, Any] = {
    "poll_interval": 1.0,  # seconds before the first poll; grows by poll_backoff after each
    "poll_backoff": 1.5,
    "max_poll_interval": 10.0,
    "timeout": 300.0,  # wall-clock seconds from submission, queue time included; keep below BLOGIMAGES_JOB_TIMEOUT
    "request_timeout": 30.0,  # seconds for each HTTP call
    "download_timeout": 60.0,
    "health_timeout": 5.0,
}
