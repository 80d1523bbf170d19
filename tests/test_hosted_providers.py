"""Hosted image APIs (FLUX by BFL, Replicate, fal.ai, Gemini) against local servers that speak
their documented protocols over real HTTP; webhooks arrive over HTTP at the live test server."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable

import pytest
import requests

from blogimages import services, status
from blogimages.exceptions import GenerationCancelled, PermanentProviderError, TransientProviderError
from blogimages.providers import GenerationRequest, ProgressReporter, providers
from blogimages.providers.hosted import webhook_token
from blogimages.services import GenerationSpec
from tests.servers.asyncjob import JobServer
from tests.servers.bfl import BFLServer
from tests.servers.fal import FalServer
from tests.servers.gemini import GeminiServer
from tests.servers.replicate import ReplicateServer

KEYS = ("BFL_API_KEY", "REPLICATE_API_TOKEN", "REPLICATE_WEBHOOK_SECRET", "FAL_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY")
PLACEHOLDER = {"BACKEND": "blogimages.providers.placeholder.PlaceholderProvider", "OPTIONS": {"delay": 0.0}}


class Recorder(ProgressReporter):
    def __init__(self, cancel_when: Callable[[], bool] | None = None):
        super().__init__()
        self.reports: list[tuple[int, str]] = []
        self.remote: list[tuple[str, str]] = []
        self.cancel_when = cancel_when

    def progress(self, percent, message=""):
        self.reports.append((int(percent), message))

    def cancelled(self):
        return bool(self.cancel_when and self.cancel_when())

    def remote_id(self, remote_id, server=""):
        self.remote.append((remote_id, server))


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, settings):
    """The developer's own keys must not leak into these tests."""
    for name in (*KEYS, "BLOGIMAGES_WEBHOOK_BASE_URL", "ENABLE_CLOUD_APIS"):
        monkeypatch.delenv(name, raising=False)
    settings.BLOGIMAGES_WEBHOOK_BASE_URL = ""


# --- the three job APIs, one kit each ---------------------------------------------------------------------


@dataclass
class Kit:
    alias: str
    backend: str
    server: JobServer
    key_name: str
    model: str
    options: dict[str, Any] = field(default_factory=dict)

    def submit_body(self, index: int = 0) -> dict[str, Any]:
        return self.server.submits[index]["json"]


def make_kit(name: str, thread_server) -> Kit:
    fast = {"poll_interval": 0.01, "max_poll_interval": 0.05, "timeout": 30.0}
    if name == "bfl":
        server = thread_server(BFLServer(api_key="bfl-test"))
        return Kit(
            "bfl",
            "blogimages.providers.bfl.BFLProvider",
            server,
            "BFL_API_KEY",
            "flux-2-pro",
            {"api_key": "bfl-test", "base_url": server.url, **fast},
        )
    if name == "replicate":
        server = thread_server(ReplicateServer(api_key="r8_test"))
        return Kit(
            "replicate",
            "blogimages.providers.replicate.ReplicateProvider",
            server,
            "REPLICATE_API_TOKEN",
            "black-forest-labs/flux-schnell",
            {"api_key": "r8_test", "base_url": server.url, **fast},
        )
    server = thread_server(FalServer(api_key="fal-test:secret"))
    return Kit(
        "fal",
        "blogimages.providers.fal.FalProvider",
        server,
        "FAL_KEY",
        "fal-ai/flux/schnell",
        {"api_key": "fal-test:secret", "base_url": server.root, "jwks_url": server.jwks_url, **fast},
    )


@pytest.fixture(params=["bfl", "replicate", "fal"])
def kit(request, thread_server, settings):
    kit = make_kit(request.param, thread_server)
    configure(settings, kit)
    return kit


def configure(settings, kit: Kit, **options):
    settings.BLOGIMAGES_PROVIDERS = {
        "placeholder": PLACEHOLDER,
        kit.alias: {"BACKEND": kit.backend, "OPTIONS": {**kit.options, **options}},
    }
    return providers[kit.alias]


def request(**fields) -> GenerationRequest:
    return GenerationRequest(**{"prompt": "A lighthouse at dusk", "width": 1024, "height": 768, **fields})


