"""The OpenAI provider: the real ``openai`` client against a local OpenAI Images server over HTTP."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.files.storage import default_storage
from PIL import Image

from blogimages.exceptions import PermanentProviderError, TransientProviderError
from blogimages.models import ImageGenerationResult
from blogimages.providers import GenerationRequest, Lora, ProgressReporter, providers
from blogimages.providers.capabilities import DEFAULT_MODELS, build_table
from blogimages.providers.openai import NOT_CONFIGURED, OpenAIImagesProvider
from blogimages.services import GenerationSpec
from tests.conftest import free_port
from tests.servers.openai_server import OpenAIImagesServer

BACKEND = "blogimages.providers.openai.OpenAIImagesProvider"
SAFETY_SENTENCE = (
    "OpenAI's safety system blocked this request ({code}); reword the prompt, "
    "because sending the same one again will be blocked again."
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    """The developer's own key or base URL must not leak into these tests."""
    for name in ("OPENAI_API_KEY", "OPENAI_AUTH_TOKEN", "OPENAI_BASE_URL", "ENABLE_CLOUD_APIS"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server(thread_server):
    return thread_server(OpenAIImagesServer(api_key="sk-test"))


def configure(settings, **options):
    settings.BLOGIMAGES_PROVIDERS = {
        **settings.BLOGIMAGES_PROVIDERS,
        "openai": {"BACKEND": BACKEND, "OPTIONS": options},
    }
    return providers["openai"]


@pytest.fixture
def openai(settings, server):
    """The ``openai`` alias pointed at the test server with its key."""
    return configure(settings, api_key="sk-test", base_url=server.url)


def stored_files(media_root: Path) -> list[Path]:
    return sorted(p for p in media_root.rglob("*") if p.is_file())


# --- the job path over HTTP -------------------------------------------------------------------------


def test_success_stores_the_image_once_and_keeps_revised_prompt_and_usage(openai, server, generate, media_root):
    [result] = generate(GenerationSpec(prompt="A lighthouse at dusk", providers=["openai"]))

    assert result.status == "succeeded", result.error_message
    assert (result.provider, result.provider_used, result.model) == ("openai", "openai", "gpt-image-2")
    assert (result.width, result.height, result.content_type) == (1024, 1024, "image/png")
    with default_storage.open(result.image.name) as fh:
        assert Image.open(io.BytesIO(fh.read())).size == (1024, 1024)
    # The image itself plus its thumbnail, nothing else: stored once.
    assert len(stored_files(media_root)) == 2
    meta = result.provider_meta
    assert meta["revised_prompt"] == "A detailed image of A lighthouse at dusk"
    assert meta["usage"]["total_tokens"] == meta["usage"]["input_tokens"] + 1056
    assert meta["request_id"].startswith("req_")

    [sent] = server.generations
    assert sent["headers"]["authorization"] == "Bearer sk-test"
    assert sent["json"] == {"model": "gpt-image-2", "prompt": "A lighthouse at dusk", "n": 1, "size": "1024x1024"}


@pytest.mark.parametrize("code", ["moderation_blocked", "content_policy_violation"])
def test_a_safety_block_fails_permanently_with_a_sentence_and_is_never_retried(openai, server, generate, code):
    server.script(code)
    [result] = generate(GenerationSpec(prompt="something the safety system dislikes", providers=["openai"]))

    assert result.status == "failed"
    assert result.error_kind == "permanent"
    assert result.error_message == SAFETY_SENTENCE.format(code=code)
    assert len(server.generations) == 1
    assert not result.image


def test_429_then_success_goes_through_the_jobs_retry(openai, server, generate):
    server.script("rate_limit", "ok")
    [result] = generate(GenerationSpec(prompt="A harbour in the rain", providers=["openai"]))

    assert result.status == "succeeded", result.error_message
    assert result.attempts == 2
    assert len(server.generations) == 2  # one from the job's retry, none from the client's own


def test_500_is_transient_and_retried_until_max_attempts(openai, server, generate, settings):
    settings.BLOGIMAGES_MAX_ATTEMPTS = 3
    server.default = "server_error"
    [result] = generate(GenerationSpec(prompt="A cliff path", providers=["openai"]))

    assert result.status == "failed"
    assert result.error_kind == "transient"
    assert result.attempts == 3
    assert len(server.generations) == 3
    assert result.error_message == (
        "OpenAI had a server error (500): The server had an error while processing your request. Sorry about that."
    )


def test_quota_429_is_permanent(openai, server, generate):
    server.script("insufficient_quota")
    [result] = generate(GenerationSpec(prompt="A cliff path", providers=["openai"]))

    assert (result.status, result.error_kind) == ("failed", "permanent")
    assert "no quota left (insufficient_quota)" in result.error_message
    assert len(server.generations) == 1


def test_size_is_snapped_and_the_change_recorded(settings, server, generate):
    # gpt-image-1.5 (fixed sizes) was shut down on 2026-12-01; a compatible server may still have it.
    configure(settings, api_key="sk-test", base_url=server.url, models={"gpt-image-1.5": {"retired": None}})
    [result] = generate(
        GenerationSpec(
            prompt="A wide beach",
            providers=["openai"],
            model="gpt-image-1.5",
            overrides={"width": 1000, "height": 700},
        )
    )

    assert result.status == "succeeded", result.error_message
    assert server.generations[0]["json"]["size"] == "1536x1024"
    assert (result.width, result.height) == (1536, 1024)
    assert result.provider_meta["adjustments"] == [
        "size 1000x700 changed to 1536x1024: gpt-image-1.5 only makes 1024x1024, 1536x1024, 1024x1536"
    ]


def test_a_retired_model_is_refused_before_any_request(openai, server, generate):
    # Refused when the editor asks, before a row or a job exists (services preflight).
    with pytest.raises(ValidationError) as caught:
        generate(GenerationSpec(prompt="A lighthouse", providers=["openai"], model="dall-e-3"))

    assert caught.value.message_dict == {
        "provider": ["openai: OpenAI retired DALL·E 3 (dall-e-3) on 2026-05-12; use gpt-image-2 instead."]
    }
    assert ImageGenerationResult.objects.count() == 0
    assert server.requests == []


def test_extra_settings_are_mapped_and_legacy_dalle_values_translated(openai, server, generate):
    [result] = generate(
        GenerationSpec(
            prompt="A lighthouse",
            providers=["openai"],
            overrides={"extra": {"quality": "hd", "style": "vivid", "output_format": "webp", "background": "opaque"}},
        )
    )

    assert result.status == "succeeded", result.error_message
    assert result.content_type == "image/webp"
    sent = server.generations[0]["json"]
    assert (sent["quality"], sent["output_format"], sent["background"]) == ("high", "webp", "opaque")
    assert "style" not in sent
    assert result.provider_meta["adjustments"] == [
        "quality 'hd' is not one of gpt-image-2's; sent 'high'",
        "style 'vivid' dropped: gpt-image-2 takes no style; describe it in the prompt",
    ]


def test_comparison_group_placeholder_and_openai(openai, server, generate):
    results = generate(GenerationSpec(prompt="A lighthouse at dawn", providers=["placeholder", "openai"]))

    assert [r.provider_used for r in results] == ["placeholder", "openai"]
    assert all(r.status == "succeeded" for r in results), [r.error_message for r in results]
    assert results[0].group == results[1].group
    assert len(server.generations) == 1


# --- keys and configuration ----------------------------------------------------------------------------


def test_openai_auth_token_and_base_url_from_the_environment(settings, thread_server, generate, monkeypatch):
    server = thread_server(OpenAIImagesServer(api_key="sk-legacy"))
    monkeypatch.setenv("OPENAI_AUTH_TOKEN", "sk-legacy")
    monkeypatch.setenv("OPENAI_BASE_URL", server.url)
    configure(settings)

    [result] = generate(GenerationSpec(prompt="A lighthouse", providers=["openai"]))

    assert result.status == "succeeded", result.error_message
    assert server.generations[0]["headers"]["authorization"] == "Bearer sk-legacy"


def test_openai_api_key_wins_over_the_older_name(settings, monkeypatch):
    monkeypatch.setenv("OPENAI_AUTH_TOKEN", "sk-legacy")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-current")
    assert configure(settings).api_key() == "sk-current"
    assert configure(settings, api_key="sk-option").api_key() == "sk-option"


def test_a_missing_key_is_a_clear_permanent_failure_and_unhealthy(settings, server, generate):
    provider = configure(settings, base_url=server.url)
    health = provider.health()
    assert health.ok is False and health.detail.startswith("OpenAI is not configured")

    [result] = generate(GenerationSpec(prompt="A lighthouse", providers=["openai"]))

    assert (result.status, result.error_kind, result.error_message) == ("failed", "permanent", NOT_CONFIGURED)
    assert server.requests == []


def test_health(settings, server):
    assert configure(settings, api_key="sk-test", base_url=server.url).health().ok is True
    wrong = configure(settings, api_key="sk-wrong", base_url=server.url).health()
    assert (wrong.ok, wrong.detail) == (False, "API key rejected (401): Incorrect API key provided.")
    down = configure(settings, api_key="sk-test", base_url=f"http://127.0.0.1:{free_port()}/v1").health()
    assert down.ok is False and down.detail.startswith("unreachable")


def test_an_unreachable_server_is_transient(settings):
    provider = configure(settings, api_key="sk-test", base_url=f"http://127.0.0.1:{free_port()}/v1")
    with pytest.raises(TransientProviderError, match=r"^Could not reach OpenAI at http://127\.0\.0\.1:\d+/v1"):
        provider.generate(GenerationRequest(prompt="A lighthouse"), ProgressReporter())


def test_retry_after_is_passed_to_the_job(openai, server):
    server.retry_after = "7"
    server.script("rate_limit")
    with pytest.raises(TransientProviderError) as caught:
        openai.generate(GenerationRequest(prompt="A lighthouse"), ProgressReporter())
    assert caught.value.retry_after == 7.0


def test_missing_openai_package_names_the_extra():
    code = (
        "import sys; sys.modules['openai'] = None\n"  # what an install without the extra looks like
        "import django, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'tests.settings'; django.setup()\n"
        "from blogimages.providers.openai import OpenAIImagesProvider\n"
        "try:\n    OpenAIImagesProvider('openai')\nexcept Exception as exc:\n    print(type(exc).__name__, exc)\n"
    )
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == (
        "ImproperlyConfigured BLOGIMAGES_PROVIDERS['openai']: The OpenAI provider needs the openai package: "
        "pip install blogimages[openai]."
    ), out.stderr


def test_operator_can_extend_the_capability_table(settings, server):
    provider = configure(
        settings,
        api_key="sk-test",
        base_url=server.url,
        models={
            "my-azure-deployment": {"base": "gpt-image-2", "quality": ["low"]},
            "dall-e-3": {"retired": None},  # a compatible server still serving it
        },
    )
    assert "my-azure-deployment" in provider.models() and "dall-e-3" in provider.models()

    with pytest.raises(PermanentProviderError, match="choose one of low"):
        provider.prepare(GenerationRequest(prompt="x", model="my-azure-deployment", extra={"quality": "high"}))

    request, adjustments = provider.prepare(
        GenerationRequest(
            prompt="A lighthouse", model="dall-e-3", width=1800, height=1000, extra={"quality": "hd", "style": "vivid"}
        )
    )
    provider.generate(request, ProgressReporter())
    assert server.generations[0]["json"] == {
        "model": "dall-e-3",
        "prompt": "A lighthouse",
        "quality": "hd",
        "style": "vivid",
        "n": 1,
        "response_format": "b64_json",
        "size": "1792x1024",
    }
    assert adjustments == ["size 1800x1000 changed to 1792x1024: dall-e-3 only makes 1024x1024, 1792x1024, 1024x1792"]


def test_bad_table_entries_are_improperly_configured(settings):
    with pytest.raises(ImproperlyConfigured, match=r"\['mine'\]: unknown key\(s\) colour"):
        configure(settings, models={"mine": {"base": "gpt-image-2", "colour": "blue"}})
    with pytest.raises(ImproperlyConfigured, match="base 'gpt-image-9' is not a known model"):
        configure(settings, models={"mine": {"base": "gpt-image-9"}})
    with pytest.raises(ImproperlyConfigured, match=r"model 'dall-e-4' is not in the capability table"):
        configure(settings, model="dall-e-4")
    with pytest.raises(ImproperlyConfigured, match="unknown option"):
        configure(settings, colour="blue")


# --- checking requests before money is spent ------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "model", "message"),
    [
        (
            {"quality": "ultra"},
            "gpt-image-2",
            "Quality 'ultra' is not available for gpt-image-2; choose one of auto, low, medium, high.",
        ),
        ({"quality": "max"}, "gpt-image-2.5-flare", None),
        (
            {"style": "cartoon"},
            "gpt-image-2",
            "gpt-image-2 takes no style, so 'cartoon' cannot be used; leave it empty.",
        ),
        (
            {"background": "checkered"},
            "gpt-image-2",
            "Background 'checkered' is not available for gpt-image-2; choose one of auto, opaque, transparent.",
        ),
        (
            {"output_format": "gif"},
            "gpt-image-2",
            "Output format 'gif' is not available for gpt-image-2; choose one of png, jpeg, webp.",
        ),
        (
            {"background": "transparent", "output_format": "jpeg"},
            "gpt-image-2",
            "A transparent background needs output format png or webp, not jpeg.",
        ),
        (
            {"n": 2},
            "gpt-image-2",
            "Each result holds one image, so n=2 cannot be used; request several results instead.",
        ),
        ({"n": 11}, "gpt-image-2", "gpt-image-2 makes 1 to 10 images per request, not 11."),
        ({"size": "auto"}, "gpt-image-2", None),
        ({"size": "big"}, "gpt-image-2", "Size 'big' is not a WIDTHxHEIGHT size; write it like 1536x1024."),
        (
            {},
            "gpt-image-1",
            "OpenAI retired GPT Image 1 (gpt-image-1) on 2026-10-23; "
            "use gpt-image-2.5-sunburst or gpt-image-2.5-flare instead.",
        ),
        ({}, "dall-e-2", "OpenAI retired DALL·E 2 (dall-e-2) on 2026-05-12; use gpt-image-2 instead."),
        (
            {},
            "gpt-image-1.5",
            "OpenAI retired GPT Image 1.5 (gpt-image-1.5) on 2026-12-01; "
            "use gpt-image-2.6-sunburst or gpt-image-2.6-flare instead",
        ),
        ({}, "gpt-image-9", "OpenAI model 'gpt-image-9' is not one this site knows; use one of gpt-image-2,"),
    ],
)
def test_prepare_checks_the_request(settings, server, extra, model, message):
    provider = configure(settings, api_key="sk-test", base_url=server.url)
    request = GenerationRequest(prompt="A lighthouse", model=model, extra=extra)
    if message is None:
        provider.prepare(request)
    else:
        with pytest.raises(PermanentProviderError) as caught:
            provider.prepare(request)
        assert str(caught.value).startswith(message)
    assert server.requests == []


