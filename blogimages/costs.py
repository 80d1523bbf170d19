"""What images cost: prices as data, each result's estimate, monthly budgets and spend.

Prices
------
:data:`PRICES` maps a provider *kind* (``openai``, ``bfl``, ...; the provider class's
``kind``) to models, each model to a price entry; ``"*"`` is any model of that kind.
``BLOGIMAGES_PRICES`` is merged over it, entry by entry, and may also key an entry by a
provider *alias* (which wins over the kind), e.g. two RunPod endpoints on different GPUs::

    BLOGIMAGES_PRICES = {
        "runpod": {"*": {"second": "0.00031", "seconds": 25}},          # an RTX 4090 endpoint
        "comfyui": {"*": {"image": "0.002"}},                           # your own GPU's power bill
        "openai": {"gpt-image-2.6-flare": {"image": {"low": "0.01", "medium": "0.05", "high": "0.2"}}},
    }

Keys of an entry (amounts in US dollars, as strings or numbers):

``image``           per image: one amount, or ``{quality: amount}`` (``auto`` or no quality
                    is priced as ``high`` unless the entry names ``auto``).
``sizes``           ``{"WxH": <like image>}``: per image for those sizes, over ``image``.
``image_size``      ``{"1K": amount, ...}``: per image by Gemini's named resolution.
``megapixel``       per started megapixel of output (1 MP = 1024 x 1024 pixels, rounded up).
``extra_megapixel`` with ``image``: each started megapixel past the first.
``tokens``          USD per million tokens, to price the usage a provider reports:
                    ``input`` (text in), ``input_image``, ``output`` (image out),
                    ``output_text``. Used to correct the estimate after generation.
``second``, ``seconds``
                    per second of GPU, and the seconds an image is estimated to take;
                    corrected from the ``execution_ms`` a RunPod job reports.

A kind or model with no entry has no known price: its results record no estimate
(``cost_estimate`` is NULL, shown as "price not set"), count as nothing against budgets,
and the status page lists them so an operator can set one.

Budgets
-------
``BLOGIMAGES_BUDGETS = {"SITE_MONTHLY": "200.00", "USER_MONTHLY": "20.00", "USERS":
{"alice": "50.00"}}`` (each optional). :func:`reserve` runs inside the service layer's
transaction before a result is created or re-queued: it locks the month's
:class:`~blogimages.models.BudgetLock` rows (the site's, then the user's), sums what the
month already holds and refuses with :class:`BudgetExceeded` if the request would go
over. Two requests at once take turns on the lock, so they cannot overshoot together.

What counts: the estimates of the month's results that are queued, running or
succeeded (by ``charged_at``, when the result was last sent to the queue). A result
that fails or is cancelled releases its amount; its re-queue reserves it again. The
check uses estimates; an image whose reported usage costs more than estimated is
recorded at what it cost, so the month's spend can end a little over a budget, never by
a request the check let through knowing it would.
"""

from __future__ import annotations

import csv
import datetime
import io
import math
from collections import defaultdict
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Iterable

from django.core.exceptions import ImproperlyConfigured
from django.db.models import Count, Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from .conf import app_settings
from .exceptions import BlogImagesError

CURRENCY = "USD"
#: One megapixel as the hosted APIs bill it (fal: "1024x1024 = 1 MP").
MEGAPIXEL = 1024 * 1024
#: The statuses whose estimate counts against a budget: spent, or on its way.
COUNTED_STATUSES = ("queued", "running", "succeeded")
ZERO = Decimal("0")
FREE = {"*": {"image": "0"}}

