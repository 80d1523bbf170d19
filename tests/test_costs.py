"""Cost: prices as data, each result's cost, monthly budgets that hold under concurrency, spend reports."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.utils import timezone
from django.utils.html import escape

from blogimages import costs, services
from blogimages.costs import BudgetExceeded
from blogimages.hosts import get_host
from blogimages.models import BudgetLock, ImageGenerationResult, ResultStatus
from blogimages.services import GenerationSpec
from tests.servers.openai_server import OpenAIImagesServer
from tests.test_api import Api
from tests.test_double_requests import in_threads, postgres_only, texts

PLACEHOLDER_AT_10_CENTS = {"placeholder": {"*": {"image": "0.10"}}}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ("OPENAI_API_KEY", "OPENAI_AUTH_TOKEN", "OPENAI_BASE_URL", "ENABLE_CLOUD_APIS"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def hosted(settings):
    """OpenAI, BFL, Replicate, fal, Gemini and RunPod aliases (prepare() needs no server)."""
    settings.BLOGIMAGES_PROVIDERS = {
        **settings.BLOGIMAGES_PROVIDERS,
        "openai": {"BACKEND": "blogimages.providers.openai.OpenAIImagesProvider", "OPTIONS": {"api_key": "sk-x"}},
        "bfl": {"BACKEND": "blogimages.providers.bfl.BFLProvider", "OPTIONS": {}},
        "replicate": {"BACKEND": "blogimages.providers.replicate.ReplicateProvider", "OPTIONS": {}},
        "fal": {"BACKEND": "blogimages.providers.fal.FalProvider", "OPTIONS": {}},
        "gemini": {"BACKEND": "blogimages.providers.gemini.GeminiProvider", "OPTIONS": {}},
    }


def params(width=1024, height=1024, model="", **extra):
    return {
        "width": width,
        "height": height,
        "steps": None,
        "guidance_scale": None,
        "sampler": "",
        "scheduler": "",
        "seed": None,
        "model": model,
        "negative_prompt": "",
        "loras": [],
        "extra": extra,
    }


def ask(user=None, provider="placeholder", **kwargs):
    return services.request_generation(GenerationSpec(prompt="A lighthouse", providers=[provider], **kwargs), user=user)


# --- prices ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_estimates_come_from_the_table_by_model_size_and_quality(hosted):
    e = costs.estimate
    assert e("placeholder", "p", params()) == Decimal("0")
    # OpenAI: per image by quality; the provider's default model and "auto" (billed as high).
    assert e("openai", "p", params(quality="low")) == Decimal("0.02")
    assert e("openai", "p", params(model="gpt-image-2", quality="high")) == Decimal("0.21")
    assert e("openai", "p", params()) == Decimal("0.21")
    # gpt-image-1.5: by size and quality.
    assert e("openai", "p", params(model="gpt-image-1.5", quality="medium")) == Decimal("0.034")
    assert e("openai", "p", params(1536, 1024, model="gpt-image-1.5", quality="medium")) == Decimal("0.05")
    # BFL FLUX.2 [pro]: $0.03 the first megapixel, $0.015 each further one (2048x1024 = 2 MP).
    assert e("bfl", "p", params(model="flux-2-pro")) == Decimal("0.03")
    assert e("bfl", "p", params(2048, 1024, model="flux-2-pro")) == Decimal("0.045")
    assert e("replicate", "p", params(model="black-forest-labs/flux-schnell")) == Decimal("0.003")
    assert e("fal", "p", params(2048, 1024, model="fal-ai/flux/dev")) == Decimal("0.050")
    assert e("gemini", "p", params(model="gemini-2.5-flash-image")) == Decimal("0.039")
    assert e("gemini", "p", params(model="gemini-3-pro-image-preview", image_size="4K")) == Decimal("0.24")
    # A model without a known price records none.
    assert e("openai", "p", params(model="gpt-image-2.6-flare")) is None


@pytest.mark.django_db
def test_operators_override_prices_by_kind_or_alias_and_mistakes_are_named(hosted, settings):
    settings.BLOGIMAGES_PRICES = {
        "openai": {"gpt-image-2": {"image": {"low": "0.05"}}, "gpt-image-2.6-flare": {"image": "0.30"}},
        "placeholder": {"*": {"image": "0.10"}},
    }
    assert costs.estimate("openai", "p", params(quality="low")) == Decimal("0.05")
    assert costs.estimate("openai", "p", params(model="gpt-image-2.6-flare")) == Decimal("0.30")
    assert costs.estimate("placeholder", "p", params()) == Decimal("0.10")
    settings.BLOGIMAGES_PRICES = {"openai": {"gpt-image-2": {"per_image": "0.1"}}}
    with pytest.raises(ImproperlyConfigured, match=r"BLOGIMAGES_PRICES\['openai'\]\['gpt-image-2'\]: unknown keys"):
        costs.estimate("openai", "p", params())
    settings.BLOGIMAGES_PRICES = {"placeholder": {"*": {"image": "ten cents"}}}
    with pytest.raises(ImproperlyConfigured, match="'ten cents' is not an amount of money"):
        costs.estimate("placeholder", "p", params())


def test_money_reads_as_people_write_it():
    assert costs.money(Decimal("0.32")) == "$0.32"
    assert costs.money(Decimal("20")) == "$20.00"
    assert costs.money(Decimal("0.003")) == "$0.003"
    assert costs.money(Decimal("0")) == "$0.00"
    assert costs.money(None) == "price not set"


# --- each result's cost -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_openai_job_records_its_estimate_then_the_cost_of_the_usage_openai_reported(
    settings, thread_server, django_capture_on_commit_callbacks, run_worker, admin_user
):
    server = thread_server(OpenAIImagesServer(api_key="sk-test"))
    settings.BLOGIMAGES_PROVIDERS = {
        **settings.BLOGIMAGES_PROVIDERS,
        "openai": {
            "BACKEND": "blogimages.providers.openai.OpenAIImagesProvider",
            "OPTIONS": {"api_key": "sk-test", "base_url": server.url},
        },
    }
    with django_capture_on_commit_callbacks(execute=True):
        (result,) = ask(admin_user, "openai", overrides={"extra": {"quality": "high"}})
    assert result.cost_estimate == Decimal("0.21") and result.cost_currency == "USD"
    assert result.charged_at is not None
    run_worker()
    result.refresh_from_db()
    assert result.status == ResultStatus.SUCCEEDED
    usage = result.provider_meta["usage"]
    assert usage["output_tokens"] == 1056
    # $5 a million text tokens in, $30 a million image tokens out.
    expected = (Decimal(usage["input_tokens"]) * 5 + Decimal(1056) * 30) / 1_000_000
    assert result.cost_estimate == expected.quantize(Decimal("0.000001"))


@pytest.mark.django_db
def test_a_self_hosted_job_costs_nothing_unless_the_operator_sets_a_price(
    settings, django_capture_on_commit_callbacks, run_worker, rq_queue
):
    with django_capture_on_commit_callbacks(execute=True):
        (free,) = ask()
    settings.BLOGIMAGES_PRICES = {"placeholder": {"*": {"image": "0.002"}}}
    with django_capture_on_commit_callbacks(execute=True):
        (priced,) = ask()
    run_worker()
    free.refresh_from_db()
    priced.refresh_from_db()
    assert (free.status, free.cost_estimate) == (ResultStatus.SUCCEEDED, Decimal("0"))
    assert (priced.status, priced.cost_estimate) == (ResultStatus.SUCCEEDED, Decimal("0.002"))


# --- budgets ---------------------------------------------------------------------------------------


@pytest.fixture
def alice(make_editor):
    return make_editor("alice", perms=["generate_images", "review_images"])


@pytest.fixture
def priced(settings):
    settings.BLOGIMAGES_PRICES = PLACEHOLDER_AT_10_CENTS


@pytest.mark.django_db
def test_a_user_may_spend_exactly_the_budget_and_the_request_past_it_is_refused(
    settings, priced, alice, django_capture_on_commit_callbacks, rq_queue
):
    settings.BLOGIMAGES_BUDGETS = {"USER_MONTHLY": "0.30"}
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(3):
            ask(alice)
    assert rq_queue.count == 3
    with django_capture_on_commit_callbacks(execute=True) as callbacks, pytest.raises(BudgetExceeded) as refused:
        ask(alice)
    assert str(refused.value) == "This would cost about $0.10; alice's monthly budget of $0.30 has $0.00 left."
    assert ImageGenerationResult.objects.count() == 3 and rq_queue.count == 3 and callbacks == []
    # Another user has a budget of their own; the site has none.
    with django_capture_on_commit_callbacks(execute=True):
        ask(None)


@pytest.mark.django_db
def test_two_providers_at_once_are_checked_together(settings, priced, alice, two_placeholders):
    settings.BLOGIMAGES_BUDGETS = {"SITE_MONTHLY": "0.15"}
    with pytest.raises(BudgetExceeded) as refused:
        services.request_generation(
            GenerationSpec(prompt="A lighthouse", providers=["placeholder", "placeholder2"]), user=alice
        )
    assert str(refused.value) == "This would cost about $0.20; the site's monthly budget of $0.15 has $0.15 left."
    assert not ImageGenerationResult.objects.exists()


@pytest.fixture
def two_placeholders(settings):
    settings.BLOGIMAGES_PROVIDERS = {
        **settings.BLOGIMAGES_PROVIDERS,
        "placeholder2": {"BACKEND": "blogimages.providers.placeholder.PlaceholderProvider", "OPTIONS": {"delay": 0.0}},
    }


@pytest.mark.django_db
def test_failed_and_cancelled_images_release_their_amount_and_last_months_do_not_count(
    settings, priced, alice, rq_queue
):
    settings.BLOGIMAGES_BUDGETS = {"USER_MONTHLY": "0.20", "SITE_MONTHLY": "100"}
    first, second = ask(alice)[0], ask(alice)[0]
    with pytest.raises(BudgetExceeded):
        ask(alice)
    first.move("fail", error_message="boom")
    services.cancel(second, user=alice)
    ask(alice)
    ask(alice)
    # The failed one sent again reserves its amount anew, and the budget is spent.
    with pytest.raises(BudgetExceeded, match="alice's monthly budget of \\$0.20 has \\$0.00 left"):
        services.requeue(ImageGenerationResult.objects.get(pk=first.pk), user=alice)
    assert ImageGenerationResult.objects.get(pk=first.pk).status == ResultStatus.FAILED
    # Last month's spend is last month's.
    ImageGenerationResult.objects.update(charged_at=timezone.now() - timezone.timedelta(days=40))
    services.requeue(ImageGenerationResult.objects.get(pk=first.pk), user=alice)
    assert ImageGenerationResult.objects.get(pk=first.pk).status == ResultStatus.QUEUED
    # A per-user override wins over USER_MONTHLY.
    settings.BLOGIMAGES_BUDGETS = {"USER_MONTHLY": "0.20", "USERS": {"alice": "0.10"}}
    with pytest.raises(BudgetExceeded, match="alice's monthly budget of \\$0.10 has \\$0.00 left"):
        services.regenerate(first, user=alice)


@pytest.mark.django_db
def test_the_refusal_reads_the_same_on_the_review_page_api_playground_and_command(
    settings, priced, alice, admin_user, make_post, client, rq_queue
):
    settings.BLOGIMAGES_BUDGETS = {"SITE_MONTHLY": "0.05"}
    sentence = "This would cost about $0.10; the site's monthly budget of $0.05 has $0.05 left."
    post = make_post(sections=1)
    section = get_host().sections(post)[0]
    client.force_login(admin_user)
    page = client.post(
        f"/admin/blog/post/{post.pk}/images/", {"do": "generate-section", "section": section.key}, follow=True
    )
    assert sentence in texts(page)
    response = Api(admin_user).post("/api/v1/images/generate", {"prompt": "A lighthouse"})
    assert response.status_code == 402
    assert response.json()["error"] == sentence
    assert response.json()["budget"] == {"name": "site", "limit": "0.05", "left": "0.050000", "cost": "0.10"}
    out = io.StringIO()
    call_command("blogimages_generate", "--post", str(post.pk), stdout=out)
    assert sentence in out.getvalue()
    playground = client.post(
        "/admin/blogimages/imagegenerationresult/playground/", {"prompt": "A lighthouse", "providers": "placeholder"}
    )
    assert escape(sentence) in playground.content.decode()
    assert not ImageGenerationResult.objects.exists()


@pytest.mark.django_db(transaction=True)
@postgres_only
def test_concurrent_requests_cannot_overshoot_a_budget(settings, priced, alice, rq_queue):
    settings.BLOGIMAGES_BUDGETS = {"USER_MONTHLY": "0.50", "SITE_MONTHLY": "0.70"}
    outcomes = in_threads(12, lambda i: ask(alice))
    made = [o for o in outcomes if isinstance(o, list)]
    refused = [o for o in outcomes if isinstance(o, BudgetExceeded)]
    assert len(made) == 5 and len(refused) == 7, outcomes
    assert ImageGenerationResult.objects.count() == 5
    assert BudgetLock.objects.count() == 2  # the site's and alice's, this month


# --- spend --------------------------------------------------------------------------------------------


@pytest.fixture
def spent(settings, priced, alice, admin_user, make_post, rq_queue):
    post = make_post(sections=2)
    first, second = get_host().sections(post)
    services.generate_for_section(first, user=alice)
    services.generate_for_section(second, user=alice)
    ask(admin_user)
    settings.BLOGIMAGES_BUDGETS = {"USER_MONTHLY": "1.00"}
    return post


@pytest.mark.django_db
def test_spend_csv_by_provider_model_user_and_post(spent):
    out = io.StringIO()
    call_command("blogimages_status", "--spend-csv", stdout=out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    month = timezone.localtime().strftime("%Y-%m")
    assert rows == [
        {
            "month": month,
            "provider": "placeholder",
            "model": "",
            "user": "admin",
            "post": "",
            "images": "1",
            "cost_usd": "0.100000",
            "unpriced_images": "0",
        },
        {
            "month": month,
            "provider": "placeholder",
            "model": "",
            "user": "alice",
            "post": f"blog.post:{spent.pk}",
            "images": "2",
            "cost_usd": "0.200000",
            "unpriced_images": "0",
        },
    ]
    empty = io.StringIO()
    call_command("blogimages_status", "--spend-csv", "--month", "2001-01", stdout=empty)
    assert empty.getvalue() == ",".join(costs.CSV_COLUMNS) + "\n"


@pytest.mark.django_db
def test_status_command_and_page_show_spend_and_budgets(spent, client, admin_user):
    out = io.StringIO()
    try:
        call_command("blogimages_status", "--format", "json", stdout=out)
    except CommandError:
        pass  # exit status 1 says a provider or Redis is unhealthy; the report is printed all the same
    report = json.loads(out.getvalue())
    assert report["spend"]["total"] == "0.300000"
    assert report["spend"]["by"]["user"][0] == {"name": "alice", "images": 2, "cost": "0.200000", "display": "$0.20"}
    assert report["spend"]["budgets"] == [
        {"name": "admin", "limit": "1.00", "spent": "0.100000", "left": "0.900000"},
        {"name": "alice", "limit": "1.00", "spent": "0.200000", "left": "0.800000"},
    ]
    text = io.StringIO()
    try:
        call_command("blogimages_status", stdout=text, no_color=True)
    except CommandError:
        pass
    assert "  $0.30 for 3 image(s)\n" in text.getvalue()
    assert "  budget user alice: $0.20 of $1.00, $0.80 left\n" in text.getvalue()
    assert "  by user: alice $0.20 (2), admin $0.10 (1)\n" in text.getvalue()
    client.force_login(admin_user)
    page = client.get("/admin/blogimages/imagegenerationresult/status/").content.decode()
    assert "$0.30 for 3 images." in page
    assert '<tr data-budget="alice"><th scope="row">alice</th><td>$1.00</td><td>$0.20</td><td>$0.80</td></tr>' in page
    download = client.get("/admin/blogimages/imagegenerationresult/status/?spend=csv")
    assert download["Content-Type"] == "text/csv; charset=utf-8"
    assert download.content.decode().splitlines()[0] == ",".join(costs.CSV_COLUMNS)