def result_file(kit: Kit) -> str:
    [name] = kit.server.files
    return name


def test_success_submits_polls_and_fetches_the_image_once(kit):
    reporter = Recorder()
    image = providers[kit.alias].generate(request(seed=77), reporter)

    name = result_file(kit)
    assert image.content == kit.server.files[name]
    assert kit.server.downloads[name] == 1
    assert (image.provider, image.model, image.seed) == (kit.alias, kit.model, 77)
    assert reporter.remote == [(image.remote_id, f"{kit.alias}|{kit.model}")]
    assert image.metadata["polls"] == 3 and image.metadata["webhook"] is False
    percents = [p for p, _ in reporter.reports]
    assert percents == sorted(percents) and percents[-1] == 100
    body = kit.submit_body()
    if kit.alias == "bfl":
        assert (body["prompt"], body["width"], body["height"], body["seed"]) == ("A lighthouse at dusk", 1024, 768, 77)
        assert body["safety_tolerance"] == 2 and "webhook_url" not in body
    elif kit.alias == "replicate":
        assert body["input"] == {
            "prompt": "A lighthouse at dusk",
            "num_outputs": 1,
            "output_format": "png",
            "aspect_ratio": "4:3",
            "seed": 77,
        }
        assert kit.server.submits[0]["path"] == "/v1/models/black-forest-labs/flux-schnell/predictions"
    else:
        assert body["image_size"] == {"width": 1024, "height": 768} and body["seed"] == 77
        assert body["enable_safety_checker"] is True


def test_a_slow_job_is_polled_several_times(kit):
    kit.server.plan(polls=6)
    image = providers[kit.alias].generate(request(), Recorder())
    assert image.metadata["polls"] == 7 == kit.server.polls
    assert image.content == kit.server.files[result_file(kit)]


def test_cancel_while_waiting_cancels_the_job_on_the_service(kit):
    kit.server.plan(outcome="stuck")
    with pytest.raises(GenerationCancelled) as caught:
        providers[kit.alias].generate(request(), Recorder(cancel_when=lambda: kit.server.polls >= 2))
    [job_id] = kit.server.jobs
    if kit.alias == "bfl":
        # BFL documents no cancel: we stop waiting and say so.
        assert kit.server.cancels == [] and "may still bill" in str(caught.value)
    else:
        assert kit.server.cancels == [job_id] and kit.server.jobs[job_id].state == "cancelled"
    assert kit.server.files == {}


def test_a_safety_block_is_permanent(kit):
    kit.server.plan(outcome="safety")
    with pytest.raises(PermanentProviderError, match="safety system blocked this request"):
        providers[kit.alias].generate(request(), Recorder())


def test_a_failed_job_is_permanent_with_the_services_reason(kit):
    kit.server.plan(outcome="failed")
    with pytest.raises(PermanentProviderError) as caught:
        providers[kit.alias].generate(request(), Recorder())
    assert "safety" not in str(caught.value)


def test_429_on_submit_is_transient_with_its_retry_after_then_success(kit):
    kit.server.submit_errors("rate_limit")
    provider = providers[kit.alias]
    with pytest.raises(TransientProviderError, match="rate limiting") as caught:
        provider.generate(request(), Recorder())
    assert caught.value.retry_after == 7.0
    assert kit.server.jobs == {}  # nothing was queued, nothing billed

    image = provider.generate(request(), Recorder())
    assert image.content == kit.server.files[result_file(kit)]


def test_429_and_500_while_polling_are_waited_out(kit):
    kit.server.poll_errors("rate_limit_now", "server_error")
    image = providers[kit.alias].generate(request(), Recorder())
    assert image.content == kit.server.files[result_file(kit)]


def test_500_is_transient(kit):
    kit.server.submit_errors("server_error")
    with pytest.raises(TransientProviderError, match="500"):
        providers[kit.alias].generate(request(), Recorder())


def test_a_service_failing_every_poll_ends_the_job_and_cancels_it(kit):
    kit.server.plan(outcome="stuck")
    kit.server.poll_errors(*["server_error"] * 5)
    with pytest.raises(TransientProviderError, match="500"):
        providers[kit.alias].generate(request(), Recorder())
    assert kit.server.cancels == ([] if kit.alias == "bfl" else list(kit.server.jobs))