# --- the built-in table --------------------------------------------------------------------------
# Sources, searched on 2026-12-02 (the project's "today"). Where only a third party states a
# price, the entry says "unverified"; correct any of them through BLOGIMAGES_PRICES.
#
# [OAI-TOK]  gpt-image-2 token rates: text in $5/M, image in $8/M, image out $30/M, text out
#            $10/M: https://xairouter.com/en/models/gpt-image-2/ ("updated from OpenAI's official
#            model page ... and pricing page") and fal's passthrough https://fal.ai/models/openai/gpt-image-2/llms.txt.
#            OpenAI's own https://developers.openai.com/api/docs/pricing#image-generation was not
#            in the search index.
# [OAI-CALC] gpt-image-2 high 1024x1024 = 7024 output tokens (~$0.21), from OpenAI's cost
#            calculator as quoted on https://community.openai.com/t/livestream-starting-now-chatgpt-images-2-0/1379464?page=2;
#            low and medium per-image estimates ($0.02, $0.07) are fal's
#            (https://www.skills.sh/athina-ai/goose-skills/create-image-gpt-image-fal): unverified.
#            Token counts do not grow with area (1536x1024 is fewer tokens than 1024x1024), so the
#            estimate is per quality only; the usage OpenAI returns corrects it.
# [OAI-15]   gpt-image-1.5 per image by quality and size, as mirrored at
#            https://docs.apiyi.com/api-capabilities/gpt-image-2/historical-versions: unverified.
# [BFL]      https://docs.bfl.ai/quick_start/pricing: 1 credit = $0.01; FLUX.2 megapixel-based,
#            "from" $0.03 [pro], $0.07 [max], $0.05 [flex], $0.014 [klein] 4B, $0.015 [klein] 9B;
#            FLUX1.1 [pro] $0.04 an image (https://docs.flexprice.io/cookbooks/pricing-teardowns/black-forest-labs-pricing.md,
#            from bfl.ai/pricing on 2026-11-16). [pro]'s $0.015 per further megapixel: fal's mirror
#            (skillspool fal-flux page), unverified; the others scale per megapixel, unverified.
# [REP]      https://replicate.com/pricing as transcribed on 2026-10-07
#            (raw.githubusercontent.com/api-evangelist/replicate/.../replicate-plans-pricing.yml):
#            flux-1.1-pro $0.04, flux-dev $0.025 an output image, flux-schnell $3.00 a thousand.
# [FAL]      per megapixel, rounded up: schnell $0.003, dev $0.025, flux-pro v1.1 $0.055
#            (https://skillspool.org/... fal-flux-prompting skill; dev also
#            https://www.workflowlab.dev/cost/flux-dev-fal): unverified on fal.ai/pricing itself.
# [GEM]      https://ai.google.dev/gemini-api/docs/pricing as quoted on
#            https://discuss.ai.google.dev/t/issue-with-url-context-tooling/101173 and
#            https://aifreeapi.com/en/posts/gemini-image-generation-api-pricing: 2.5 Flash Image $0.039
#            an image (1290 tokens at $30/M out; $0.30/M in); 3 Pro Image $0.134 at 1K/2K, $0.24 at 4K.
# [RUNPOD]   https://docs.runpod.io/serverless/pricing: per second by GPU type, billed from a
#            worker's start to its stop. Which GPU an endpoint runs is not known here: no price
#            until the operator sets one ("second" and "seconds").
GPT_IMAGE_2 = {
    # [OAI-CALC]; "auto" is billed as high (https://pixapi.ai/docs/models/gpt-image-2/, unverified).
    "image": {"low": "0.02", "medium": "0.07", "high": "0.21"},
    "tokens": {"input": "5.00", "input_image": "8.00", "output": "30.00", "output_text": "10.00"},  # [OAI-TOK]
}
GPT_IMAGE_15 = {  # [OAI-15], unverified
    "image": {"low": "0.013", "medium": "0.05", "high": "0.20"},
    "sizes": {"1024x1024": {"low": "0.009", "medium": "0.034", "high": "0.133"}},
}

