"""The ComfyUI provider's protocol client against the fake ComfyUI, over real HTTP and websockets."""

from __future__ import annotations

import io
import time

import pytest
import requests
from PIL import Image

from blogimages.exceptions import GenerationCancelled, PermanentProviderError, TransientProviderError
from blogimages.providers.base import GenerationRequest
from blogimages.providers.comfyui import ComfyUIProvider
from tests.servers.comfyui import FakeComfyUI, Recorder, other_graph, wait_until

pytestmark = [pytest.mark.usefixtures("clean_routing")]


def provider_for(*servers, **options) -> ComfyUIProvider:
    options = {"workflow": "sdxl", "poll_interval": 0.2, **options}
    return ComfyUIProvider("comfyui", urls=[s.url if hasattr(s, "url") else s for s in servers], **options)


def request(**kwargs) -> GenerationRequest:
    return GenerationRequest(**{"prompt": "a lighthouse on a cliff at dusk", "width": 256, "height": 192, **kwargs})


def posted(server: FakeComfyUI, path: str) -> list:
    return [(method, p, body) for method, p, body in server.requests if p.split("?")[0] == path]


# --- success ---------------------------------------------------------------------------------------


def test_success_reports_progress_and_returns_the_servers_image(comfy):
    server = comfy(run_time=0.3)
    provider = provider_for(server, poll_interval=10)  # no polling fallback: this run must finish on the socket
    reporter = Recorder()
    image = provider.generate(request(steps=6), reporter)

    graph = server.prompts[image.remote_id]
    assert graph["3"]["inputs"]["seed"] == image.seed  # the seed used is the seed reported
    assert graph["3"]["inputs"]["steps"] == 6
    assert graph["6"]["inputs"]["text"] == "a lighthouse on a cliff at dusk"
    assert reporter.remote == [(image.remote_id, server.url)]
    assert image.remote_server == server.url and image.provider == "comfyui"
    # The bytes are the file the server wrote, fetched once with /view.
    output = image.metadata["output"]
    assert image.content == server.files[("output", output["subfolder"], output["filename"])]
    assert len(posted(server, "/view")) == 1
    assert Image.open(io.BytesIO(image.content)).size == (256, 192)
    # Progress rises through the sampler's steps and never goes backwards.
    percents = [p for p, _ in reporter.updates]
    assert percents == sorted(percents) and 50 < percents[-1] <= 99
    assert any(message == "KSampler step 3/6" for _, message in reporter.updates)
    # Completion came from the socket (executing{node: null}), not from polling.
    assert image.metadata["completion"] == "websocket"
    assert not posted(server, f"/history/{image.remote_id}")


def test_the_websocket_is_opened_before_the_prompt_is_posted(comfy):
    server = comfy()
    image = provider_for(server).generate(request(), Recorder())
    paths = [path for _, path, _ in server.requests]
    ws_at = next(i for i, path in enumerate(paths) if path.startswith("/ws?clientId="))
    prompt_at = paths.index("/prompt")
    assert ws_at < prompt_at
    client_id = paths[ws_at].split("clientId=")[1]
    assert posted(server, "/prompt")[0][2]["client_id"] == client_id
    assert image.remote_id in server.history


def test_unpinned_seeds_change_and_a_pinned_seed_is_kept(comfy):
    server = comfy()
    provider = provider_for(server)
    first, second = provider.generate(request(), Recorder()), provider.generate(request(), Recorder())
    assert first.seed != second.seed
    assert first.content != second.content  # a new seed is a new image, not ComfyUI's cached one
    pinned = provider.generate(request(seed=1234), Recorder())
    again = provider.generate(request(seed=1234), Recorder())
    assert pinned.seed == again.seed == 1234
    assert server.prompts[pinned.remote_id]["3"]["inputs"]["seed"] == 1234
    # The identical graph is served from ComfyUI's cache: no new file, the same image.
    assert again.content == pinned.content
    assert again.metadata["output"] == pinned.metadata["output"]


def test_binary_preview_frames_are_skipped(comfy):
    server = comfy(previews="legacy", run_time=0.2)
    image = provider_for(server).generate(request(steps=4), Recorder())
    assert image.content.startswith(b"\x89PNG")


# --- errors ---------------------------------------------------------------------------------------


