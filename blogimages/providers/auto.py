"""``auto``: try providers in a configured order and use the first that can serve.

For an edit (``request.edit``: refine, variations, upscale, reference) only the providers
whose ``edit_refusal`` is empty are tried; ``auto``'s own ``edit_refusal`` is empty when
at least one can, and names each candidate's reason when none can.

A provider is skipped when its health check fails (cached for ``health_ttl`` seconds so
a post of forty sections does not probe forty times), when it is a paid cloud API and
``ENABLE_CLOUD_APIS`` is off, or when it cannot take the request (its ``prepare``
refuses it, e.g. a model it does not have). A transient failure while generating falls
through to the next provider; a permanent one (a safety block) ends the attempt, since
it is about the request, not the provider. The alias that served is recorded on the
image, so the result shows which provider made it.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from ..conf import app_settings
from ..contract import ForwardingReporter, GeneratedImage, GenerationRequest, ProgressReporter, ProviderHealth
from ..exceptions import GenerationCancelled, PermanentProviderError, ProviderUnavailable, TransientProviderError
from .base import BaseProvider


class _Relay(ForwardingReporter):
    """Passes a chosen provider's reports through, naming it in progress messages."""

    def __init__(self, inner: ProgressReporter, alias: str):
        super().__init__(inner)
        self.alias = alias

    def progress(self, percent: float, message: str = "") -> None:
        self.inner.progress(percent, f"{self.alias}: {message}" if message else self.alias)