PRICES: dict[str, dict[str, dict[str, Any]]] = {
    "openai": {
        "gpt-image-2": GPT_IMAGE_2,
        "gpt-image-2-2026-04-21": GPT_IMAGE_2,
        "gpt-image-1.5": GPT_IMAGE_15,
        "gpt-image-1.5-2025-12-16": GPT_IMAGE_15,
        # gpt-image-2.5 / 2.6 (Sunburst, Flare): no price found in search; set one in BLOGIMAGES_PRICES.
    },
    "bfl": {
        "flux-2-pro": {"image": "0.03", "extra_megapixel": "0.015"},  # [BFL]
        "flux-2-max": {"megapixel": "0.07"},  # [BFL] "from"; scaling unverified
        "flux-2-flex": {"megapixel": "0.05"},  # [BFL] "from"; scaling unverified
        "flux-2-klein-4b": {"megapixel": "0.014"},  # [BFL] "from"; scaling unverified
        "flux-2-klein-9b": {"megapixel": "0.015"},  # [BFL] "from"; scaling unverified
        "flux-pro-1.1": {"image": "0.04"},  # [BFL]
    },
    "replicate": {
        "black-forest-labs/flux-schnell": {"image": "0.003"},  # [REP]
        "black-forest-labs/flux-dev": {"image": "0.025"},  # [REP]
        "black-forest-labs/flux-1.1-pro": {"image": "0.04"},  # [REP]
    },
    "fal": {
        "fal-ai/flux/schnell": {"megapixel": "0.003"},  # [FAL]
        "fal-ai/flux/dev": {"megapixel": "0.025"},  # [FAL]
        "fal-ai/flux-pro/v1.1": {"megapixel": "0.055"},  # [FAL]
    },
    "gemini": {
        "gemini-2.5-flash-image": {"image": "0.039", "tokens": {"input": "0.30", "output": "30.00"}},  # [GEM]
        "gemini-3-pro-image-preview": {"image": "0.134", "image_size": {"1K": "0.134", "2K": "0.134", "4K": "0.24"}},
    },
    # Self-hosted: nothing is billed per image. An operator who wants power or a rented GPU
    # counted sets a price for the kind (or the alias) in BLOGIMAGES_PRICES.
    "comfyui": FREE,
    "automatic1111": FREE,
    "diffusers": FREE,
    "placeholder": FREE,
    # "runpod": no entry, see [RUNPOD].
}

ENTRY_KEYS = {"image", "sizes", "image_size", "megapixel", "extra_megapixel", "tokens", "second", "seconds"}


class BudgetExceeded(BlogImagesError):
    """A request that would take a monthly budget over its limit; ``str(exc)`` says which and what is left."""

    def __init__(self, message: str, *, budget: str, limit: Decimal, left: Decimal, cost: Decimal):
        super().__init__(message)
        self.budget, self.limit, self.left, self.cost = budget, limit, left, cost


def amount(value: Any, where: str = "price") -> Decimal:
    try:
        result = Decimal(str(value))
    except (InvalidOperation, ValueError) as exc:
        raise ImproperlyConfigured(f"{where}: {value!r} is not an amount of money.") from exc
    if not result.is_finite() or result < 0:
        raise ImproperlyConfigured(f"{where}: {value!r} is not an amount of money.")
    return result


def money(value: Decimal | None) -> str:
    """``$0.32``; small amounts keep their digits (``$0.003``); None is "price not set"."""
    if value is None:
        return "price not set"
    cents = value.quantize(Decimal("0.01"), ROUND_HALF_UP)
    if cents == value or value >= 1 or value == 0:
        return f"${cents:,.2f}"
    return f"${value.quantize(Decimal('0.0001'), ROUND_HALF_UP).normalize():f}"


# --- prices ----------------------------------------------------------------------------------------


