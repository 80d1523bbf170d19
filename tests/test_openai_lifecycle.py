"""When OpenAI shuts image models down: the table's dates, the live ``shutdown_date`` of
``GET /v1/models``, refusals before anything is paid for, the operator's replacements,
and the warnings in ``manage.py check``, on the status page and in ``blogimages_status``.

Everything runs against the local OpenAI server over HTTP with the real ``openai`` client.
Dates are relative to today, so the tests do not age.
"""

from __future__ import annotations

import datetime
import io
import json

import pytest
from django.core.cache import cache
from django.core.checks import run_checks
from django.core.exceptions import ValidationError
from django.core.management import call_command

from blogimages import status
from blogimages.exceptions import PermanentProviderError
from blogimages.models import ImageGenerationResult, ImagePromptExample, ImageSetting
from blogimages.providers import GenerationRequest, ProgressReporter, providers
from blogimages.providers.capabilities import build_table
from blogimages.providers.lifecycle import today
from blogimages.services import GenerationSpec
from tests.conftest import free_port
from tests.servers.openai_server import OpenAIImagesServer

BACKEND = "blogimages.providers.openai.OpenAIImagesProvider"
STATUS_URL = "/admin/blogimages/imagegenerationresult/status/"
MAP = "BLOGIMAGES_OPENAI_MODEL_REPLACEMENTS"


def day(offset: int) -> str:
    return (today() + datetime.timedelta(days=offset)).isoformat()


@pytest.fixture(autouse=True)
def clean(monkeypatch):
    for name in ("OPENAI_API_KEY", "OPENAI_AUTH_TOKEN", "OPENAI_BASE_URL", "ENABLE_CLOUD_APIS"):
        monkeypatch.delenv(name, raising=False)
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def server(thread_server):
    return thread_server(OpenAIImagesServer(api_key="sk-test"))


def configure(settings, server=None, **options):
    settings.BLOGIMAGES_PROVIDERS = {
        **settings.BLOGIMAGES_PROVIDERS,
        "openai": {"BACKEND": BACKEND, "OPTIONS": {"api_key": "sk-test", **options}},
    }
    if server is not None:
        settings.BLOGIMAGES_PROVIDERS["openai"]["OPTIONS"]["base_url"] = server.url
    return providers["openai"]


# --- refused before anything is paid for ----------------------------------------------------------------


def test_a_model_the_models_endpoint_retires_is_refused_before_any_image_request(settings, server, generate):
    server.models["gpt-image-2.5-flare"] = day(-1)
    configure(settings, server, models={"gpt-image-2.5-flare": {"replacement": "gpt-image-2.6-flare"}})
    refusal = (
        f"OpenAI retired GPT Image 2.5 Flare (gpt-image-2.5-flare) on {day(-1)} (GET /v1/models); "
        "use gpt-image-2.6-flare instead."
    )

    # Nothing cached yet: the editor's request passes, and the job reads the dates before paying.
    [result] = generate(GenerationSpec(prompt="A lighthouse", providers=["openai"], model="gpt-image-2.5-flare"))
    assert (result.status, result.error_kind, result.error_message) == ("failed", "permanent", refusal)
    assert server.generations == []
    assert len(server.model_lists) == 1

    # Now the date is cached: the next request is refused when the editor makes it, with no call at all.
    with pytest.raises(ValidationError) as caught:
        generate(GenerationSpec(prompt="A lighthouse", providers=["openai"], model="gpt-image-2.5-flare"))
    assert caught.value.message_dict == {"provider": [f"openai: {refusal}"]}
    assert ImageGenerationResult.objects.count() == 1
    assert server.generations == [] and len(server.model_lists) == 1


def test_a_model_the_table_retires_is_refused_at_once_naming_the_replacement(settings, server, generate):
    configure(settings, server)
    with pytest.raises(ValidationError) as caught:
        generate(GenerationSpec(prompt="A lighthouse", providers=["openai"], model="gpt-image-1-mini"))
    assert caught.value.message_dict == {
        "provider": [
            "openai: OpenAI retired GPT Image 1 mini (gpt-image-1-mini) on 2026-12-01; use gpt-image-2.6-sunburst "
            "or gpt-image-2.6-flare instead."
        ]
    }
    assert server.requests == []


def test_the_live_date_wins_over_the_table(settings, server):
    provider = configure(settings, server)
    server.models["gpt-image-1.5"] = None  # this server still serves it and announces no shutdown
    server.models["gpt-image-2"] = day(-3)  # and has shut this one down early
    assert provider.health().ok

    provider.prepare(GenerationRequest(prompt="A lighthouse", model="gpt-image-1.5"))
    with pytest.raises(PermanentProviderError, match=rf"^OpenAI retired GPT Image 2 \(gpt-image-2\) on {day(-3)}"):
        provider.prepare(GenerationRequest(prompt="A lighthouse", model="gpt-image-2"))
    assert "gpt-image-2" not in provider.models() and "gpt-image-1.5" in provider.models()
    assert server.generations == []