class AutoProvider(BaseProvider):
    label = "Automatic (first available)"
    kind = "auto"
    # The provider auto chooses prepares the request again, and composes the prompt its way.
    follows_instructions = True
    default_options = {
        "order": [],  # aliases to try, first first; empty: every other configured provider, in settings order
        "health_ttl": 10.0,  # seconds a health answer is trusted
    }

    def __init__(self, alias: str, **options: Any):
        super().__init__(alias, **options)
        order = self.options["order"]
        where = f"BLOGIMAGES_PROVIDERS[{alias!r}]['OPTIONS']['order']"
        if isinstance(order, str) or not isinstance(order, (list, tuple)):
            raise ImproperlyConfigured(f"{where} must be a list of provider aliases, not {order!r}.")
        configured = app_settings.PROVIDERS
        for name in order:
            if name not in configured:
                raise ImproperlyConfigured(
                    f"{where} names {name!r}, which is not in BLOGIMAGES_PROVIDERS ({', '.join(configured)})."
                )
            if name == alias or _is_auto(configured[name]):
                raise ImproperlyConfigured(f"{where} names {name!r}, another automatic provider; list real providers.")
        self._health: dict[str, tuple[float, ProviderHealth]] = {}
        self._lock = threading.Lock()

    def candidates(self) -> list[str]:
        order = list(self.options["order"])
        if order:
            return order
        return [name for name, config in app_settings.PROVIDERS.items() if name != self.alias and not _is_auto(config)]

    def health_of(self, alias: str, provider: BaseProvider) -> ProviderHealth:
        now = time.monotonic()
        with self._lock:
            cached = self._health.get(alias)
        if cached and now - cached[0] < float(self.options["health_ttl"]):
            return cached[1]
        try:
            health = provider.health()
        except Exception as exc:  # noqa: BLE001 - a broken health check means "do not use it now"
            health = ProviderHealth(ok=False, detail=f"health check failed: {exc.__class__.__name__}: {exc}")
        with self._lock:
            self._health[alias] = (time.monotonic(), health)
        return health

    def _usable(self, alias: str) -> tuple[BaseProvider | None, str, bool]:
        """(provider, why it is skipped, whether that reason may pass) for one candidate."""
        from . import providers

        try:
            provider = providers[alias]
        except ImproperlyConfigured as exc:
            return None, f"misconfigured ({exc})", False
        if provider.is_cloud and not app_settings.ENABLE_CLOUD_APIS:
            return None, "is a paid cloud API and ENABLE_CLOUD_APIS is off", False
        health = self.health_of(alias, provider)
        if not health.ok:
            return None, f"is unhealthy ({health.detail})", True
        return provider, "", False

    # --- edits: only the candidates that can do one are tried ------------------------------------

    def _configured(self, alias: str) -> tuple[BaseProvider | None, str]:
        """(provider, why it is left out) without a health check: quick and offline."""
        from . import providers

        try:
            provider = providers[alias]
        except ImproperlyConfigured as exc:
            return None, f"misconfigured ({exc})"
        if provider.is_cloud and not app_settings.ENABLE_CLOUD_APIS:
            return None, "is a paid cloud API and ENABLE_CLOUD_APIS is off"
        return provider, ""

    @property
    def operations(self) -> frozenset[str]:  # type: ignore[override]
        """The edits at least one candidate can do."""
        found: set[str] = set()
        for alias in self.candidates():
            provider, _ = self._configured(alias)
            if provider is not None:
                found |= set(provider.operations)
        return frozenset(found)

    def edit_refusal(self, request: GenerationRequest) -> str:
        """ "" when at least one candidate can do ``request.edit`` (health aside: that is
        learnt when the job runs); else why none can, each candidate named."""
        if request.edit is None:
            return ""
        reasons = []
        for alias in self.candidates():
            provider, why = self._configured(alias)
            if provider is not None:
                why = provider.edit_refusal(request)
                if not why:
                    return ""
            reasons.append(f"{alias}: {why.rstrip('.')}")
        if not reasons:
            return f"Provider {self.alias!r} has no providers to try; list them in its OPTIONS['order']."
        return f"No provider that {self.alias} may use can {request.edit.operation} this image ({'; '.join(reasons)})."

    def generate(self, request: GenerationRequest, reporter: ProgressReporter) -> GeneratedImage:
        skipped: list[tuple[str, str, bool]] = []  # (alias, why, transient)
        waits: list[float] = []
        for alias in self.candidates():
            if reporter.cancelled():
                raise GenerationCancelled("Cancelled while choosing a provider.")
            if request.edit is not None:  # asked before the health check: it costs nothing
                configured, _ = self._configured(alias)
                if configured is not None and (refusal := configured.edit_refusal(request)):
                    skipped.append((alias, f"cannot do this ({refusal.rstrip('.')})", False))
                    continue
            provider, why, transient = self._usable(alias)
            if provider is None:
                skipped.append((alias, why, transient))
                continue
            try:
                prepared, adjustments = provider.prepare(request)
            except TransientProviderError as exc:
                skipped.append((alias, f"could not check the request ({exc})", True))
                continue
            except PermanentProviderError as exc:
                skipped.append((alias, f"cannot take this request ({exc})", False))
                continue
            reporter.progress(1, f"using {alias}")
            try:
                image = provider.generate(prepared, _Relay(reporter, alias))
            except TransientProviderError as exc:  # ProviderUnavailable included
                skipped.append((alias, f"failed ({exc})", True))
                if exc.retry_after is not None:
                    waits.append(exc.retry_after)
                continue
            image.provider = alias
            metadata = dict(image.metadata)
            if adjustments:
                metadata["adjustments"] = [*metadata.get("adjustments", []), *adjustments]
            if skipped:
                metadata["auto_skipped"] = {name: reason for name, reason, _ in skipped}
            image.metadata = metadata
            return image
        if not skipped:
            raise PermanentProviderError(
                f"Provider {self.alias!r} has no providers to try; list them in its OPTIONS['order']."
            )
        reasons = "; ".join(f"{name} {reason}" for name, reason, _ in skipped)
        message = f"No provider could make this image: {reasons}."
        if any(transient for _, _, transient in skipped):
            # Some may recover (a server restarting, a rate limit): let the job retry.
            raise ProviderUnavailable(message, retry_after=min(waits) if waits else None)
        raise PermanentProviderError(message)

    def health(self) -> ProviderHealth:
        info = {}
        for alias in self.candidates():
            provider, why, _ = self._usable(alias)
            info[alias] = "ok" if provider is not None else why
        usable = [alias for alias, state in info.items() if state == "ok"]
        if usable:
            return ProviderHealth(ok=True, detail=f"would use {usable[0]}", info=info)
        return ProviderHealth(ok=False, detail="no provider is usable", info=info)

    def cancel(self, remote_id: str, remote_server: str = "") -> bool:
        # The result records only "auto" until it succeeds; remote ids (ComfyUI prompt
        # ids) are unique, so asking each provider in turn cancels that job and nothing else.
        from . import providers

        for alias in self.candidates():
            try:
                if providers[alias].cancel(remote_id, remote_server):
                    return True
            except Exception:  # noqa: BLE001, S112 - best effort: the next provider may own it
                continue
        return False

    def models(self) -> list[str]:
        from . import providers

        seen: dict[str, None] = {}
        for alias in self.candidates():
            try:
                seen.update(dict.fromkeys(providers[alias].models()))
            except ImproperlyConfigured:
                continue
        return list(seen)


def _is_auto(config: dict[str, Any]) -> bool:
    backend = config.get("BACKEND", "") if isinstance(config, dict) else ""
    if backend == f"{__name__}.AutoProvider":
        return True
    try:
        return issubclass(import_string(backend), AutoProvider)
    except (ImportError, TypeError):
        return False