@pytest.mark.parametrize("model", ["flux1-dev", "sd35_large_turbo", "sd_xl_base_1.0.safetensors"])
def test_another_providers_model_from_a_shared_setting_is_replaced_and_said(settings, model):
    provider = configure(settings, api_key="sk-test")
    prepared, adjustments = provider.prepare(GenerationRequest(prompt="A lighthouse", model=model))
    assert prepared.model == "gpt-image-2"
    assert adjustments == [f"model {model!r} is not an OpenAI image model; used gpt-image-2"]
    assert provider.prepare(prepared) == (prepared, [])  # idempotent


def test_prepare_notes_what_openai_ignores_and_is_idempotent(settings):
    provider = configure(settings, api_key="sk-test")
    request = GenerationRequest(
        prompt="A lighthouse",
        negative_prompt="blurry",
        steps=30,
        seed=5,
        loras=(Lora("film-grain"),),
        width=1000,
        height=700,
    )
    prepared, adjustments = provider.prepare(request)
    assert adjustments == [
        "size 1000x700 changed to 992x704: gpt-image-2 needs sides divisible by 16",
        "OpenAI does not use negative prompt, steps, LoRAs, seed; they were not sent",
    ]
    again, more = provider.prepare(prepared)
    assert (again.width, again.height, again.model) == (992, 704, "gpt-image-2")
    assert not [a for a in more if a.startswith("size")]


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((1024, 1024), (1024, 1024)),
        ((1000, 700), (992, 704)),
        ((4096, 4096), (2880, 2880)),  # over 3840x2160 worth of pixels: scaled down, kept square
        ((3000, 500), (1488, 496)),  # 6:1 narrowed to 3:1, then to multiples of 16
        ((3840, 2160), (3840, 2160)),
    ],
)
def test_size_rule_for_the_gpt_image_2_family(size, expected):
    caps = build_table({})["gpt-image-2"]
    width, height, _ = caps.snap_size(*size)
    assert (width, height) == expected
    assert width % 16 == 0 and height % 16 == 0
    assert width * height <= 3840 * 2160 and max(width, height) / min(width, height) <= 3


def test_the_default_table_marks_the_retired_models():
    retired = {model: entry["retired"] for model, entry in DEFAULT_MODELS.items() if entry.get("retired")}
    assert retired == {
        "dall-e-2": "2026-05-12",
        "dall-e-3": "2026-05-12",
        "gpt-image-1": "2026-10-23",
        # OpenAI's deprecations page: shut down on Dec 1, 2026.
        "gpt-image-1.5": "2026-12-01",
        "gpt-image-1.5-2025-12-16": "2026-12-01",
        "gpt-image-1-mini": "2026-12-01",
        "chatgpt-image-latest": "2026-12-01",
    }
    assert OpenAIImagesProvider.default_options["model"] == "gpt-image-2"


def test_the_stored_bytes_are_the_bytes_openai_sent(openai, server, generate):
    # The server's PNG is a flat colour; the stored file must decode to the same pixels.
    [result] = generate(GenerationSpec(prompt="A lighthouse", providers=["openai"]))
    with default_storage.open(result.image.name) as fh:
        image = Image.open(io.BytesIO(fh.read()))
        assert image.getpixel((10, 10))[:3] == (30, 90, 160)
