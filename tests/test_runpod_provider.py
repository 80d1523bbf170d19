"""The RunPod provider against a local server that speaks RunPod's serverless API, over real HTTP."""

from __future__ import annotations

import io
import json

import pytest
import requests
from django.core.exceptions import ImproperlyConfigured
from django.core.files.storage import default_storage
from PIL import Image

from blogimages.exceptions import GenerationCancelled, PermanentProviderError, TransientProviderError
from blogimages.images import strip_metadata
from blogimages.providers import GenerationRequest, Lora, ProgressReporter, providers
from blogimages.providers.runpod import RunPodProvider, find_image
from blogimages.services import GenerationSpec
from tests.conftest import free_port
from tests.servers.runpod import OUTPUT_FORMATS, RunPodServer, render

BACKEND = "blogimages.providers.runpod.RunPodProvider"
ENV = (
    "RUNPOD_API_KEY",
    "RUNPOD_SERVER_100_ID",
    "RUNPOD_SERVER_150_ID",
    "RUNPOD_SERVER_SCHNELL_ID",
    "POLLING_INTERVAL",
    "MAX_POLLING_DURATION",
    "MAX_POLLING_ATTEMPTS",
)


class Recorder(ProgressReporter):
    def __init__(self, cancel_on: str = ""):
        super().__init__()
        self.reports: list[tuple[int, str]] = []
        self.remote: list[tuple[str, str]] = []
        self.cancel_on = cancel_on
        self._cancelled = False

    def progress(self, percent, message=""):
        self.reports.append((int(percent), message))
        if self.cancel_on and self.cancel_on in message:
            self._cancelled = True

    def cancelled(self):
        return self._cancelled

    def remote_id(self, remote_id, server=""):
        self.remote.append((remote_id, server))


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    """The developer's own RunPod settings must not leak into these tests."""
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server(thread_server):
    return thread_server(RunPodServer(api_key="rp-test", endpoints=("ep100", "ep150")))


def make(server, **options) -> RunPodProvider:
    options = {
        "api_key": "rp-test",
        "endpoint_id": "ep100",
        "base_url": server.url,
        "polling_interval": 0.01,
        "workflow": "sdxl",
        **options,
    }
    return RunPodProvider("runpod", **options)


def sent_graph(server, index=0) -> dict:
    return server.runs[index]["json"]["input"]["workflow"]


def by_title(graph: dict, title: str) -> dict:
    [node] = [node for node in graph.values() if node.get("_meta", {}).get("title") == title]
    return node["inputs"]


# --- the client over HTTP ----------------------------------------------------------------------------


def test_success_sends_the_workflow_polls_and_returns_the_image(server):
    reporter = Recorder()
    request = GenerationRequest(
        prompt="A lighthouse at dusk",
        negative_prompt="blurry",
        width=512,
        height=320,
        steps=12,
        guidance_scale=6.0,
        sampler="euler",
        scheduler="normal",
        seed=77,
    )
    image = make(server).generate(request, reporter)

    [run] = server.runs
    assert run["headers"]["authorization"] == "Bearer rp-test"
    graph = sent_graph(server)
    assert by_title(graph, "Positive prompt")["text"] == "A lighthouse at dusk"
    assert by_title(graph, "Negative prompt")["text"] == "blurry"
    assert {k: by_title(graph, "Sampler")[k] for k in ("seed", "steps", "cfg", "sampler_name", "scheduler")} == {
        "seed": 77,
        "steps": 12,
        "cfg": 6.0,
        "sampler_name": "euler",
        "scheduler": "normal",
    }
    assert (by_title(graph, "Empty latent")["width"], by_title(graph, "Empty latent")["height"]) == (512, 320)

    job_id = image.remote_id
    assert reporter.remote == [(job_id, "ep100")]
    assert server.jobs[job_id].status == "COMPLETED"
    assert server.paths("/status/") == [f"/v2/ep100/status/{job_id}"] * 4  # queued, running x2, completed
    assert image.content == render(graph)
    assert (image.seed, image.remote_server) == (77, "ep100")
    assert image.metadata["workflow"] == "sdxl" and image.metadata["worker_id"] == "abc123xyz"
    messages = [message for _, message in reporter.reports]
    assert messages[0].startswith("waiting for a RunPod worker")
    assert "running on worker abc123xyz" in messages
    assert [p for p, _ in reporter.reports] == sorted(p for p, _ in reporter.reports)