def test_an_expired_result_url_is_permanent_and_fetched_once(kit):
    kit.server.plan(expire=True)
    with pytest.raises(PermanentProviderError, match="the result URL expired before it was fetched"):
        providers[kit.alias].generate(request(), Recorder())
    assert list(kit.server.downloads.values()) == [1]


def test_the_wall_clock_deadline_cancels_a_job_that_never_finishes(kit, settings):
    configure(settings, kit, timeout=0.3)
    kit.server.plan(outcome="stuck")
    with pytest.raises(TransientProviderError, match="did not finish within 0.3 s"):
        providers[kit.alias].generate(request(), Recorder())
    assert kit.server.cancels == ([] if kit.alias == "bfl" else list(kit.server.jobs))


def test_a_wrong_key_is_permanent(kit, settings):
    configure(settings, kit, api_key="wrong")
    with pytest.raises(PermanentProviderError, match="rejected the API key"):
        providers[kit.alias].generate(request(), Recorder())


def test_the_key_comes_from_the_environment_and_its_absence_is_explained(kit, settings, monkeypatch):
    options = {k: v for k, v in kit.options.items() if k != "api_key"}
    settings.BLOGIMAGES_PROVIDERS = {kit.alias: {"BACKEND": kit.backend, "OPTIONS": options}}
    with pytest.raises(PermanentProviderError, match=f"not configured: set {kit.key_name}"):
        providers[kit.alias].generate(request(), Recorder())
    assert kit.server.requests == []
    assert not providers[kit.alias].health().ok

    monkeypatch.setenv(kit.key_name, kit.options["api_key"])
    image = providers[kit.alias].generate(request(), Recorder())
    assert image.content == kit.server.files[result_file(kit)]


def test_sizes_and_ranges_are_checked_before_any_money_is_spent(kit):
    provider = providers[kit.alias]
    prepared, adjustments = provider.prepare(request(width=1000, height=700, sampler="euler"))
    if kit.alias == "replicate":
        assert prepared.extra["aspect_ratio"] == "3:2"
        assert adjustments[0].startswith("size 1000x700 changed to") and "sent 3:2" in adjustments[0]
    else:
        assert (prepared.width % 16, prepared.height % 16) == (0, 0)
        assert "sides divisible by 16" in adjustments[0]
    assert any("does not use sampler" in note for note in adjustments)
    with pytest.raises(PermanentProviderError, match="steps"):
        provider.prepare(
            request(model="black-forest-labs/flux-schnell", steps=20)
            if kit.alias == "replicate"
            else request(steps=500, model="flux-2-flex" if kit.alias == "bfl" else "fal-ai/flux/dev")
        )
    ours = {"bfl": "flux-9-ultra", "replicate": "black-forest-labs/flux-9", "fal": "fal-ai/flux-9"}[kit.alias]
    if kit.alias != "bfl":
        with pytest.raises(PermanentProviderError, match="not one this site knows"):
            provider.prepare(request(model=ours))
    prepared, adjustments = provider.prepare(request(model="sdxl_base"))  # another provider's model
    assert prepared.model == kit.model and "is not a" in adjustments[-1]
    assert kit.server.requests == []


# --- webhooks ---------------------------------------------------------------------------------------------


def test_a_webhook_arriving_before_the_first_poll_settles_the_job(kit, settings, live_server):
    settings.BLOGIMAGES_WEBHOOK_BASE_URL = live_server.url
    configure(settings, kit, poll_interval=60.0, max_poll_interval=60.0)  # polling alone would take a minute
    kit.server.plan(webhook="early")  # the service calls back before it even answers the submit

    image = providers[kit.alias].generate(request(), Recorder())

    assert kit.server.webhook_answers == [200]
    assert kit.server.polls == 0
    assert image.metadata["settled_by"] == "webhook" and image.metadata["webhook"] is True
    assert image.content == kit.server.files[result_file(kit)]
    [submit] = kit.server.submits
    hook = {
        "bfl": lambda: submit["json"]["webhook_url"],
        "replicate": lambda: submit["json"]["webhook"],
        "fal": lambda: requests.utils.unquote(submit["query"].removeprefix("fal_webhook=")),
    }[kit.alias]()
    assert hook.startswith(f"{live_server.url}/api/v1/webhooks/{kit.alias}/")
    if kit.alias == "replicate":
        assert submit["json"]["webhook_events_filter"] == ["completed"]


