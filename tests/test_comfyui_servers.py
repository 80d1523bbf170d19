"""Several ComfyUI servers: reserved slots, pipelined prompts, model affinity, failing servers skipped, health."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from blogimages.exceptions import (
    GenerationCancelled,
    PermanentProviderError,
    ProviderUnavailable,
    TransientProviderError,
)
from blogimages.providers.base import GenerationRequest
from blogimages.providers.comfyui import ComfyUIProvider
from tests.servers.comfyui import FakeComfyUI, Recorder, other_graph, wait_until

pytestmark = [pytest.mark.usefixtures("clean_routing")]


def dead_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def provider_for(urls, **options) -> ComfyUIProvider:
    return ComfyUIProvider("comfyui", urls=urls, **{"workflow": "sdxl", "poll_interval": 0.2, **options})


def request(**fields) -> GenerationRequest:
    return GenerationRequest(prompt="a harbour in fog", width=128, height=128, **fields)


def reservations(provider) -> dict[str, int]:
    router = provider.pool.router
    return {url: view.reserved for url, view in router.store.snapshot(router.urls, time.time()).items()}


def busy(server: FakeComfyUI, prompts: int, seconds: float = 3.0) -> list[str]:
    ids = [server.post(other_graph(), client_id="other", extra_data={"fake_run_time": seconds}) for _ in range(prompts)]
    wait_until(lambda: server.queue_ids()[0])
    return ids


def run_all(provider, requests, reporters=None, *, after_first=None) -> list:
    """Run ``provider.generate`` for each request at once, in threads (as several workers do).

    ``after_first``: a condition to wait for after starting the first (that it runs).
    """
    results: list = [None] * len(requests)
    reporters = reporters or [Recorder() for _ in requests]

    def work(index: int) -> None:
        try:
            results[index] = provider.generate(requests[index], reporters[index])
        except Exception as exc:  # noqa: BLE001 - returned to the test
            results[index] = exc

    threads = [threading.Thread(target=work, args=(index,)) for index in range(len(requests))]
    for index, thread in enumerate(threads):
        thread.start()
        if index == 0 and after_first is not None:
            wait_until(after_first)
        time.sleep(0.05)
    for thread in threads:
        thread.join(30)
    return results


def test_concurrent_jobs_fill_idle_servers_first_and_never_exceed_two_per_server(comfy):
    servers = [comfy(run_time=1.0) for _ in range(3)]
    provider = provider_for([server.url for server in servers])
    images = run_all(provider, [request() for _ in range(6)])
    assert all(not isinstance(image, Exception) for image in images), images
    per_server = {server.url: len(server.prompts) for server in servers}
    assert per_server == {server.url: 2 for server in servers}
    # The first three went one to each server; the next three waited in the servers' queues.
    assert {image.remote_server for image in images[:3]} == {server.url for server in servers}


def test_the_next_prompt_waits_in_the_servers_queue_while_the_first_runs(comfy):
    server = comfy(run_time=1.0)
    provider = provider_for([server.url], timeout=1.6)
    reporters = [Recorder(), Recorder()]
    first, second = run_all(provider, [request(), request()], reporters, after_first=lambda: server.started)
    times = [server.timeline[image.remote_id] for image in (first, second)]
    assert times[1]["posted"] < times[0]["finished"] <= times[1]["started"]  # posted while the first ran
    # It waited about a second and then ran a second, beyond the 1.6 s limit: the limit counts from its start.
    assert (0, "queued on ComfyUI (1 ahead)") in reporters[1].updates


def test_a_prompt_waiting_behind_another_can_be_cancelled(comfy):
    server = comfy(run_time=1.5)
    provider = provider_for([server.url])
    second = Recorder(cancel_when=lambda r: bool(r.remote) and len(server.queue_ids()[1]) == 1)
    first_image, cancelled = run_all(
        provider, [request(), request()], [Recorder(), second], after_first=lambda: server.started
    )
    assert isinstance(cancelled, GenerationCancelled)
    ((waiting_id, _),) = second.remote
    assert waiting_id not in server.started and waiting_id not in server.history  # removed before it ran
    assert ("POST", "/queue", {"delete": [waiting_id]}) in server.requests
    assert first_image.remote_server == server.url  # the running one was left alone
    assert reservations(provider) == {server.url: 0}


def test_a_prompt_that_waits_too_long_in_the_queue_is_removed(comfy):
    server = comfy(run_time=2.0)
    provider = provider_for([server.url], queue_timeout=0.8)
    first, late = run_all(provider, [request(), request()], after_first=lambda: server.started)
    assert not isinstance(first, Exception)
    assert isinstance(late, TransientProviderError)
    assert "did not start prompt" in str(late) and "within 0.8 s; it was stopped and confirmed gone" in str(late)
    assert len(server.started) == 1


def test_a_finished_prompt_teaches_its_server_the_run_time_per_unit_of_cost(comfy):
    from blogimages.providers.comfyui import job_cost

    server = comfy(run_time=0.5)
    provider = provider_for([server.url])
    job = request()
    image = provider.generate(job, Recorder())
    view = provider.pool.router.store.snapshot([server.url], time.time())[server.url]
    ran = server.timeline[image.remote_id]["finished"] - server.timeline[image.remote_id]["started"]
    assert view.pace * job_cost(job) / 1e6 == pytest.approx(ran, abs=0.15)  # the run time the job saw
    assert view.reserved == 0 and abs(view.free_at / 1000 - time.time()) < 5  # nothing queued: free now


def test_jobs_of_two_models_stay_on_servers_that_have_them_loaded(comfy):
    a, b = comfy(model_switch_cost=0.3), comfy(model_switch_cost=0.3)
    provider = provider_for([a.url, b.url])
    models = ["sd_xl_base_1.0.safetensors", "sd3.5_large.safetensors"] * 4
    for model in models:  # one at a time: both servers idle every time
        provider.generate(request(model=f"sdxl:{model}"), Recorder())
    loads = [load["model"] for server in (a, b) for load in server.loads]
    assert sorted(loads) == sorted(models[:2])  # each server loaded one checkpoint, once


def test_with_more_workers_than_spare_slots_a_job_waits_for_its_models_server_rather_than_switch_one(comfy):
    a, b = comfy(run_time=0.6, model_switch_cost=0.3), comfy(run_time=0.6, model_switch_cost=0.3)
    provider = provider_for([a.url, b.url], slots=2)  # three prompts in flight saturate it: more than 2 x (2 - 1)
    provider.pool.router.order = {a.url: 0, b.url: 1}
    x, y = "sdxl:sd_xl_base_1.0.safetensors", "sdxl:sd3.5_large.safetensors"
    reporters = [Recorder() for _ in range(4)]
    images = run_all(provider, [request(model=model) for model in (x, y, x, x)], reporters)
    assert all(not isinstance(image, Exception) for image in images), images
    # The last x job found the x server full and a free slot on the y server: it waited for the x server.
    assert [image.remote_server for image in images] == [a.url, b.url, a.url, a.url]
    assert (0, "waiting for a free ComfyUI server") in reporters[3].updates
    assert [load["model"] for load in b.loads] == ["sd3.5_large.safetensors"]  # loaded once: never switched
    assert reservations(provider) == {a.url: 0, b.url: 0}


def test_affinity_falls_back_when_the_server_with_the_model_is_down(comfy):
    a, b = comfy(), comfy()
    provider = provider_for([a.url, b.url], fail_threshold=1)
    first = provider.generate(request(model="sdxl:sd_xl_base_1.0.safetensors"), Recorder())
    warm, other = (a, b) if first.remote_server == a.url else (b, a)
    provider.generate(request(model="sdxl:sd3.5_large.safetensors"), Recorder())  # the other server's model
    warm.stop()
    image = provider.generate(request(model="sdxl:sd_xl_base_1.0.safetensors"), Recorder())
    assert image.remote_server == other.url
    assert provider.pool.skipped_for(warm.url) > 50


def test_a_dead_server_is_passed_over_and_then_skipped(comfy):
    live = comfy()
    dead = dead_url()
    provider = provider_for([dead, live.url], fail_threshold=2, skip_for=60)
    provider.pool.router.order = {dead: 0, live.url: 1}  # the dead one first on ties
    for model in ("sd_xl_base_1.0.safetensors", "sd3.5_large.safetensors"):
        # A model neither has: both are idle, the dead one comes first, fails, and the job moves on.
        assert provider.generate(request(model=f"sdxl:{model}"), Recorder()).remote_server == live.url
    assert provider.pool.skipped_for(dead) > 50
    health = provider.health()
    assert health.ok and health.detail.startswith("1 of 2 ComfyUI servers reachable; Cannot reach ComfyUI at")
    entry = next(server for server in health.info["servers"] if server["url"] == dead)
    assert entry["ok"] is False and "connection refused" in entry["error"] and entry["skipped_for"] > 50
    # Skipped: the next job does not even try it, and a new provider (another worker) skips it too.
    other = provider_for([dead, live.url], fail_threshold=2, skip_for=60)
    other.pool.router.order = {dead: 0, live.url: 1}
    assert other.generate(request(model="sdxl:sd3.5_large_turbo.safetensors"), Recorder()).remote_server == live.url
    assert other.pool.router.calls == 2  # a reservation (the store chooses: no state read), a release: no failure


def test_choosing_a_server_asks_no_server_for_its_queue(comfy):
    servers = [comfy() for _ in range(3)]
    provider = provider_for([server.url for server in servers])
    for _ in range(4):
        provider.generate(request(), Recorder())
    assert not [path for server in servers for _, path, _ in server.requests if path == "/queue"]


def test_a_job_that_fails_releases_its_slot(comfy):
    server = comfy()
    provider = provider_for([server.url])
    with pytest.raises(PermanentProviderError):
        provider.generate(request(model="sdxl:missing.safetensors"), Recorder())
    assert reservations(provider) == {server.url: 0}


def test_a_5xx_on_submit_moves_the_job_to_the_next_server(comfy):
    first, second = comfy(), comfy()
    first.fail_next(1, 500, "/prompt")
    provider = provider_for([first.url, second.url])
    provider.pool.router.order = {first.url: 0, second.url: 1}
    image = provider.generate(request(), Recorder())
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