def test_an_unpinned_seed_is_chosen_here_and_reported(server):
    image = make(server).generate(GenerationRequest(prompt="x", width=64, height=64), Recorder())
    assert image.seed == by_title(sent_graph(server), "Sampler")["seed"]
    assert 0 <= image.seed < 2**53


@pytest.mark.parametrize("output_format", OUTPUT_FORMATS)
def test_every_worker_output_format_gives_the_image(server, output_format):
    server.plan(output_format=output_format)
    image = make(server).generate(GenerationRequest(prompt="x", width=128, height=64, seed=5), Recorder())
    assert image.content == render(sent_graph(server))
    assert Image.open(io.BytesIO(image.content)).size == (128, 64)


def test_find_image_skips_text_that_is_not_an_image():
    assert find_image({"status": "success", "message": "done"}) is None
    assert find_image({"images": [], "message": "iVBORw0KGgoAAA"}) == ("iVBORw0KGgoAAA", "")
    assert find_image([{"filename": "a.png", "image": "/9j/4AAQ"}]) == ("/9j/4AAQ", "a.png")


def test_failed_is_permanent_with_the_workers_error(server):
    server.plan(outcome="failed")
    with pytest.raises(PermanentProviderError) as caught:
        make(server).generate(GenerationRequest(prompt="x"), Recorder())
    job_id = next(iter(server.jobs))
    assert str(caught.value) == (
        f"RunPod job {job_id} failed: Workflow validation failed: Value not in list: "
        "ckpt_name: 'flux1-dev.safetensors' not in []"
    )

    server.plan(outcome="failed_text")
    with pytest.raises(PermanentProviderError, match="failed: Error queuing workflow: HTTP Error 400: Bad Request$"):
        make(server).generate(GenerationRequest(prompt="x"), Recorder())


def test_timed_out_is_permanent(server):
    server.plan(outcome="timed_out")
    with pytest.raises(PermanentProviderError, match="timed out on the worker .*execution timeout"):
        make(server).generate(GenerationRequest(prompt="x"), Recorder())


def test_the_polling_limit_cancels_the_job(server):
    server.plan(outcome="stuck")
    with pytest.raises(PermanentProviderError) as caught:
        make(server, max_polling_attempts=5).generate(GenerationRequest(prompt="x"), Recorder())
    [job] = server.jobs.values()
    assert str(caught.value) == (
        f"RunPod job {job.id} did not finish within 5 status checks (last status IN_PROGRESS); it was cancelled. "
        "Raise MAX_POLLING_DURATION / MAX_POLLING_ATTEMPTS if images take longer."
    )
    assert len(server.paths("/status/")) == 5
    assert server.paths("/cancel/") == [f"/v2/ep100/cancel/{job.id}"]
    assert job.status == "CANCELLED"


def test_waiting_for_a_worker_past_the_limit_is_transient(server, monkeypatch):
    server.plan(outcome="queued")
    monkeypatch.setenv("MAX_POLLING_DURATION", "0.3")
    monkeypatch.setenv("POLLING_INTERVAL", "0.05")
    provider = make(server, polling_interval=None)
    with pytest.raises(TransientProviderError, match="was still waiting for a worker after 0.3 s; it was cancelled"):
        provider.generate(GenerationRequest(prompt="x"), Recorder())
    assert 3 <= len(server.paths("/status/")) <= 8  # polled every 0.05 s for 0.3 s
    assert [job.status for job in server.jobs.values()] == ["CANCELLED"]