def test_a_webhook_with_a_bad_signature_is_refused_and_polling_carries_on(kit, settings, live_server):
    settings.BLOGIMAGES_WEBHOOK_BASE_URL = live_server.url
    kit.server.plan(webhook="early", bad_signature=True)

    image = providers[kit.alias].generate(request(), Recorder())

    assert kit.server.webhook_answers == [403]
    assert "settled_by" not in image.metadata and kit.server.polls >= 1
    assert image.content == kit.server.files[result_file(kit)]


def test_a_safety_block_can_arrive_by_webhook(kit, settings, live_server):
    settings.BLOGIMAGES_WEBHOOK_BASE_URL = live_server.url
    configure(settings, kit, poll_interval=60.0, max_poll_interval=60.0)
    kit.server.plan(webhook="early", outcome="safety")
    with pytest.raises(PermanentProviderError, match="safety system blocked"):
        providers[kit.alias].generate(request(), Recorder())
    assert kit.server.webhook_answers == [200] and kit.server.polls == 0


def test_the_webhook_view_refuses_what_this_site_did_not_ask_for(client, settings, thread_server):
    kit = make_kit("bfl", thread_server)
    configure(settings, kit)
    good = webhook_token("bfl", "n1")
    url = "/api/v1/webhooks/{alias}/n1/{token}"
    answer = client.post(url.format(alias="bfl", token="0" * 40), data=b"{}", content_type="application/json")
    assert answer.status_code == 403
    answer = client.post(url.format(alias="bfl", token=good), data=b"{}", content_type="application/json")
    assert answer.status_code == 403 and "X-BFL-Signature" in answer.json()["detail"]
    assert client.get(url.format(alias="bfl", token=good)).status_code == 405
    assert client.post(url.format(alias="placeholder", token=webhook_token("placeholder", "n1"))).status_code == 404
    provider = providers["bfl"]
    import hashlib
    import hmac

    signed = "sha256=" + hmac.new(provider.webhook_secret().encode(), b"not json", hashlib.sha256).hexdigest()
    answer = client.post(
        url.format(alias="bfl", token=good), data=b"not json", content_type="text/plain", HTTP_X_BFL_SIGNATURE=signed
    )
    assert answer.status_code == 400


def test_replicate_prefer_wait_can_finish_in_the_create_call(settings, thread_server):
    kit = make_kit("replicate", thread_server)
    configure(settings, kit, wait=5)
    kit.server.plan(polls=0)
    image = providers["replicate"].generate(request(), Recorder())
    assert kit.server.submits[0]["headers"]["prefer"] == "wait=5"
    assert kit.server.polls == 0 and image.metadata["polls"] == 0


def test_cancel_by_remote_id_only_touches_this_aliases_jobs(settings, thread_server):
    kit = make_kit("fal", thread_server)
    provider = configure(settings, kit)
    kit.server.plan(outcome="stuck")
    reporter = Recorder(cancel_when=lambda: False)
    with pytest.raises(TransientProviderError):
        configure(settings, kit, timeout=0.2).generate(request(), reporter)
    [(job_id, server)] = reporter.remote
    kit.server.cancels.clear()
    kit.server.jobs[job_id].state = "running"
    provider = providers["fal"]
    assert not provider.cancel(job_id, "other-alias|fal-ai/flux/schnell")
    assert provider.cancel(job_id, server)
    assert kit.server.cancels == [job_id]


# --- Gemini ------------------------------------------------------------------------------------------------


@pytest.fixture
def gemini(thread_server, settings):
    server = thread_server(GeminiServer(api_key="gm-test"))
    settings.BLOGIMAGES_PROVIDERS = {
        "gemini": {
            "BACKEND": "blogimages.providers.gemini.GeminiProvider",
            "OPTIONS": {"api_key": "gm-test", "base_url": server.url},
        }
    }
    return server