def test_a_rejected_prompt_is_one_sentence_naming_node_and_input(comfy):
    server = comfy(models={"checkpoints": ["something_else.safetensors"]})
    with pytest.raises(PermanentProviderError) as caught:
        provider_for(server).generate(request(), Recorder())
    assert str(caught.value) == (
        f"ComfyUI at {server.url} rejected the workflow: node 4 \u201cLoad checkpoint\u201d "
        "(CheckpointLoaderSimple), input ckpt_name: Value not in list "
        "(ckpt_name: 'sd_xl_base_1.0.safetensors' not in ['something_else.safetensors'])."
    )
    assert not server.prompts  # nothing was queued


def test_an_execution_error_names_the_node_type_and_the_exception(comfy):
    server = comfy(models={"checkpoints": ["broken.safetensors"]})
    with pytest.raises(PermanentProviderError) as caught:
        provider_for(server).generate(request(model="sdxl:broken.safetensors"), Recorder())
    assert str(caught.value) == (
        f"ComfyUI at {server.url} failed in node 4 \u201cLoad checkpoint\u201d (CheckpointLoaderSimple): "
        "SafetensorError: Error while deserializing header: header too small."
    )


def test_an_interrupt_by_someone_else_is_a_clear_permanent_error(comfy):
    server = comfy(run_time=2.0)

    def interrupt_everything(reporter, percent, message):
        if "step" in message and not server.interrupts:
            requests.post(f"{server.url}/interrupt", timeout=5)  # what the ComfyUI web page's stop button does

    with pytest.raises(PermanentProviderError, match="someone interrupted it on the server"):
        provider_for(server).generate(request(), Recorder(on_progress=interrupt_everything))


def test_a_5xx_is_transient(comfy):
    server = comfy()
    server.fail_next(1, 500, "/prompt")
    with pytest.raises(TransientProviderError, match=r"answered 500 Internal Server Error to POST /prompt"):
        provider_for(server).generate(request(), Recorder())


def test_an_unreachable_server_is_transient():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    with pytest.raises(TransientProviderError, match="connection refused"):
        provider_for(url).generate(request(), Recorder())


def test_the_wall_clock_limit_stops_the_prompt_on_the_server(comfy):
    server = comfy(run_time=8.0)
    provider = provider_for(server, timeout=1.5)
    # Check the workflow against /object_info first, so the whole limit is spent waiting on
    # the prompt even on a loaded machine.
    provider.check(provider.workflows[provider.options["workflow"]], provider.pool.client(server.url), with_loras=False)
    started = time.monotonic()
    with pytest.raises(TransientProviderError, match=r"did not finish prompt .* within 1.5 s"):
        provider.generate(request(), Recorder())
    assert time.monotonic() - started < 6
    prompt_id = next(iter(server.prompts))
    assert {"prompt_id": prompt_id} in server.interrupts  # no GPU time wasted, and only ours
    entry = wait_until(lambda: server.history.get(prompt_id))
    assert entry["status"]["status_str"] == "error"


def test_a_prompt_removed_by_someone_else_fails_clearly(comfy):
    server = comfy()
    server.post(other_graph(), client_id="someone", extra_data={"fake_run_time": 3})

    def remove_ours(reporter, prompt_id, url):
        requests.post(f"{url}/queue", json={"delete": [prompt_id]}, timeout=5)

    with pytest.raises(PermanentProviderError, match="someone removed it from the queue before it ran"):
        provider_for(server).generate(request(), Recorder(on_remote_id=remove_ours))


# --- cancelling -----------------------------------------------------------------------------------


def test_cancel_while_running_interrupts_only_that_prompt(comfy):
    server = comfy(run_time=3.0)
    provider = provider_for(server)
    others = []

    def queue_someone_elses_work(reporter, percent, message):
        if "step" in message and not others:
            others.append(server.post(other_graph(), client_id="someone", extra_data={"fake_run_time": 0.2}))

    reporter = Recorder(cancel_when=lambda r: bool(others), on_progress=queue_someone_elses_work)
    with pytest.raises(GenerationCancelled):
        provider.generate(request(), reporter)
    ours = reporter.remote[0][0]
    assert server.interrupts == [{"prompt_id": ours}]  # targeted, never a bare /interrupt
    assert posted(server, "/queue")[-1][2] == {"delete": [ours]}
    # The other client's prompt was not touched: it runs to the end.
    entry = wait_until(lambda: server.history.get(others[0]))
    assert entry["status"]["status_str"] == "success"
    assert server.history[ours]["status"]["status_str"] == "error"