def test_cancel_while_running_cancels_the_remote_job(server):
    server.plan(progress_polls=50)
    with pytest.raises(GenerationCancelled):
        make(server).generate(GenerationRequest(prompt="x"), Recorder(cancel_on="running on worker"))
    [job] = server.jobs.values()
    assert job.status == "CANCELLED"
    assert server.paths("/cancel/") == [f"/v2/ep100/cancel/{job.id}"]


def test_remote_cancel_only_touches_our_endpoint(server):
    def submit(endpoint):
        server.plan(outcome="stuck")
        response = requests.post(
            f"{server.url}/{endpoint}/run",
            json={"input": {"workflow": {}}},
            headers={"Authorization": "Bearer rp-test"},
            timeout=5,
        )
        return response.json()["id"]

    ours, theirs = submit("ep100"), submit("ep150")
    provider = make(server)
    assert provider.cancel(theirs, "ep150") is False  # recorded by another provider (auto asks each): not ours
    assert provider.cancel("a-comfyui-prompt-id", "http://gpu1:8188") is False
    assert server.paths("/cancel/") == []
    assert provider.cancel(ours, "ep100") is True
    assert (server.jobs[ours].status, server.jobs[theirs].status) == ("CANCELLED", "IN_QUEUE")


def test_rate_limit_and_server_errors_on_submit_are_transient(server):
    server.run_error("rate_limit")
    with pytest.raises(TransientProviderError) as caught:
        make(server).generate(GenerationRequest(prompt="x"), Recorder())
    assert caught.value.retry_after == 0.0
    assert str(caught.value) == "RunPod was busy or failing while submitting the job (429): rate limit exceeded"

    server.run_error("server_error")
    with pytest.raises(TransientProviderError, match=r"\(502\): <html><body><h1>502 Bad Gateway"):
        make(server).generate(GenerationRequest(prompt="x"), Recorder())
    assert server.jobs == {}


def test_a_wrong_key_or_endpoint_is_permanent(server):
    with pytest.raises(PermanentProviderError, match="RunPod refused the API key; check RUNPOD_API_KEY"):
        make(server, api_key="wrong").generate(GenerationRequest(prompt="x"), Recorder())
    with pytest.raises(PermanentProviderError, match="RunPod has no endpoint 'nope' .*check the endpoint id"):
        make(server, endpoint_id="nope").generate(GenerationRequest(prompt="x"), Recorder())


def test_an_unreachable_api_is_transient():
    provider = RunPodProvider("runpod", api_key="k", endpoint_id="ep", base_url=f"http://127.0.0.1:{free_port()}/v2")
    with pytest.raises(TransientProviderError, match=r"RunPod is unreachable \(connection refused\)"):
        provider.generate(GenerationRequest(prompt="x"), Recorder())
    assert provider.health().ok is False


def test_environment_configuration_and_a_missing_one(server, monkeypatch):
    provider = RunPodProvider(
        "runpod", base_url=server.url, endpoint_env="RUNPOD_SERVER_150_ID", polling_interval=0.01, workflow="sdxl"
    )
    with pytest.raises(PermanentProviderError) as caught:
        provider.generate(GenerationRequest(prompt="x"), Recorder())
    assert str(caught.value) == (
        "RunPod is not configured: set RUNPOD_API_KEY and RUNPOD_SERVER_150_ID in the environment "
        "(or the provider's api_key / endpoint_id options)."
    )
    assert provider.health().ok is False and server.requests == []

    monkeypatch.setenv("RUNPOD_API_KEY", "rp-test")
    monkeypatch.setenv("RUNPOD_SERVER_150_ID", "ep150")
    image = provider.generate(GenerationRequest(prompt="x", width=64, height=64), Recorder())
    assert image.remote_server == "ep150" and server.runs[0]["path"] == "/v2/ep150/run"