def price_table() -> dict[str, dict[str, dict[str, Any]]]:
    """The built-in table with ``BLOGIMAGES_PRICES`` merged over it (entry by entry)."""
    table = {kind: dict(models) for kind, models in PRICES.items()}
    overrides = app_settings.PRICES
    if not isinstance(overrides, dict):
        raise ImproperlyConfigured("BLOGIMAGES_PRICES must be a dict of {provider kind or alias: {model: price}}.")
    for key, models in overrides.items():
        if not isinstance(models, dict):
            raise ImproperlyConfigured(f"BLOGIMAGES_PRICES[{key!r}] must be a dict of {{model: price entry}}.")
        merged = table.setdefault(key, {})
        for model, entry in models.items():
            if not isinstance(entry, dict) or not set(entry) <= ENTRY_KEYS:
                unknown = sorted(set(entry) - ENTRY_KEYS) if isinstance(entry, dict) else entry
                raise ImproperlyConfigured(
                    f"BLOGIMAGES_PRICES[{key!r}][{model!r}]: unknown keys {unknown}; "
                    f"use {', '.join(sorted(ENTRY_KEYS))}."
                )
            merged[model] = {**merged.get(model, {}), **entry}
    return table


def price_entry(alias: str, kind: str, model: str) -> dict[str, Any] | None:
    """The price entry for ``model`` served by provider ``alias`` of ``kind``; None if none is known."""
    table = price_table()
    for key in (alias, kind):
        models = table.get(key) or {}
        entry = models.get(model) or models.get("*")
        if entry is not None:
            return entry
    return None


def _by_quality(value: Any, quality: str, where: str) -> Decimal:
    if not isinstance(value, dict):
        return amount(value, where)
    quality = (quality or "auto").lower()
    if quality not in value and quality == "auto":
        quality = "high"
    if quality not in value:
        # A quality the table does not name (a new tier): the dearest known, not nothing.
        return max(amount(v, where) for v in value.values())
    return amount(value[quality], where)


def estimate_entry(entry: dict[str, Any], *, width: int, height: int, extra: dict[str, Any]) -> Decimal:
    """What one image costs by ``entry`` at this size and these choices (quality, image_size)."""
    where = "BLOGIMAGES_PRICES"
    megapixels = max(1, math.ceil(width * height / MEGAPIXEL))
    quality = str(extra.get("quality") or "")
    size_key = f"{width}x{height}"
    cost = ZERO
    if "sizes" in entry and size_key in entry["sizes"]:
        cost = _by_quality(entry["sizes"][size_key], quality, where)
    elif "image_size" in entry and extra.get("image_size") in entry["image_size"]:
        cost = amount(entry["image_size"][extra["image_size"]], where)
    elif "image" in entry:
        cost = _by_quality(entry["image"], quality, where)
    if "extra_megapixel" in entry:
        cost += amount(entry["extra_megapixel"], where) * (megapixels - 1)
    if "megapixel" in entry:
        cost += amount(entry["megapixel"], where) * megapixels
    if "second" in entry:
        cost += amount(entry["second"], where) * amount(entry.get("seconds", 0), where)
    return cost


def estimate(alias: str, prompt: str, params: dict[str, Any]) -> Decimal | None:
    """What the request would cost on provider ``alias``, from the price table; None if unknown.

    The provider's own ``prepare()`` (no network calls) gives the model, size and quality it
    would send, so a default model or a snapped size is priced as sent. ``auto`` is priced at
    its dearest candidate: the check must not let through what the fallback may spend.
    """
    from .prompts import request_from_snapshot

    provider = _provider(alias)
    if provider is None:
        return None  # removed from settings: its job fails saying so, and costs nothing
    if provider.kind == "auto":
        found = [estimate(name, prompt, params) for name in provider.candidates()]
        known = [value for value in found if value is not None]
        return max(known) if known and len(known) == len(found) else None
    request = request_from_snapshot(prompt, params, seed=params.get("seed"), result_id=None)
    try:
        request, _ = provider.prepare(request)
    except BlogImagesError:
        pass  # refused: the caller's preflight says why; price what was asked
    entry = price_entry(alias, provider.kind, request.model or params.get("model") or "")
    if entry is None:
        return None
    return estimate_entry(entry, width=request.width, height=request.height, extra=dict(request.extra or {}))