# --- the operator's replacements ------------------------------------------------------------------------


def test_a_mapped_retired_model_is_swapped_and_the_swap_recorded(settings, server, generate):
    configure(settings, server)
    settings.BLOGIMAGES_OPENAI_MODEL_REPLACEMENTS = {"gpt-image-1.5": "gpt-image-2.6-flare"}

    [result] = generate(GenerationSpec(prompt="A lighthouse", providers=["openai"], model="gpt-image-1.5"))

    assert result.status == "succeeded", result.error_message
    assert [g["json"]["model"] for g in server.generations] == ["gpt-image-2.6-flare"]
    assert result.model == "gpt-image-2.6-flare"
    assert result.provider_meta["model_replaced"] == {"requested": "gpt-image-1.5", "sent": "gpt-image-2.6-flare"}
    assert (
        "model gpt-image-1.5 was retired by OpenAI on 2026-12-01; sent gpt-image-2.6-flare "
        "(BLOGIMAGES_OPENAI_MODEL_REPLACEMENTS)"
    ) in result.provider_meta["adjustments"]


def test_a_retirement_learned_in_the_job_is_swapped_there(settings, server, generate):
    server.models["gpt-image-2"] = day(0)  # shuts down today; nothing cached when the editor asks
    configure(settings, server)
    settings.BLOGIMAGES_OPENAI_MODEL_REPLACEMENTS = {"gpt-image-2": "gpt-image-2.6-sunburst"}

    [result] = generate(GenerationSpec(prompt="A lighthouse", providers=["openai"]))

    assert result.status == "succeeded", result.error_message
    assert [g["json"]["model"] for g in server.generations] == ["gpt-image-2.6-sunburst"]
    assert result.provider_meta["model_replaced"] == {"requested": "gpt-image-2", "sent": "gpt-image-2.6-sunburst"}


def test_a_mapping_to_a_retired_or_unknown_model_is_refused(settings, server):
    provider = configure(settings, server)
    settings.BLOGIMAGES_OPENAI_MODEL_REPLACEMENTS = {"gpt-image-1.5": "gpt-image-1-mini", "dall-e-3": "gpt-image-9"}
    with pytest.raises(PermanentProviderError, match=r"sends it to 'gpt-image-1-mini', which was itself retired"):
        provider.prepare(GenerationRequest(prompt="A lighthouse", model="gpt-image-1.5"))
    with pytest.raises(PermanentProviderError, match=r"sends it to 'gpt-image-9', which is not a model this site"):
        provider.prepare(GenerationRequest(prompt="A lighthouse", model="dall-e-3"))
    ids = sorted(m.id for m in run_checks(tags=["blogimages"]) if m.id == "blogimages.E041")
    assert ids == ["blogimages.E041", "blogimages.E041"]
    assert server.requests == []


# --- warnings ----------------------------------------------------------------------------------------------


@pytest.fixture
def retiring(db, settings, server):
    """gpt-image-2 (the default) shuts down in 10 days, 2.5 Flare in 40; settings name them and a retired one."""
    server.models.update({"gpt-image-2": day(10), "gpt-image-2.5-flare": day(40)})
    provider = configure(settings, server, models={"gpt-image-2": {"replacement": "gpt-image-2.6-flare"}})
    ImageSetting.objects.create(name="Hero", model="gpt-image-2")
    ImageSetting.objects.create(name="Square", model="gpt-image-2.5-flare")
    ImagePromptExample.objects.create(name="Old cover", model="gpt-image-1.5")
    ImagePromptExample.objects.create(name="Comfy", model="flux1-dev")
    assert provider.health().ok  # the status page's health check reads and caches the dates
    return provider


SOON = (
    "gpt-image-2 (used by image setting 'Hero') shuts down on {date} (in 10 days, says GET /v1/models): "
    "use gpt-image-2.6-flare instead."
)
# The status page and blogimages_status name every use in one sentence.
SOON_ALL = (
    "gpt-image-2 (used by BLOGIMAGES_PROVIDERS['openai'] as its default model, image setting 'Hero') shuts down "
    "on {date} (in 10 days, says GET /v1/models): use gpt-image-2.6-flare instead."
)
SOON_DEFAULT = (
    "gpt-image-2 (used by BLOGIMAGES_PROVIDERS['openai'] as its default model) shuts down "
    "on {date} (in 10 days, says GET /v1/models): use gpt-image-2.6-flare instead."
)


