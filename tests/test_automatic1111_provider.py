"""The Automatic1111 provider against a local server that speaks its API, over real HTTP."""

from __future__ import annotations

import io
import json
import threading
import time

import pytest
import requests
from django.core.files.storage import default_storage
from PIL import Image

from blogimages.exceptions import GenerationCancelled, PermanentProviderError, TransientProviderError
from blogimages.providers import GenerationRequest, Lora, ProgressReporter, providers
from blogimages.providers.automatic1111 import TASK_PREFIX, Automatic1111Provider, a1111_sampler
from blogimages.services import GenerationSpec
from tests.conftest import free_port
from tests.servers.a1111 import A1111Server

BACKEND = "blogimages.providers.automatic1111.Automatic1111Provider"


class Recorder(ProgressReporter):
    """Keeps what the provider reported; ``cancel_at`` cancels once progress reaches that percent."""

    def __init__(self, cancel_at: float | None = None, cancel_now: bool = False):
        super().__init__()
        self.reports: list[tuple[int, str]] = []
        self.remote: list[tuple[str, str]] = []
        self.cancel_at = cancel_at
        self._cancelled = cancel_now

    def progress(self, percent, message=""):
        self.reports.append((int(percent), message))
        if self.cancel_at is not None and percent >= self.cancel_at:
            self._cancelled = True

    def cancelled(self):
        return self._cancelled

    def remote_id(self, remote_id, server=""):
        self.remote.append((remote_id, server))


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ("AUTOMATIC1111_BASE_URL", "AUTOMATIC1111_API_AUTH"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server(thread_server):
    return thread_server(A1111Server(step_delay=0.01))


def make(server, **options) -> Automatic1111Provider:
    return Automatic1111Provider("a1111", base_url=server.url, poll_interval=0.02, **options)


def decode(content: bytes) -> Image.Image:
    return Image.open(io.BytesIO(content))


# --- the client over HTTP ----------------------------------------------------------------------------


def test_success_sends_the_mapped_request_and_reads_the_seed_used(server):
    provider = make(server, model="sd_xl_base_1.0")
    reporter = Recorder()
    request, adjustments = provider.prepare(
        GenerationRequest(
            prompt="A lighthouse at dusk",
            negative_prompt="blurry",
            width=1000,
            height=600,
            steps=20,
            guidance_scale=6.5,
            sampler="dpmpp_2m",
            scheduler="karras",
        )
    )
    image = provider.generate(request, reporter)

    [sent] = server.txt2img
    body = sent["json"]
    assert {k: body[k] for k in ("prompt", "negative_prompt", "width", "height", "steps", "cfg_scale", "seed")} == {
        "prompt": "A lighthouse at dusk",
        "negative_prompt": "blurry",
        "width": 1000,
        "height": 600,
        "steps": 20,
        "cfg_scale": 6.5,
        "seed": -1,
    }
    assert (body["sampler_name"], body["scheduler"]) == ("DPM++ 2M", "Karras")
    assert body["override_settings"] == {"sd_model_checkpoint": "sd_xl_base_1.0.safetensors [31e35c80fc]"}
    assert body["force_task_id"].startswith(TASK_PREFIX)
    assert adjustments == []

    # Not pinned: A1111 picked the seed, and the one it used is read back from ``info``.
    assert image.seed is not None and 0 <= image.seed < 2**32
    assert f"Seed: {image.seed}," in image.metadata["infotext"]
    assert image.model == "sd_xl_base_1.0"
    assert (image.metadata["sampler"], image.metadata["scheduler"]) == ("DPM++ 2M", "Karras")
    assert decode(image.content).size == (1000, 600)
    assert reporter.remote == [(body["force_task_id"], server.url)]
    assert image.remote_id == body["force_task_id"]
    # Progress came from the server while it worked, and only went up.
    percents = [p for p, _ in reporter.reports]
    assert any(p > 5 for p in percents), reporter.reports
    assert percents == sorted(percents)
    assert "/internal/progress" in server.paths()


def test_a_pinned_seed_is_sent_and_reported(server):
    provider = make(server)
    image = provider.generate(
        GenerationRequest(prompt="A harbour", seed=4242, width=64, height=64, steps=2), Recorder()
    )
    assert server.txt2img[0]["json"]["seed"] == 4242
    assert image.seed == 4242
    assert "override_settings" not in server.txt2img[0]["json"]  # no model asked: the loaded one is used


def test_sizes_are_snapped_to_multiples_of_8_and_the_change_recorded(server):
    provider = make(server)
    request, adjustments = provider.prepare(GenerationRequest(prompt="x", width=1001, height=766))
    assert (request.width, request.height) == (1000, 768)
    assert adjustments == ["size 1001x766 snapped to 1000x768 (Automatic1111 needs multiples of 8)"]
    assert provider.prepare(request) == (request, [])  # idempotent


@pytest.mark.parametrize(
    ("sampler", "scheduler", "expected"),
    [
        ("euler_ancestral", "", ("Euler a", "")),
        ("dpmpp_2m", "karras", ("DPM++ 2M", "Karras")),
        ("DPM++ 2M Karras", "", ("DPM++ 2M", "Karras")),  # A1111's older combined names
        ("dpmpp_2m_sde_gpu", "exponential", ("DPM++ 2M SDE", "Exponential")),
        ("uni_pc", "sgm_uniform", ("UniPC", "SGM Uniform")),
        ("euler a", "Karras", ("Euler a", "Karras")),
        ("Some Extension Sampler", "", ("Some Extension Sampler", "")),
    ],
)
def test_comfyui_sampler_names_map_to_a1111_names(sampler, scheduler, expected):
    assert a1111_sampler(sampler, scheduler) == expected


def test_an_unknown_scheduler_is_refused_before_sending(server):
    # A1111 would quietly use "Automatic" instead, so the image would not be what was asked.
    provider = make(server)
    with pytest.raises(PermanentProviderError, match="Automatic1111 has no scheduler 'linear_quadratic'; use one of"):
        provider.generate(GenerationRequest(prompt="x", scheduler="linear_quadratic"), Recorder())
    assert server.txt2img == []


def test_an_unknown_sampler_is_permanent_with_a_sentence(server):
    provider = make(server)
    with pytest.raises(PermanentProviderError) as caught:
        provider.generate(GenerationRequest(prompt="x", sampler="Warp Drive", width=64, height=64), Recorder())
    assert str(caught.value).startswith("Automatic1111 has no sampler 'Warp Drive'; use one of DDIM, ")


def test_a_validation_error_is_permanent_and_names_the_field(server):
    provider = make(server)
    request = GenerationRequest(prompt="x", width=64, height=64, extra={"a1111": {"steps": "many", "enable_hr": []}})
    with pytest.raises(PermanentProviderError) as caught:
        provider.generate(request, Recorder())
    assert str(caught.value) == (
        "Automatic1111 rejected the request: steps: value is not a valid integer; "
        "enable_hr: value could not be parsed to a boolean."
    )


def test_an_unknown_checkpoint_is_refused_before_sending(server):
    # A1111 drops an unknown sd_model_checkpoint override and uses whatever is loaded.
    provider = make(server)
    with pytest.raises(PermanentProviderError) as caught:
        provider.generate(GenerationRequest(prompt="x", model="flux1-dev.safetensors"), Recorder())
    assert str(caught.value).startswith(
        f"Automatic1111 at {server.url} has no checkpoint 'flux1-dev.safetensors' "
        "(it has: v1-5-pruned-emaonly, sd_xl_base_1.0); copy the file into models/Stable-diffusion"
    )
    assert server.txt2img == []


@pytest.mark.parametrize(
    "name",
    [
        "sd_xl_base_1.0.safetensors",
        "sd_xl_base_1.0",
        "sd_xl_base_1.0.safetensors [31e35c80fc]",
        "31e35c80fc",
    ],
)
def test_a_checkpoint_can_be_named_as_a1111_lists_it(server, name):
    assert make(server).checkpoint_title(name) == "sd_xl_base_1.0.safetensors [31e35c80fc]"


def test_loras_become_prompt_tags_in_stacking_order(server):
    provider = make(server)
    request = GenerationRequest(
        prompt="A detective",
        width=64,
        height=64,
        steps=2,
        loras=(Lora("film-grain.safetensors", 1.0, "cinematic"), Lora("ink", 0.8, "style")),
        extra={"character_loras": ["detective_v2"]},
    )
    provider.generate(request, Recorder())
    assert server.txt2img[0]["json"]["prompt"] == (
        "A detective <lora:ink:0.8> <lora:detective_v2:0.85> <lora:film-grain:0.95>"
    )


def test_a_server_error_is_transient(server):
    server.script("server_error")
    with pytest.raises(TransientProviderError) as caught:
        make(server).generate(GenerationRequest(prompt="x", width=64, height=64), Recorder())
    assert str(caught.value) == (
        "Automatic1111 had a server error (500): CUDA out of memory. Tried to allocate 2.50 GiB"
    )


def test_an_unreachable_server_is_transient():
    provider = Automatic1111Provider("a1111", base_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(TransientProviderError, match="is unreachable .*; is the web UI running"):
        provider.generate(GenerationRequest(prompt="x", width=64, height=64), Recorder())
    assert provider.health().ok is False


def test_cancel_interrupts_our_task_and_discards_the_half_made_image(thread_server):
    server = thread_server(A1111Server(step_delay=0.02))
    reporter = Recorder(cancel_at=20)
    with pytest.raises(GenerationCancelled):
        make(server).generate(GenerationRequest(prompt="x", width=64, height=64, steps=100), reporter)
    task_id = server.txt2img[0]["json"]["force_task_id"]
    # Upstream answers 200 with the half-made image after an interrupt; it was not returned.
    assert server.interrupted_tasks == [task_id]
    assert server.interrupts == 1
    assert server.state["sampling_step"] < 100


def test_cancel_while_queued_never_interrupts_someone_elses_job(thread_server):
    server = thread_server(A1111Server(step_delay=0.02))
    foreign: dict = {}

    def someone_else():
        foreign["response"] = requests.post(
            f"{server.url}/sdapi/v1/txt2img",
            json={
                "prompt": "theirs",
                "steps": 25,
                "width": 64,
                "height": 64,
                "force_task_id": "task(txt2img-FOREIGN)",
            },
            timeout=30,
        )

    other = threading.Thread(target=someone_else)
    other.start()
    deadline = time.monotonic() + 5
    while server.current_task != "task(txt2img-FOREIGN)" and time.monotonic() < deadline:
        time.sleep(0.01)
    with pytest.raises(GenerationCancelled):
        make(server).generate(
            GenerationRequest(prompt="mine", width=64, height=64, steps=200), Recorder(cancel_now=True)
        )
    other.join()
    ours = [r["json"]["force_task_id"] for r in server.txt2img if r["json"]["prompt"] == "mine"]
    # The foreign job ran to the end; ours was interrupted as soon as it started.
    assert server.interrupted_tasks == ours
    assert foreign["response"].status_code == 200
    assert json.loads(foreign["response"].json()["info"])["steps"] == 25


def test_remote_cancel_acts_only_on_our_running_task(thread_server):
    server = thread_server(A1111Server(step_delay=0.02))
    provider = make(server)
    reporter = Recorder()
    outcome: dict = {}

    def run():
        try:
            outcome["image"] = provider.generate(
                GenerationRequest(prompt="x", width=64, height=64, steps=200), reporter
            )
        except Exception as exc:  # noqa: BLE001 - checked below
            outcome["error"] = exc

    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.monotonic() + 5
    while not (reporter.remote and server.current_task == reporter.remote[0][0]) and time.monotonic() < deadline:
        time.sleep(0.01)
    task_id = reporter.remote[0][0]
    assert provider.cancel("task(txt2img-SOMEONE)", server.url) is False  # not ours: never interrupt
    assert provider.cancel(task_id, "http://elsewhere:7860") is False
    assert server.interrupts == 0
    # As services.cancel does: the row is cancelled first, then the remote job.
    reporter._cancelled = True
    assert provider.cancel(task_id, server.url) is True
    worker.join(10)
    assert isinstance(outcome.get("error"), GenerationCancelled), outcome
    assert server.interrupted_tasks == [task_id]
    assert provider.cancel(task_id, server.url) is False  # finished: nothing to interrupt


def test_without_the_web_ui_progress_comes_from_sdapi_progress_and_cancel_does_not_interrupt(thread_server):
    server = thread_server(A1111Server(step_delay=0.02, webui=False))
    reporter = Recorder()
    image = make(server).generate(GenerationRequest(prompt="x", width=64, height=64, steps=20), reporter)
    assert image.content.startswith(b"\x89PNG")
    assert any(message.startswith("step ") and message.endswith("/20") for _, message in reporter.reports)
    assert "/sdapi/v1/progress" in server.paths()

    with pytest.raises(GenerationCancelled):
        make(server).generate(GenerationRequest(prompt="x", width=64, height=64, steps=50), Recorder(cancel_at=10))
    # It could not tell our job from another, so it stopped waiting without a global interrupt.
    assert server.interrupts == 0


def test_api_auth(thread_server):
    server = thread_server(A1111Server(api_auth=("blog", "s3cret")))
    good = Automatic1111Provider("a1111", base_url=server.url, api_auth="blog:s3cret")
    assert good.generate(GenerationRequest(prompt="x", width=64, height=64, steps=2), Recorder()).content
    assert server.txt2img[0]["headers"]["authorization"].startswith("Basic ")

    bad = Automatic1111Provider("a1111", base_url=server.url, api_auth="blog:wrong")
    with pytest.raises(PermanentProviderError, match="refused the credentials; set the provider's api_auth"):
        bad.generate(GenerationRequest(prompt="x", width=64, height=64), Recorder())
    assert bad.health().detail == f"Automatic1111 at {server.url} refused the credentials (api_auth)"


def test_health(server, thread_server, monkeypatch):
    health = make(server).health()
    assert (health.ok, health.detail) == (
        True,
        f"Automatic1111 at {server.url}, model v1-5-pruned-emaonly.safetensors [6ce0161689]",
    )

    no_api = thread_server(A1111Server(api=False))
    health = Automatic1111Provider("a1111", base_url=no_api.url).health()
    assert (health.ok, health.detail) == (False, f"{no_api.url} has no /sdapi/v1 API; start the web UI with --api")
    with pytest.raises(
        PermanentProviderError, match="has no Automatic1111 API at /sdapi/v1/txt2img; start the web UI with --api"
    ):
        Automatic1111Provider("a1111", base_url=no_api.url).generate(GenerationRequest(prompt="x"), Recorder())

    monkeypatch.setenv("AUTOMATIC1111_BASE_URL", server.url + "/")
    assert Automatic1111Provider("a1111").base_url() == server.url


def test_models_lists_the_servers_checkpoints(server):
    assert make(server).models() == ["v1-5-pruned-emaonly", "sd_xl_base_1.0"]


# --- the job path ------------------------------------------------------------------------------------


@pytest.fixture
def a1111_alias(settings, server):
    settings.BLOGIMAGES_PROVIDERS = {
        **settings.BLOGIMAGES_PROVIDERS,
        "a1111": {"BACKEND": BACKEND, "OPTIONS": {"base_url": server.url, "poll_interval": 0.02}},
    }
    return providers["a1111"]


def test_end_to_end_through_the_worker_stores_the_image_and_seed(a1111_alias, server, generate):
    [result] = generate(
        GenerationSpec(
            prompt="A lighthouse on a cliff",
            providers=["a1111"],
            overrides={"width": 320, "height": 200, "steps": 12, "sampler": "euler_ancestral"},
        )
    )

    assert result.status == "succeeded", result.error_message
    assert result.provider_used == "a1111"
    [sent] = server.txt2img
    info_seed = result.seed
    assert sent["json"]["seed"] == -1 and sent["json"]["sampler_name"] == "Euler a"
    assert info_seed is not None and result.provider_meta["infotext"].count(f"Seed: {info_seed},") == 1
    assert result.remote_id == sent["json"]["force_task_id"]
    assert (result.width, result.height, result.content_type) == (320, 200, "image/png")
    with default_storage.open(result.image.name) as fh:
        stored = Image.open(io.BytesIO(fh.read()))
        assert stored.getpixel((5, 5)) == (info_seed % 200, 40 + info_seed % 97, 90)


def test_end_to_end_a_server_error_is_retried_by_the_job(a1111_alias, server, generate):
    server.script("server_error")
    [result] = generate(
        GenerationSpec(prompt="A cliff path", providers=["a1111"], overrides={"width": 64, "height": 64})
    )
    assert result.status == "succeeded", result.error_message
    assert result.attempts == 2
    assert len(server.txt2img) == 2


def test_end_to_end_a_validation_error_fails_at_once(a1111_alias, server, generate):
    [result] = generate(GenerationSpec(prompt="A cliff path", providers=["a1111"], overrides={"sampler": "Warp Drive"}))
    assert (result.status, result.error_kind, result.attempts) == ("failed", "permanent", 1)
    assert result.error_message.startswith("Automatic1111 has no sampler 'Warp Drive'")
    assert not result.image
