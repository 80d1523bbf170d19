"""``auto`` routing: the real job path, the placeholder and OpenAI providers against a local server."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from blogimages import services
from blogimages.models import ImageGenerationResult
from blogimages.providers import providers
from blogimages.services import GenerationSpec
from tests.conftest import free_port
from tests.servers.openai_server import OpenAIImagesServer

OPENAI = "blogimages.providers.openai.OpenAIImagesProvider"
AUTO = "blogimages.providers.auto.AutoProvider"
PLACEHOLDER = {"BACKEND": "blogimages.providers.placeholder.PlaceholderProvider", "OPTIONS": {"delay": 0.0}}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ("OPENAI_API_KEY", "OPENAI_AUTH_TOKEN", "OPENAI_BASE_URL", "ENABLE_CLOUD_APIS"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server(thread_server):
    return thread_server(OpenAIImagesServer(api_key="sk-test"))


@pytest.fixture
def route(settings, server):
    """Configure ``auto`` with an order over: placeholder, openai (the test server),
    openai_down (nothing listens) and openai_nokey (no key anywhere)."""

    def configure(order, *, cloud: bool | None = None, **options):
        settings.BLOGIMAGES_PROVIDERS = {
            "placeholder": PLACEHOLDER,
            "openai": {"BACKEND": OPENAI, "OPTIONS": {"api_key": "sk-test", "base_url": server.url}},
            "openai_down": {
                "BACKEND": OPENAI,
                "OPTIONS": {"api_key": "sk-test", "base_url": f"http://127.0.0.1:{free_port()}/v1"},
            },
            "openai_nokey": {"BACKEND": OPENAI, "OPTIONS": {"base_url": server.url}},
            "auto": {"BACKEND": AUTO, "OPTIONS": {"order": order, **options}},
        }
        if cloud is not None:
            settings.BLOGIMAGES_ENABLE_CLOUD_APIS = cloud
        return providers["auto"]

    return configure


@pytest.fixture
def generate(db, django_capture_on_commit_callbacks, run_worker):
    def run(prompt="A lighthouse at dusk", **spec) -> ImageGenerationResult:
        with django_capture_on_commit_callbacks(execute=True):
            [result] = services.request_generation(GenerationSpec(prompt=prompt, providers=["auto"], **spec))
        run_worker()
        result.refresh_from_db()
        return result

    return run


def test_order_is_respected_and_the_provider_used_recorded(route, server, generate):
    route(["openai", "placeholder"], cloud=True)
    result = generate(overrides={"width": 1000, "height": 700})

    assert result.status == "succeeded", result.error_message
    assert (result.provider, result.provider_used) == ("auto", "openai")
    assert len(server.generations) == 1
    # The chosen provider's own adjustments are kept.
    assert result.provider_meta["adjustments"] == [
        "size 1000x700 changed to 992x704: gpt-image-2 needs sides divisible by 16"
    ]
    assert result.provider_meta["revised_prompt"].endswith("A lighthouse at dusk")

    route(["placeholder", "openai"], cloud=True)
    result = generate()
    assert result.provider_used == "placeholder"
    assert len(server.generations) == 1  # openai was not asked the second time


def test_cloud_providers_are_left_out_unless_enabled(route, server, generate):
    route(["openai", "placeholder"])  # ENABLE_CLOUD_APIS not set: off
    result = generate()

    assert result.provider_used == "placeholder"
    assert server.requests == []  # not even a health check: no money, no traffic
    assert result.provider_meta["auto_skipped"] == {"openai": "is a paid cloud API and ENABLE_CLOUD_APIS is off"}


def test_the_environment_flag_enables_cloud_providers(route, server, generate, monkeypatch):
    monkeypatch.setenv("ENABLE_CLOUD_APIS", "true")
    route(["openai", "placeholder"])
    assert generate().provider_used == "openai"


def test_unhealthy_providers_are_skipped(route, server, generate):
    route(["openai_down", "openai_nokey", "openai", "placeholder"], cloud=True)
    result = generate()

    assert result.provider_used == "openai"
    skipped = result.provider_meta["auto_skipped"]
    assert list(skipped) == ["openai_down", "openai_nokey"]
    assert skipped["openai_down"].startswith("is unhealthy (unreachable")
    assert skipped["openai_nokey"].startswith("is unhealthy (OpenAI is not configured")
    # The key-less provider never talked to the server; the one used had one health check.
    assert [r["path"] for r in server.requests] == ["/v1/models", "/v1/images/generations"]


def test_health_is_cached_briefly(route, server, generate):
    route(["openai", "placeholder"], cloud=True, health_ttl=60)
    generate()
    generate()
    assert [r["path"] for r in server.requests].count("/v1/models") == 1
    assert len(server.generations) == 2


def test_a_transient_failure_falls_through_to_the_next(route, server, generate):
    server.default = "server_error"
    route(["openai", "placeholder"], cloud=True)
    result = generate()

    assert result.status == "succeeded"
    assert result.provider_used == "placeholder"
    assert result.attempts == 1  # no job retry was needed
    assert result.provider_meta["auto_skipped"]["openai"].startswith("failed (OpenAI had a server error (500)")


def test_a_request_one_provider_cannot_take_goes_to_the_next(route, server, generate):
    route(["openai", "placeholder"], cloud=True)
    result = generate(model="dall-e-3")

    assert result.provider_used == "placeholder"
    assert result.provider_meta["auto_skipped"]["openai"] == (
        "cannot take this request (OpenAI retired DALL·E 3 (dall-e-3) on 2026-05-12; use gpt-image-2 instead.)"
    )
    assert server.generations == []


def test_a_safety_block_is_final(route, server, generate):
    # A blocked prompt is about the prompt, not the provider: no other provider is tried.
    server.script("moderation_blocked")
    route(["openai", "placeholder"], cloud=True)
    result = generate()

    assert (result.status, result.error_kind) == ("failed", "permanent")
    assert result.error_message.startswith("OpenAI's safety system blocked this request (moderation_blocked)")


def test_nothing_usable_because_of_settings_is_permanent(route, server, generate):
    route(["openai"])
    result = generate()

    assert (result.status, result.error_kind, result.attempts) == ("failed", "permanent", 1)
    assert result.error_message == (
        "No provider could make this image: openai is a paid cloud API and ENABLE_CLOUD_APIS is off."
    )


def test_nothing_usable_right_now_is_transient_and_retried(route, server, generate, settings):
    settings.BLOGIMAGES_MAX_ATTEMPTS = 2
    route(["openai_down", "openai"], cloud=True, health_ttl=0)
    server.default = "server_error"
    result = generate()

    assert (result.status, result.error_kind, result.attempts) == ("failed", "transient", 2)
    assert result.error_message.startswith("No provider could make this image: openai_down is unhealthy (unreachable")
    assert "; openai failed (OpenAI had a server error (500)" in result.error_message
    assert len(server.generations) == 2


def test_empty_order_means_every_other_provider_in_settings_order(route, generate):
    auto = route([])
    assert auto.candidates() == ["placeholder", "openai", "openai_down", "openai_nokey"]
    assert generate().provider_used == "placeholder"


def test_health_reports_each_candidate(route):
    health = route(["openai_down", "openai", "placeholder"]).health()
    assert health.ok is True and health.detail == "would use placeholder"
    assert health.info["openai"] == "is a paid cloud API and ENABLE_CLOUD_APIS is off"


@pytest.mark.parametrize(
    ("order", "message"),
    [
        (["nowhere"], "names 'nowhere', which is not in BLOGIMAGES_PROVIDERS"),
        (["auto"], "names 'auto', another automatic provider"),
        ("placeholder", "must be a list of provider aliases"),
    ],
)
def test_bad_orders_are_improperly_configured(route, order, message):
    with pytest.raises(ImproperlyConfigured, match=message):
        route(order)
