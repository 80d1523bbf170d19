"""When OpenAI shuts its image models down: the capability table's dates, merged with the live ones.

``GET /v1/models`` reports each model's ``shutdown_date`` ("YYYY-MM-DD", or null when none
is announced; see https://developers.openai.com/api/reference/resources/models/methods/list
and the ``openai`` SDK's ``types/model.py``). The OpenAI provider reads it at most once per
cache period into Django's cache (its health check, which lists models anyway, refreshes
it too), with a short time limit; a failed read is remembered for a few minutes and the
table's dates apply meanwhile, which the status page and ``blogimages_status`` say.

Nothing here makes a network call: :func:`cached` only reads the cache, so ``prepare()``,
system checks and page rendering stay quick. The provider's ``refresh_lifecycle()`` is the
one place that fetches.
"""

from __future__ import annotations

import datetime
import hashlib
import logging
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from django.core.cache import cache
from django.utils import timezone

from ..conf import app_settings
from .capabilities import DEPRECATIONS_URL, ModelCaps

if TYPE_CHECKING:
    from collections.abc import Iterable

logger = logging.getLogger("blogimages.providers.openai")

#: How long a successful read of ``GET /v1/models`` is used before the next one.
CACHE_SECONDS = 24 * 3600
#: How long a failed read is remembered (the table applies meanwhile) before trying again.
RETRY_FAILED_AFTER = 15 * 60
LIVE = "GET /v1/models"
TABLE = "the capability table"
SETTING = "BLOGIMAGES_OPENAI_MODEL_REPLACEMENTS"


def today() -> datetime.date:
    """The current UTC day: OpenAI gives shutdown dates as plain dates."""
    return timezone.now().astimezone(datetime.UTC).date()


# --- what the models endpoint said ----------------------------------------------------------------


@dataclass(frozen=True)
class ModelsSnapshot:
    """One read of ``GET {base_url}/models``: the shutdown dates it reported, or why it failed."""

    base_url: str
    fetched_at: str  # ISO datetime, UTC
    #: Models whose entry carries ``shutdown_date``: the date, or None when none is announced.
    #: A model listed without the field (older or compatible servers) is left out, so the
    #: table's date applies to it.
    dates: dict[str, str | None] = field(default_factory=dict)
    listed: int = 0
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error

    def describe(self) -> str:
        """One sentence for the status page: where shutdown dates come from now."""
        when = self.fetched_at[:16].replace("T", " ")
        if self.ok:
            return f"Shutdown dates from {LIVE} (read {when} UTC, {len(self.dates)} of {self.listed} models give one)."
        return f"Shutdown dates from {TABLE}: {LIVE} could not be read at {when} UTC ({self.error})."


def cache_key(base_url: str) -> str:
    digest = hashlib.sha256(base_url.encode()).hexdigest()[:16]
    return f"{app_settings.KEY_PREFIX}:openai-models:{digest}"


def cached(base_url: str) -> ModelsSnapshot | None:
    """The last read for ``base_url`` still within its cache period; None if there is none."""
    raw = cache.get(cache_key(base_url))
    if not isinstance(raw, dict):
        return None
    try:
        return ModelsSnapshot(**raw)
    except TypeError:  # written by another version of this module
        return None


def remember(snapshot: ModelsSnapshot) -> ModelsSnapshot:
    ttl = CACHE_SECONDS if snapshot.ok else RETRY_FAILED_AFTER
    cache.set(cache_key(snapshot.base_url), asdict(snapshot), ttl)
    return snapshot


def from_models(base_url: str, models: Iterable[Any]) -> ModelsSnapshot:
    """A snapshot from the SDK's ``Model`` objects (``client.models.list().data``)."""
    dates: dict[str, str | None] = {}
    listed = 0
    for model in models:
        listed += 1
        if "shutdown_date" in getattr(model, "model_fields_set", ()):
            value = model.shutdown_date
            dates[str(model.id)] = str(value)[:10] if value else None
    return ModelsSnapshot(base_url=base_url, fetched_at=timezone.now().isoformat(), dates=dates, listed=listed)


def failed(base_url: str, error: str) -> ModelsSnapshot:
    return ModelsSnapshot(base_url=base_url, fetched_at=timezone.now().isoformat(), error=error[:300])