def _provider(alias: str):
    from .providers import UnknownProvider, providers

    try:
        return providers[alias]
    except (UnknownProvider, ImproperlyConfigured):
        return None


def _count(value: Any) -> int:
    try:
        return max(0, int(value or 0))
    except (TypeError, ValueError):
        return 0


def _token_cost(tokens: dict[str, Any], usage: dict[str, Any]) -> Decimal | None:
    """The cost of a usage report: OpenAI's Images ``usage`` or Gemini's ``usageMetadata``."""
    rate = {key: amount(value, "BLOGIMAGES_PRICES tokens") / Decimal(1_000_000) for key, value in tokens.items()}
    if "input_tokens" in usage or "output_tokens" in usage:  # OpenAI
        details = usage.get("input_tokens_details") or {}
        image_in = _count(details.get("image_tokens"))
        text_in = (
            _count(details.get("text_tokens"))
            if "text_tokens" in details
            else _count(usage.get("input_tokens")) - image_in
        )
        out_details = usage.get("output_tokens_details") or {}
        text_out = _count(out_details.get("text_tokens"))
        image_out = _count(usage.get("output_tokens")) - text_out
    elif "candidatesTokenCount" in usage or "promptTokenCount" in usage:  # Gemini
        text_in, image_in = _count(usage.get("promptTokenCount")), 0
        image_out, text_out = _count(usage.get("candidatesTokenCount")), 0
    else:
        return None
    return (
        text_in * rate.get("input", ZERO)
        + image_in * rate.get("input_image", rate.get("input", ZERO))
        + image_out * rate.get("output", ZERO)
        + text_out * rate.get("output_text", rate.get("output", ZERO))
    )


def actual_cost(result, alias: str, model: str, meta: dict[str, Any]) -> Decimal | None:
    """The cost of ``result``'s finished image, served by ``alias`` with ``model``: from the
    usage (tokens, GPU seconds) the provider reported where the table prices it, else the
    estimate made when it was queued (re-made for the provider that served it when that
    is another, as ``auto`` picks one)."""
    estimated = result.cost_estimate
    provider = _provider(alias)
    if provider is None:
        return estimated
    entry = price_entry(alias, provider.kind, model)
    if entry is None:
        return estimated if alias == result.provider else None
    if alias != result.provider:
        params = result.params or {}
        estimated = estimate_entry(
            entry,
            width=int(params.get("width") or 0) or 1,
            height=int(params.get("height") or 0) or 1,
            extra=dict(params.get("extra") or {}),
        )
    usage = meta.get("usage")
    if entry.get("tokens") and isinstance(usage, dict):
        cost = _token_cost(entry["tokens"], usage)
        if cost is not None:
            return cost
    if "second" in entry and meta.get("execution_ms") is not None:
        seconds = Decimal(_count(meta["execution_ms"])) / 1000
        return amount(entry["second"], "BLOGIMAGES_PRICES") * seconds
    return estimated


def stored(value: Decimal | None) -> Decimal | None:
    """``value`` as the model field keeps it (6 decimal places)."""
    return None if value is None else value.quantize(Decimal("0.000001"), ROUND_HALF_UP)


# --- budgets -----------------------------------------------------------------------------------------


def month_of(when: datetime.datetime | None = None) -> tuple[datetime.date, datetime.datetime, datetime.datetime]:
    """(first day, start, end) of the month ``when`` is in, in the site's time zone."""
    local = timezone.localtime(when or timezone.now())
    start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (start + datetime.timedelta(days=32)).replace(day=1)
    return start.date(), start, end


def _limit(value: Any, where: str) -> Decimal | None:
    return None if value in (None, "") else amount(value, where)


def site_limit() -> Decimal | None:
    return _limit(app_settings.BUDGETS.get("SITE_MONTHLY"), "BLOGIMAGES_BUDGETS['SITE_MONTHLY']")