def test_cancel_while_pending_deletes_it_from_the_queue(comfy):
    server = comfy()
    running = server.post(other_graph(), client_id="someone", extra_data={"fake_run_time": 2})
    wait_until(lambda: server.queue_ids()[0] == [running])
    reporter = Recorder(cancel_when=lambda r: bool(r.remote))
    with pytest.raises(GenerationCancelled):
        provider_for(server).generate(request(), reporter)
    ours = reporter.remote[0][0]
    assert server.queue_ids() == ([running], [])  # ours is gone, theirs still runs
    assert ours not in server.started
    time.sleep(0.3)
    assert ours not in server.history  # a deleted prompt never runs


def test_provider_cancel_touches_only_the_named_prompt(comfy):
    server = comfy()
    provider = provider_for(server)
    running = server.post(other_graph(), client_id="a", extra_data={"fake_run_time": 3})
    pending_ours = server.post(other_graph(), client_id="b", extra_data={"fake_run_time": 3})
    pending_theirs = server.post(other_graph(), client_id="c", extra_data={"fake_run_time": 0.1})
    wait_until(lambda: server.queue_ids()[0] == [running])

    assert provider.cancel(pending_ours, server.url) is True
    assert server.queue_ids() == ([running], [pending_theirs])

    assert provider.cancel(running, server.url) is True
    entry = wait_until(lambda: server.history.get(running))
    assert entry["status"]["status_str"] == "error" and entry["outputs"] == {}
    assert wait_until(lambda: server.history.get(pending_theirs))["status"]["status_str"] == "success"
    assert server.interrupts == [{"prompt_id": pending_ours}, {"prompt_id": running}]  # never a bare interrupt


# --- when the socket misbehaves -------------------------------------------------------------------


def test_a_stalled_socket_falls_back_to_history(comfy):
    server = comfy(stall_socket=True, run_time=0.3)
    image = provider_for(server, poll_interval=0.2).generate(request(), Recorder())
    assert image.metadata["completion"] == "history"
    assert posted(server, f"/history/{image.remote_id}")
    output = image.metadata["output"]
    assert image.content == server.files[("output", output["subfolder"], output["filename"])]


def test_a_dropped_socket_is_reopened_with_the_same_client_id(comfy):
    server = comfy(drop_socket=True, run_time=1.5)
    image = provider_for(server, poll_interval=0.1).generate(request(), Recorder())
    sockets = [path for _, path, _ in server.requests if path.startswith("/ws?")]
    assert len(sockets) == 2 and sockets[0] == sockets[1]
    assert image.content.startswith(b"\x89PNG")


def test_a_gc_pause_before_completion_is_waited_out(comfy):
    server = comfy(gc_stall=0.3, gc_idle=0.0, run_time=0.1)
    started = time.monotonic()
    image = provider_for(server, poll_interval=0.1).generate(request(), Recorder())
    assert time.monotonic() - started >= 0.3
    assert image.content.startswith(b"\x89PNG")


def test_a_worker_keeps_its_socket_for_the_next_prompt_then_closes_it(comfy):
    server = comfy()
    provider = provider_for(server)
    first = provider.generate(request(), Recorder())
    second = provider.generate(request(), Recorder())
    sockets = [path for _, path, _ in server.requests if path.startswith("/ws?")]
    assert len(sockets) == 1  # one handshake for both prompts
    client_ids = [body["client_id"] for _, path, body in server.requests if path == "/prompt"]
    assert client_ids[0] == client_ids[1] and sockets[0].endswith(client_ids[0])
    assert first.seed != second.seed and second.content.startswith(b"\x89PNG")
    # A spare socket is closed when no prompt takes it, so ComfyUI never queues frames for it for long.
    client = provider.pool.client(server.url)
    client.SPARE_FOR = 0.2
    provider.generate(request(), Recorder())
    wait_until(lambda: not server.call(lambda: list(server.sockets)))
    # A spare socket the server closed meanwhile is replaced, not used.
    client.SPARE_FOR = 30
    provider.generate(request(), Recorder())
    server.call(lambda: [server.loop_close(ws) for ws in list(server.sockets.values())])
    wait_until(lambda: not server.call(lambda: list(server.sockets)))
    # The server has let go; wait until the client has read the close frame too (a close
    # that crosses a new prompt on the wire is the reconnect-and-poll path, tested above).
    wait_until(lambda: client._spare and not any(socket.is_open() for socket in client._spare))
    opened = len([path for _, path, _ in server.requests if path.startswith("/ws?")])
    image = provider.generate(request(), Recorder())
    assert image.metadata["completion"] == "websocket"  # a fresh socket, not a dead one and a fallback
    assert len([path for _, path, _ in server.requests if path.startswith("/ws?")]) == opened + 1