def w040(*, database: bool) -> list:
    """W040 as ``manage.py check`` (database=False) or ``check --database default`` reports it:
    the providers' defaults from the blogimages checks, settings from the database check."""
    tags = ["blogimages", "database"] if database else ["blogimages"]
    found = run_checks(tags=tags, databases=["default"] if database else None)
    return [m for m in found if m.id == "blogimages.W040"]


GONE = (
    "gpt-image-1.5 (used by prompt example 'Old cover') was shut down by OpenAI on 2026-12-01; requests for it are "
    "refused: use gpt-image-2.6-sunburst or gpt-image-2.6-flare instead, or map it to a successor in "
    "BLOGIMAGES_OPENAI_MODEL_REPLACEMENTS."
)


def test_check_w040_lists_what_uses_a_retiring_or_retired_model(retiring, server):
    requests_before = len(server.requests)
    warnings = w040(database=True)
    assert sorted(m.msg for m in warnings) == sorted(
        [SOON_DEFAULT.format(date=day(10)), SOON.format(date=day(10)), GONE]
    )
    assert "BLOGIMAGES_OPENAI_MODEL_REPLACEMENTS = {'gpt-image-2': '<successor>'}" in warnings[0].hint
    # Without databases (plain ``manage.py check``) only the providers' own default models.
    assert [m.msg for m in w040(database=False)] == [SOON_DEFAULT.format(date=day(10))]
    assert len(server.requests) == requests_before  # checks make no network calls


def test_the_warning_window_is_a_setting(retiring, settings):
    settings.BLOGIMAGES_OPENAI_RETIREMENT_WARNING_DAYS = 45
    messages = [m.msg for m in w040(database=True)]
    assert any(m.startswith("gpt-image-2.5-flare (used by image setting 'Square') shuts down on") for m in messages)
    settings.BLOGIMAGES_OPENAI_RETIREMENT_WARNING_DAYS = 5
    assert [m.msg for m in w040(database=True)] == [GONE]


def test_a_mapped_model_says_where_its_requests_go(retiring, settings):
    settings.BLOGIMAGES_OPENAI_MODEL_REPLACEMENTS = {"gpt-image-1.5": "gpt-image-2.6-flare"}
    messages = [m.msg for m in w040(database=True)]
    assert (
        "gpt-image-1.5 (used by prompt example 'Old cover') was shut down by OpenAI on 2026-12-01; "
        "its requests go to gpt-image-2.6-flare (BLOGIMAGES_OPENAI_MODEL_REPLACEMENTS)."
    ) in messages


def test_the_status_page_shows_the_warnings(retiring, client, admin_user, rq_queue):
    client.force_login(admin_user)
    html = client.get(STATUS_URL).content.decode()
    row = html[html.index('data-alias="openai"') :]
    row = row[: row.index("<h2>")]  # up to the next box
    assert "Shutdown dates from GET /v1/models" in row
    assert "gpt-image-2 (used by BLOGIMAGES_PROVIDERS[&#x27;openai&#x27;] as its default model, image setting" in row
    assert "was shut down by OpenAI on 2026-12-01" in row


def test_blogimages_status_prints_the_warnings(retiring, rq_queue):
    out = io.StringIO()
    call_command("blogimages_status", stdout=out, stderr=io.StringIO(), no_color=True)
    text = out.getvalue()
    assert f"! {SOON_ALL.format(date=day(10))}" in text and f"! {GONE}" in text
    out = io.StringIO()
    call_command("blogimages_status", "--format", "json", stdout=out, stderr=io.StringIO(), no_color=True)
    [openai] = [p for p in json.loads(out.getvalue())["providers"] if p["alias"] == "openai"]
    assert openai["ok"] is True and SOON_ALL.format(date=day(10)) in openai["warnings"] and GONE in openai["warnings"]


# --- the models endpoint failing ------------------------------------------------------------------------------


def test_models_endpoint_failing_falls_back_to_the_table_and_says_so(db, settings, server, generate):
    server.models_error = 500
    provider = configure(settings, server)

    [result] = generate(GenerationSpec(prompt="A lighthouse", providers=["openai"]))
    [again] = generate(GenerationSpec(prompt="A harbour", providers=["openai"]))
    assert result.status == again.status == "succeeded"
    assert len(server.model_lists) == 1  # the failure is remembered, not retried for every image
    with pytest.raises(PermanentProviderError, match=r"^OpenAI retired GPT Image 1.5"):  # the table still applies
        provider.prepare(GenerationRequest(prompt="A lighthouse", model="gpt-image-1.5"))

    [row] = status.provider_health(["openai"])
    assert row.ok is False and row.detail.startswith("answered 500")
    assert row.warnings[0].startswith("Shutdown dates from the capability table: GET /v1/models could not be read at")
    assert row.warnings[0].endswith("(500: The server had an error while processing your request. Sorry about that).")
    assert row.info["model lifecycle"] == row.warnings[0]