def user_limit(user) -> Decimal | None:
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    budgets = app_settings.BUDGETS
    name = user.get_username()
    per_user = budgets.get("USERS") or {}
    if name in per_user:
        return _limit(per_user[name], f"BLOGIMAGES_BUDGETS['USERS'][{name!r}]")
    return _limit(budgets.get("USER_MONTHLY"), "BLOGIMAGES_BUDGETS['USER_MONTHLY']")


def counted(start: datetime.datetime, end: datetime.datetime):
    """The results whose estimate counts against the month from ``start`` to ``end``."""
    from .models import ImageGenerationResult

    return ImageGenerationResult.objects.filter(
        charged_at__gte=start, charged_at__lt=end, status__in=COUNTED_STATUSES, cost_estimate__isnull=False
    )


def _spent(queryset) -> Decimal:
    # stored(): SQLite sums decimals as floats; six places is what the column holds.
    return stored(Decimal(queryset.aggregate(total=Sum("cost_estimate"))["total"] or ZERO))


def reserve(user, cost: Decimal | None, *, exclude: Iterable[int] = ()) -> None:
    """Inside the caller's transaction, before it creates or re-queues results costing
    ``cost``: refuse with :class:`BudgetExceeded` if the site's or ``user``'s monthly
    budget has less than that left. Exactly reaching a budget is allowed.

    The month's lock rows are taken site first, then user (one order, so no deadlock),
    and held until the caller commits; the sum is read after the lock, so it includes
    every request that held the lock before. ``exclude``: results being re-queued, which
    a stale read of their own status must not count twice.
    """
    from .models import BudgetLock

    if not cost:
        return
    site, per_user = site_limit(), user_limit(user)
    if site is None and per_user is None:
        return
    month, start, end = month_of()
    checks = []
    if site is not None:
        checks.append(("site", site, counted(start, end), _("the site's monthly budget")))
    if per_user is not None:
        name = user.get_username()
        checks.append(
            (f"user:{user.pk}", per_user, counted(start, end).filter(requested_by=user), f"{name}'s monthly budget")
        )
    for scope, limit, queryset, label in checks:
        BudgetLock.objects.get_or_create(scope=scope, month=month)
        BudgetLock.objects.select_for_update().get(scope=scope, month=month)
        spent = _spent(queryset.exclude(pk__in=list(exclude)))
        if spent + cost > limit:
            left = max(ZERO, limit - spent)
            raise BudgetExceeded(
                f"This would cost about {money(cost)}; {label} of {money(limit)} has {money(left)} left.",
                budget=scope,
                limit=limit,
                left=left,
                cost=cost,
            )


@dataclass
class Budget:
    name: str
    limit: Decimal
    spent: Decimal

    @property
    def left(self) -> Decimal:
        return max(ZERO, self.limit - self.spent)

    @property
    def display(self) -> dict[str, str]:
        return {"limit": money(self.limit), "spent": money(self.spent), "left": money(self.left)}

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "limit": str(self.limit), "spent": str(self.spent), "left": str(self.left)}


def budgets_now() -> list[Budget]:
    """The site's budget and every user's with a limit that spent something this month."""
    from django.contrib.auth import get_user_model

    _month, start, end = month_of()
    found = []
    site = site_limit()
    if site is not None:
        found.append(Budget("site", site, _spent(counted(start, end))))
    spenders = (
        counted(start, end).exclude(requested_by=None).values("requested_by").annotate(total=Sum("cost_estimate"))
    )
    users = get_user_model()._default_manager.in_bulk([row["requested_by"] for row in spenders])
    per_user = []
    for row in spenders:
        user = users.get(row["requested_by"])
        limit = user_limit(user) if user is not None else None
        if limit is not None:
            per_user.append(Budget(user.get_username(), limit, stored(Decimal(row["total"] or ZERO))))
    return found + sorted(per_user, key=lambda budget: budget.name)


# --- spend -------------------------------------------------------------------------------------------


SPEND_DIMENSIONS = ("provider", "model", "user", "post")
CSV_COLUMNS = ["month", "provider", "model", "user", "post", "images", "cost_usd", "unpriced_images"]