def test_gemini_generates_with_image_output_and_the_nearest_aspect_ratio(gemini):
    provider = providers["gemini"]
    image = provider.generate(request(width=1600, height=900), Recorder())

    [call] = [c for c in gemini.calls if c["method"] == "POST"]
    assert call["path"] == "/v1beta/models/gemini-2.5-flash-image:generateContent"
    assert call["json"]["generationConfig"] == {"responseModalities": ["IMAGE"], "imageConfig": {"aspectRatio": "16:9"}}
    assert call["json"]["contents"][0]["parts"] == [{"text": "A lighthouse at dusk"}]
    assert image.content == gemini.images[0]
    assert image.metadata["text"] == "Here is your lighthouse." and image.metadata["aspect_ratio"] == "16:9"

    prepared, adjustments = provider.prepare(request(width=1000, height=700, seed=3))
    assert prepared.extra["aspect_ratio"] == "3:2" and "sent 3:2" in adjustments[0]
    assert "does not use seed" in adjustments[1]


def test_gemini_image_size_only_where_the_model_takes_it(gemini):
    provider = providers["gemini"]
    with pytest.raises(PermanentProviderError, match="Image size '2K' is not available"):
        provider.prepare(request(extra={"image_size": "2K"}))
    provider.generate(request(model="gemini-3-pro-image-preview", extra={"image_size": "2K"}), Recorder())
    [call] = [c for c in gemini.calls if c["method"] == "POST"]
    assert call["json"]["generationConfig"]["imageConfig"] == {"aspectRatio": "4:3", "imageSize": "2K"}


@pytest.mark.parametrize("outcome", ["prompt_blocked", "image_safety"])
def test_gemini_safety_blocks_are_permanent(gemini, outcome):
    gemini.script(outcome)
    with pytest.raises(PermanentProviderError, match="safety system blocked"):
        providers["gemini"].generate(request(), Recorder())


def test_gemini_answering_in_words_is_permanent(gemini):
    gemini.script("text_only")
    with pytest.raises(PermanentProviderError, match="without an image .*here is a description"):
        providers["gemini"].generate(request(), Recorder())


def test_gemini_429_waits_as_its_retry_info_says_then_success(gemini):
    gemini.script("rate_limit", "ok")
    provider = providers["gemini"]
    with pytest.raises(TransientProviderError, match="RESOURCE_EXHAUSTED") as caught:
        provider.generate(request(), Recorder())
    assert caught.value.retry_after == 7.0
    assert provider.generate(request(), Recorder()).content == gemini.images[0]


def test_gemini_500_is_transient(gemini):
    gemini.script("server_error")
    with pytest.raises(TransientProviderError, match="500"):
        providers["gemini"].generate(request(), Recorder())


def test_gemini_cancel_stops_waiting_for_a_slow_answer(gemini):
    gemini.script("slow")
    calls = lambda: [c for c in gemini.calls if c["method"] == "POST"]  # noqa: E731
    try:
        with pytest.raises(GenerationCancelled, match="may still bill"):
            providers["gemini"].generate(request(), Recorder(cancel_when=lambda: bool(calls())))
    finally:
        gemini.release.set()


def test_gemini_health_reads_the_model_and_the_key(gemini, settings):
    health = providers["gemini"].health()
    assert health.ok and health.detail.startswith("Gemini reachable")
    settings.BLOGIMAGES_PROVIDERS = {
        "gemini": {
            "BACKEND": "blogimages.providers.gemini.GeminiProvider",
            "OPTIONS": {"api_key": "bad", "base_url": gemini.url},
        }
    }
    assert not providers["gemini"].health().ok


# --- where they show, and how they are chosen ----------------------------------------------------------------


def all_four(thread_server) -> dict[str, dict[str, Any]]:
    kits = {name: make_kit(name, thread_server) for name in ("bfl", "replicate", "fal")}
    gemini = thread_server(GeminiServer(api_key="gm-test"))
    config = {kit.alias: {"BACKEND": kit.backend, "OPTIONS": kit.options} for kit in kits.values()}
    config["gemini"] = {
        "BACKEND": "blogimages.providers.gemini.GeminiProvider",
        "OPTIONS": {"api_key": "gm-test", "base_url": gemini.url},
    }
    return config