def test_an_unreachable_server_falls_back_to_the_table(db, settings):
    provider = configure(settings, base_url=f"http://127.0.0.1:{free_port()}/v1")
    [row] = status.provider_health(["openai"])
    assert row.ok is False
    assert row.warnings[0].startswith("Shutdown dates from the capability table:") and "unreachable" in row.warnings[0]
    with pytest.raises(PermanentProviderError, match=r"^OpenAI retired DALL·E 3"):
        provider.prepare(GenerationRequest(prompt="A lighthouse", model="dall-e-3"))


# --- the gpt-image-2 family's parameters ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "extra", "message"),
    [
        ("gpt-image-2", {"quality": "max"}, "Quality 'max' is not available for gpt-image-2; choose one of auto, low,"),
        ("gpt-image-2.5-sunburst", {"quality": "max"}, None),
        ("gpt-image-2.6-flare", {"quality": "xhigh"}, None),
        ("gpt-image-2", {"complexity": "high"}, "gpt-image-2 takes no complexity, so 'high' cannot be used"),
        ("gpt-image-2.5-flare", {"complexity": "low"}, "gpt-image-2.5-flare takes no complexity"),
        ("gpt-image-2.6-sunburst", {"complexity": "high"}, None),
        (
            "gpt-image-2.6-sunburst",
            {"complexity": "extreme"},
            "Complexity 'extreme' is not available for gpt-image-2.6-sunburst; choose one of low, medium, high.",
        ),
        ("gpt-image-2", {"moderation": "strict"}, "Moderation 'strict' is not available for gpt-image-2; choose one"),
        ("gpt-image-2", {"output_format": "svg"}, "Output format 'svg' is not available for gpt-image-2"),
        (
            "gpt-image-2",
            {"output_format": "jpeg", "output_compression": 101},
            "Output compression must be a whole number from 0 to 100, not 101.",
        ),
        (
            "gpt-image-2",
            {"output_format": "webp", "output_compression": True},
            "Output compression must be a whole number from 0 to 100, not True.",
        ),
        ("gpt-image-2", {"output_compression": 50}, "Output compression only applies to jpeg or webp output"),
        ("gpt-image-2", {"size": "huge"}, "Size 'huge' is not a WIDTHxHEIGHT size; write it like 1536x1024."),
        ("dall-e-3", {}, "OpenAI retired DALL·E 3 (dall-e-3) on 2026-05-12; use gpt-image-2 instead."),
    ],
)
def test_gpt_image_2_parameters_are_checked_against_the_table(settings, server, model, extra, message):
    provider = configure(settings, server)
    request = GenerationRequest(prompt="A lighthouse", model=model, extra=extra)
    if message is None:
        provider.prepare(request)
    else:
        with pytest.raises(PermanentProviderError) as caught:
            provider.prepare(request)
        assert str(caught.value).startswith(message)
    assert server.requests == []


def test_complexity_is_sent_for_gpt_image_2_6(settings, server):
    provider = configure(settings, server)
    request, _ = provider.prepare(
        GenerationRequest(prompt="A lighthouse", model="gpt-image-2.6-flare", extra={"complexity": "Medium"})
    )
    provider.generate(request, ProgressReporter())
    [sent] = server.generations
    assert sent["json"]["complexity"] == "medium" and sent["json"]["model"] == "gpt-image-2.6-flare"


@pytest.mark.parametrize("model", ["gpt-image-2", "gpt-image-2.5-flare", "gpt-image-2.6-sunburst"])
@pytest.mark.parametrize(
    ("size", "expected", "why"),
    [
        ((512, 512), (816, 816), "needs at least 655360 pixels"),  # OpenAI's smallest: 655,360 pixels
        ((1000, 700), (992, 704), "needs sides divisible by 16"),
        ((3840, 2160), (3840, 2160), ""),
        ((4000, 1000), (2976, 992), "needs an aspect ratio of at most 3:1"),
    ],
)
def test_the_size_rule_of_the_gpt_image_2_family(model, size, expected, why):
    caps = build_table({})[model]
    width, height, reason = caps.snap_size(*size)
    assert (width, height) == expected
    assert reason.startswith(why)
    assert width % 16 == 0 and height % 16 == 0 and max(width, height) <= 3840
    assert 655_360 <= width * height <= 3840 * 2160 and max(width, height) / min(width, height) <= 3