# --- one model's lifecycle -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Lifecycle:
    model: str
    label: str
    shutdown: datetime.date | None
    replacement: str  # from the table: what OpenAI recommends instead ("" if not recorded)
    source: str  # LIVE or TABLE

    def retired(self, on: datetime.date | None = None) -> bool:
        return self.shutdown is not None and self.shutdown <= (on or today())

    def days_left(self, on: datetime.date | None = None) -> int | None:
        return None if self.shutdown is None else (self.shutdown - (on or today())).days

    def instead(self) -> str:
        return f"use {self.replacement} instead" if self.replacement else f"see {DEPRECATIONS_URL} for a successor"


def merge(caps: ModelCaps, snapshot: ModelsSnapshot | None) -> Lifecycle:
    """``caps``' lifecycle: the live shutdown date where the models endpoint gave one, else the table's."""
    shutdown, source = caps.shutdown, TABLE
    if snapshot is not None and snapshot.ok and caps.model in snapshot.dates:
        raw = snapshot.dates[caps.model]
        try:
            shutdown, source = (datetime.date.fromisoformat(raw) if raw else None), LIVE
        except ValueError:
            logger.warning("%s gave %r as shutdown_date of %s; using the table's date", LIVE, raw, caps.model)
    return Lifecycle(caps.model, caps.label, shutdown, caps.replacement, source)


# --- warnings: retiring models that settings still name ---------------------------------------------------


@dataclass
class RetirementWarning:
    alias: str
    lifecycle: Lifecycle
    used_by: list[str]
    successor: str = ""  # BLOGIMAGES_OPENAI_MODEL_REPLACEMENTS' choice, "" if none

    @property
    def retired(self) -> bool:
        return self.lifecycle.retired()

    def sentence(self) -> str:
        lc = self.lifecycle
        who = f"{lc.model} (used by {', '.join(self.used_by)})"
        said = "" if lc.source == TABLE else f", says {LIVE}"
        if self.retired:
            head = f"{who} was shut down by OpenAI on {lc.shutdown}{said}"
            if self.successor:
                return f"{head}; its requests go to {self.successor} ({SETTING})."
            return f"{head}; requests for it are refused: {lc.instead()}, or map it to a successor in {SETTING}."
        days = lc.days_left()
        when = "tomorrow" if days == 1 else f"in {days} days"
        tail = f"; {SETTING} then sends its requests to {self.successor}" if self.successor else ""
        return f"{who} shuts down on {lc.shutdown} ({when}{said}): {lc.instead()}{tail}."


def model_uses() -> dict[str, list[str]]:
    """Which image settings and prompt examples name each model: ``{model: ["image setting 'Hero'", ...]}``."""
    from ..models import ImagePromptExample, ImageSetting

    uses: dict[str, list[str]] = {}
    for kind, model_class in (("image setting", ImageSetting), ("prompt example", ImagePromptExample)):
        for name, model in model_class.objects.exclude(model="").values_list("name", "model").order_by("name"):
            uses.setdefault(model, []).append(f"{kind} {name!r}")
    return uses


def retirement_warnings(
    aliases: Iterable[str], *, uses: dict[str, list[str]] | None = None, defaults: bool = True
) -> list[RetirementWarning]:
    """Models that OpenAI providers ``aliases`` would be asked for and that retire within
    BLOGIMAGES_OPENAI_RETIREMENT_WARNING_DAYS or already have.

    A model counts as asked for when it is a provider's default (its ``model`` option;
    not with ``defaults=False``) or ``uses`` names it (see :func:`model_uses`; None reads
    them from the database). Only cached shutdown dates are used: nothing is fetched.
    """
    from . import providers

    if uses is None:
        uses = model_uses()
    horizon = app_settings.OPENAI_RETIREMENT_WARNING_DAYS
    replacements = app_settings.OPENAI_MODEL_REPLACEMENTS or {}
    found = []
    for alias in aliases:
        try:
            provider = providers[alias]
        except Exception:  # noqa: BLE001, S112 - E011 and the provider's health say why
            continue
        asked = {model: list(names) for model, names in uses.items()}
        if defaults:
            default = provider.options["model"]
            asked.setdefault(default, []).insert(0, f"BLOGIMAGES_PROVIDERS[{alias!r}] as its default model")
        for model, used_by in asked.items():
            lifecycle = provider.lifecycle(model)
            days = lifecycle.days_left() if lifecycle else None
            if days is None or days > horizon:
                continue
            found.append(RetirementWarning(alias, lifecycle, used_by, str(replacements.get(model) or "")))
    return found
