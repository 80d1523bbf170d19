"""Several ComfyUI servers: shortest queue first, failing servers skipped, health per server."""

from __future__ import annotations

import socket

import pytest

from blogimages.exceptions import ProviderUnavailable
from blogimages.providers.base import GenerationRequest
from blogimages.providers.comfyui import ComfyUIProvider
from tests.servers.comfyui import FakeComfyUI, Recorder, other_graph, wait_until


@pytest.fixture(autouse=True)
def clean_cache():
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def comfy():
    servers = []

    def start(**kwargs) -> FakeComfyUI:
        server = FakeComfyUI(**kwargs).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def dead_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def provider_for(urls, **options) -> ComfyUIProvider:
    return ComfyUIProvider("comfyui", urls=urls, **{"workflow": "sdxl", "poll_interval": 0.2, **options})


def request() -> GenerationRequest:
    return GenerationRequest(prompt="a harbour in fog", width=128, height=128)


def busy(server: FakeComfyUI, prompts: int, seconds: float = 3.0) -> list[str]:
    ids = [server.post(other_graph(), client_id="other", extra_data={"fake_run_time": seconds}) for _ in range(prompts)]
    wait_until(lambda: server.queue_ids()[0])
    return ids


def test_a_job_goes_to_the_server_with_the_shortest_queue(comfy):
    a, b, c = comfy(), comfy(), comfy()
    busy(a, 2)
    busy(c, 1)
    provider = provider_for([a.url, b.url, c.url])
    image = provider.generate(request(), Recorder())
    assert image.remote_server == b.url
    assert image.remote_id in b.prompts and not set(a.prompts) & {image.remote_id}

    busy(b, 3, seconds=2)  # now c (one queued) is the shortest
    image = provider.generate(request(), Recorder())
    assert image.remote_server == c.url
    assert image.metadata["queue_ahead"] == 1


def test_ties_go_back_to_the_server_this_process_used_last(comfy):
    a, b = comfy(), comfy()
    provider = provider_for([a.url, b.url])
    first = provider.generate(request(), Recorder())
    assert {provider.generate(request(), Recorder()).remote_server for _ in range(3)} == {first.remote_server}


def test_a_dead_server_is_passed_over_and_then_skipped(comfy):
    live = comfy()
    dead = dead_url()
    provider = provider_for([dead, live.url], fail_threshold=2, skip_for=60)
    for _ in range(2):
        busy(live, 1, seconds=0.2)  # not idle: every server is asked
        assert provider.generate(request(), Recorder()).remote_server == live.url
    assert provider.pool.skipped_for(dead) > 50
    health = provider.health()
    assert health.ok and health.detail.startswith("1 of 2 ComfyUI servers reachable; Cannot reach ComfyUI at")
    entry = next(server for server in health.info["servers"] if server["url"] == dead)
    assert entry["ok"] is False and "connection refused" in entry["error"] and entry["skipped_for"] > 50


def test_a_server_that_keeps_failing_is_not_even_asked_for_a_while(comfy):
    good, flaky = comfy(), comfy()
    flaky.fail_next(50, 503, "/queue")
    provider = provider_for([flaky.url, good.url], fail_threshold=2, skip_for=60)
    for _ in range(4):
        busy(good, 1, seconds=0.1)  # not idle: every server that is not skipped is asked
        assert provider.generate(request(), Recorder()).remote_server == good.url
    asked = [path for _, path, _ in flaky.requests if path == "/queue"]
    assert len(asked) == 2  # after two failures in a row it is skipped, not probed
    # The state is shared through Django's cache: a new provider instance (another worker) skips it too.
    other = provider_for([flaky.url, good.url], fail_threshold=2, skip_for=60)
    busy(good, 1, seconds=0.1)
    other.generate(request(), Recorder())
    assert len([path for _, path, _ in flaky.requests if path == "/queue"]) == 2


def test_an_idle_preferred_server_is_taken_without_asking_the_others(comfy):
    a, b = comfy(), comfy()
    provider = provider_for([a.url, b.url])
    first = provider.generate(request(), Recorder()).remote_server
    other = b if first == a.url else a
    asked = len([path for _, path, _ in other.requests if path == "/queue"])
    for _ in range(3):
        assert provider.generate(request(), Recorder()).remote_server == first
    assert len([path for _, path, _ in other.requests if path == "/queue"]) == asked


def test_a_5xx_on_submit_moves_the_job_to_the_next_server(comfy):
    first, second = comfy(), comfy()
    busy(second, 1, seconds=0.3)  # so that `first` ranks first
    first.fail_next(1, 500, "/prompt")
    image = provider_for([first.url, second.url]).generate(request(), Recorder())
    assert image.remote_server == second.url
    assert not first.prompts


def test_no_server_available_is_one_sentence_listing_why():
    dead_a, dead_b = dead_url(), dead_url()
    with pytest.raises(ProviderUnavailable) as caught:
        provider_for([dead_a, dead_b]).generate(request(), Recorder())
    message = str(caught.value)
    assert message.startswith("No ComfyUI server is available: Cannot reach ComfyUI at")
    assert dead_a in message and dead_b in message and message.count("connection refused") == 2


def test_health_reports_version_gpu_memory_and_queue(comfy):
    gpu = {
        "name": "cuda:0 NVIDIA L4 : cudaMallocAsync",
        "type": "cuda",
        "index": 0,
        "vram_total": 23580639232,
        "vram_free": 20000000000,
        "torch_vram_total": 0,
        "torch_vram_free": 0,
    }
    server = comfy(system_devices=[gpu])
    busy(server, 2)
    health = provider_for([server.url]).health()
    assert health.ok and health.detail == (
        f"1 of 1 ComfyUI server reachable; {server.url} runs ComfyUI 0.3.64 (/history and /queue)."
    )
    (entry,) = health.info["servers"]
    assert entry == {
        "url": server.url,
        "ok": True,
        "version": "0.3.64",
        "jobs_api": False,  # 0.3.64 has no /api/jobs: completion is read from /history and /queue
        "device": gpu["name"],
        "vram_free": 20000000000,
        "vram_total": 23580639232,
        "queue_running": 1,
        "queue_pending": 1,
        "skipped_for": 0,
    }


def test_urls_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("COMFYUI_URLS", "http://gpu1:8188, http://gpu2:8188/")
    monkeypatch.setenv("COMFYUI_API_URL", "http://ignored:8188")
    assert ComfyUIProvider("c").urls == ["http://gpu1:8188", "http://gpu2:8188"]
    monkeypatch.delenv("COMFYUI_URLS")
    assert ComfyUIProvider("c").urls == ["http://ignored:8188"]
    monkeypatch.delenv("COMFYUI_API_URL")
    assert ComfyUIProvider("c").urls == ["http://127.0.0.1:8188"]
    assert ComfyUIProvider("c", urls="http://a:1,http://b:2").urls == ["http://a:1", "http://b:2"]