def test_the_status_page_and_command_list_each_hosted_provider(settings, thread_server):
    settings.BLOGIMAGES_PROVIDERS = {"placeholder": PLACEHOLDER, **all_four(thread_server)}
    assert {alias: status.provider_class(alias).kind for alias in ("bfl", "replicate", "fal", "gemini")} == {
        "bfl": "bfl",
        "replicate": "replicate",
        "fal": "fal",
        "gemini": "gemini",
    }
    assert status.aliases_where(is_cloud=True) == ["bfl", "replicate", "fal", "gemini"]
    rows = {row.alias: row for row in status.provider_health(timeout=5)}
    assert all(rows[alias].ok for alias in ("bfl", "replicate", "fal", "gemini")), rows
    assert (
        rows["replicate"].detail
        == f"Replicate reachable at {settings.BLOGIMAGES_PROVIDERS['replicate']['OPTIONS']['base_url']}"
    )
    assert rows["bfl"].label == "FLUX API (Black Forest Labs)"


def test_blogimages_status_command_shows_them(settings, thread_server, db):
    from io import StringIO

    from django.core.management import call_command

    settings.BLOGIMAGES_PROVIDERS = all_four(thread_server)
    out = StringIO()
    call_command("blogimages_status", stdout=out)
    text = out.getvalue()
    for alias in ("bfl", "replicate", "fal", "gemini"):
        assert alias in text


@pytest.mark.parametrize("cloud", [False, True])
def test_auto_uses_them_only_when_cloud_apis_are_enabled(settings, thread_server, cloud):
    kit = make_kit("replicate", thread_server)
    settings.BLOGIMAGES_PROVIDERS = {
        kit.alias: {"BACKEND": kit.backend, "OPTIONS": kit.options},
        "placeholder": PLACEHOLDER,
        "auto": {
            "BACKEND": "blogimages.providers.auto.AutoProvider",
            "OPTIONS": {"order": ["replicate", "placeholder"]},
        },
    }
    settings.BLOGIMAGES_ENABLE_CLOUD_APIS = cloud
    image = providers["auto"].generate(request(), Recorder())
    if cloud:
        assert image.provider == "replicate" and image.content == kit.server.files[result_file(kit)]
    else:
        assert image.provider == "placeholder" and kit.server.requests == []
        assert image.metadata["auto_skipped"] == {"replicate": "is a paid cloud API and ENABLE_CLOUD_APIS is off"}


def test_auto_falls_through_a_rate_limited_service_with_its_retry_after(settings, thread_server):
    kit = make_kit("fal", thread_server)
    settings.BLOGIMAGES_PROVIDERS = {
        "fal": {"BACKEND": kit.backend, "OPTIONS": kit.options},
        "placeholder": PLACEHOLDER,
        "auto": {"BACKEND": "blogimages.providers.auto.AutoProvider", "OPTIONS": {"order": ["fal", "placeholder"]}},
    }
    settings.BLOGIMAGES_ENABLE_CLOUD_APIS = True
    kit.server.submit_errors("rate_limit")
    image = providers["auto"].generate(request(), Recorder())
    assert image.provider == "placeholder" and "rate limiting" in image.metadata["auto_skipped"]["fal"]


def test_a_request_names_the_provider_and_the_job_runs_it(
    settings, thread_server, db, django_capture_on_commit_callbacks, run_worker
):
    kit = make_kit("bfl", thread_server)
    settings.BLOGIMAGES_PROVIDERS = {
        "placeholder": PLACEHOLDER,
        "bfl": {"BACKEND": kit.backend, "OPTIONS": kit.options},
    }
    with django_capture_on_commit_callbacks(execute=True):
        [result] = services.request_generation(GenerationSpec(prompt="A lighthouse at dusk", providers=["bfl"]))
    run_worker()
    result.refresh_from_db()
    assert result.status == "succeeded", result.error_message
    assert result.provider_used == "bfl" and result.remote_id == next(iter(kit.server.jobs))
    assert json.loads(json.dumps(result.provider_meta))["job_id"] == result.remote_id