def test_health(server):
    make(server).generate(GenerationRequest(prompt="x", width=64, height=64), Recorder())
    health = make(server).health()
    assert (health.ok, health.detail) == (True, "RunPod endpoint ep100: 1 idle, 0 running workers, 0 jobs queued")
    assert health.info["jobs"]["completed"] == 1
    assert make(server, api_key="wrong").health().detail == "RunPod refused the API key (RUNPOD_API_KEY)"


def test_loras_are_chained_into_the_flux_graph_and_sizes_snapped(server):
    provider = make(server, workflow="flux1_dev")
    request, adjustments = provider.prepare(
        GenerationRequest(
            prompt="A detective",
            width=1000,
            height=600,
            loras=(Lora("ink", 0.8, "style"),),
            extra={"character_loras": ["detective_v2"]},
        )
    )
    assert (request.width, request.height) == (1008, 608)  # 1000/16 = 62.5 rounds half up, as the ComfyUI provider does
    assert adjustments == ["Size 1000\u00d7600 was rounded to 1008\u00d7608: FLUX.1-dev works in steps of 16 pixels."]
    provider.generate(request, Recorder())
    graph = sent_graph(server)
    loras = [node["inputs"] for node in graph.values() if node["class_type"] == "LoraLoader"]
    assert [(lora["lora_name"], lora["strength_model"]) for lora in loras] == [
        ("ink.safetensors", 0.8),
        ("detective_v2.safetensors", 0.85),
    ]


def test_unknown_workflow_and_options(server):
    with pytest.raises(PermanentProviderError, match="has no workflow 'nope'; it has flux1_dev, sd35_large"):
        make(server).generate(GenerationRequest(prompt="x", extra={"workflow": "nope"}), Recorder())
    with pytest.raises(ImproperlyConfigured, match="workflow 'nope' is not defined"):
        make(server, workflow="nope")
    with pytest.raises(ImproperlyConfigured, match="unknown option"):
        make(server, sync_timeout=700)


# --- the job path ------------------------------------------------------------------------------------


@pytest.fixture
def runpod_alias(settings, server):
    settings.BLOGIMAGES_PROVIDERS = {
        **settings.BLOGIMAGES_PROVIDERS,
        "runpod": {
            "BACKEND": BACKEND,
            "OPTIONS": {
                "api_key": "rp-test",
                "endpoint_id": "ep100",
                "base_url": server.url,
                "polling_interval": 0.01,
                "workflow": "sdxl",
            },
        },
    }
    return providers["runpod"]


def test_end_to_end_through_the_worker_stores_the_image(runpod_alias, server, generate):
    server.plan(output_format="message")
    [result] = generate(
        GenerationSpec(
            prompt="A lighthouse on a cliff",
            providers=["runpod"],
            overrides={"width": 320, "height": 192},
        )
    )

    assert result.status == "succeeded", result.error_message
    assert result.provider_used == "runpod"
    graph = sent_graph(server)
    assert result.seed == by_title(graph, "Sampler")["seed"]
    assert by_title(graph, "Save image")["filename_prefix"] == f"blogimages/result_{result.pk}"
    assert (result.remote_id, result.remote_server) == (next(iter(server.jobs)), "ep100")
    assert (result.width, result.height) == (320, 192)
    with default_storage.open(result.image.name) as fh:
        # The graph in its "prompt" chunk is not stored (only blogimages' own provenance mark,
        # which stripping removes again).
        assert strip_metadata(fh.read()) == strip_metadata(render(graph))
    assert json.loads(json.dumps(result.provider_meta))["workflow"] == "sdxl"


def test_end_to_end_a_failed_job_fails_at_once(runpod_alias, server, generate):
    server.plan(outcome="failed")
    [result] = generate(GenerationSpec(prompt="A cliff path", providers=["runpod"]))
    assert (result.status, result.error_kind, result.attempts) == ("failed", "permanent", 1)
    assert "Workflow validation failed" in result.error_message
    assert len(server.runs) == 1 and not result.image