def spend_rows(start: datetime.datetime | None = None, end: datetime.datetime | None = None) -> list[dict[str, Any]]:
    """Spend of the month (default: this one) by provider, model, user and post: one row per
    combination, with the number of images, their cost and how many had no price."""
    from django.contrib.auth import get_user_model

    if start is None or end is None:
        _month, start, end = month_of()
    from .models import ImageGenerationResult

    queryset = ImageGenerationResult.objects.filter(
        charged_at__gte=start, charged_at__lt=end, status__in=COUNTED_STATUSES
    ).exclude(source="uploaded")
    grouped = (
        queryset.values("provider_used", "provider", "model", "requested_by", "review__post_type", "review__post_id")
        .annotate(images=Count("id"), cost=Sum("cost_estimate"), priced=Count("cost_estimate"))
        .order_by()
    )
    users = get_user_model()._default_manager.in_bulk(
        {row["requested_by"] for row in grouped if row["requested_by"] is not None}
    )
    from django.contrib.contenttypes.models import ContentType

    merged: dict[tuple, dict[str, Any]] = {}
    for row in grouped:
        user = users.get(row["requested_by"])
        post = ""
        if row["review__post_type"] is not None:
            model = ContentType.objects.get_for_id(row["review__post_type"])
            post = f"{model.app_label}.{model.model}:{row['review__post_id']}"
        key = (row["provider_used"] or row["provider"], row["model"], user.get_username() if user else "", post)
        bucket = merged.setdefault(key, {"images": 0, "cost": ZERO, "unpriced": 0})
        bucket["images"] += row["images"]
        bucket["cost"] += stored(Decimal(row["cost"] or ZERO))
        bucket["unpriced"] += row["images"] - row["priced"]
    month = timezone.localtime(start).strftime("%Y-%m")
    return [
        {
            "month": month,
            "provider": provider,
            "model": model,
            "user": user,
            "post": post,
            "images": bucket["images"],
            "cost_usd": stored(bucket["cost"]),
            "unpriced_images": bucket["unpriced"],
        }
        for (provider, model, user, post), bucket in sorted(merged.items())
    ]


def spend_summary(rows: list[dict[str, Any]] | None = None, *, budgets: bool = True) -> dict[str, Any]:
    """The month's total and its spend by each dimension, dearest first; with ``budgets``,
    this month's budgets and what is left of them."""
    rows = spend_rows() if rows is None else rows
    by: dict[str, dict[str, dict[str, Any]]] = {
        dim: defaultdict(lambda: {"images": 0, "cost": ZERO}) for dim in SPEND_DIMENSIONS
    }
    for row in rows:
        for dim in SPEND_DIMENSIONS:
            bucket = by[dim][row[dim] or "—"]
            bucket["images"] += row["images"]
            bucket["cost"] += row["cost_usd"] or ZERO
    total = sum((row["cost_usd"] or ZERO for row in rows), ZERO)
    return {
        "month": rows[0]["month"] if rows else timezone.localtime().strftime("%Y-%m"),
        "currency": CURRENCY,
        "total": total,
        "total_display": money(total),
        "images": sum(row["images"] for row in rows),
        "unpriced": sum(row["unpriced_images"] for row in rows),
        "by": {
            dim: [
                {"name": name, "images": bucket["images"], "cost": bucket["cost"], "display": money(bucket["cost"])}
                for name, bucket in sorted(values.items(), key=lambda item: (-item[1]["cost"], item[0]))
            ]
            for dim, values in by.items()
        },
        "budgets": budgets_now() if budgets else [],
    }


def spend_csv(rows: list[dict[str, Any]] | None = None) -> str:
    """The month's spend rows as CSV (``blogimages_status --spend-csv``)."""
    rows = spend_rows() if rows is None else rows
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, "cost_usd": f"{row['cost_usd'] or ZERO:f}"})
    return out.getvalue()
