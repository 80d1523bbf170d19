"""The wall-clock limit: the prompt is stopped, the stop is confirmed, and a prompt that may still run is not retried.

Against the fake ComfyUI over real HTTP and websockets, in both protocol generations:
0.3.64 (``/history`` + ``/queue``) and a newer server with the jobs API (``/api/jobs/<id>``).
"""

from __future__ import annotations

import pytest

from blogimages import services
from blogimages.comfyui.client import PromptStillRunning
from blogimages.exceptions import PermanentProviderError, TransientProviderError
from blogimages.models import ErrorKind, ResultStatus
from blogimages.providers.base import GenerationRequest
from blogimages.providers.comfyui import ComfyUIProvider
from tests.servers.comfyui import FakeComfyUI, Recorder, other_graph, wait_until

pytestmark = [pytest.mark.usefixtures("clean_routing")]


def provider_for(server: FakeComfyUI, **options) -> ComfyUIProvider:
    provider = ComfyUIProvider(
        "comfyui", urls=[server.url], **{"workflow": "sdxl", "poll_interval": 0.2, "timeout": 1.5, **options}
    )
    # Check the workflow against /object_info first, so the whole limit is spent on the prompt.
    provider.check(provider.workflows["sdxl"], provider.pool.client(server.url), with_loras=False)
    return provider


def request() -> GenerationRequest:
    # Four sampler steps of about 1.8 s each: an interrupt takes effect only at the next step,
    # so the prompt is still listed as running for a while after it was interrupted.
    return GenerationRequest(prompt="a lighthouse in a storm", width=128, height=128, steps=4)


def calls(server: FakeComfyUI, method: str, path: str) -> list:
    return [body for m, p, body in server.requests if m == method and p.split("?")[0] == path]


PROTOCOLS = [pytest.param(False, id="comfyui-0.3.64"), pytest.param(True, id="jobs-api")]


@pytest.mark.parametrize("jobs_api", PROTOCOLS)
def test_a_timeout_stops_the_running_prompt_and_confirms_it_is_gone(comfy, jobs_api):
    server = comfy(run_time=8.0, jobs_api=jobs_api)
    with pytest.raises(TransientProviderError) as caught:
        provider_for(server).generate(request(), Recorder())
    (prompt_id,) = server.prompts
    assert str(caught.value) == (
        f"ComfyUI at {server.url} did not finish prompt {prompt_id} within 1.5 s; "
        f"it was stopped and confirmed gone from {server.url}."
    )
    # True when the error is raised, not some time later: nothing is pending or running.
    assert server.queue_ids() == ([], [])
    assert server.interrupts == [{"prompt_id": prompt_id}]  # targeted, never a bare /interrupt
    status = server.history[prompt_id]["status"]
    assert status["status_str"] == "error" and status["messages"][-1][0] == "execution_interrupted"
    # The stop was confirmed through the protocol the server speaks.
    asked = f"/api/jobs/{prompt_id}" if jobs_api else "/queue"
    interrupted_at = next(i for i, (m, p, _) in enumerate(server.requests) if p == "/interrupt")
    assert any(m == "GET" and p == asked for m, p, _ in server.requests[interrupted_at:])


@pytest.mark.parametrize("jobs_api", PROTOCOLS)
def test_a_timeout_while_queued_deletes_the_prompt_and_leaves_other_work_alone(comfy, jobs_api):
    server = comfy(jobs_api=jobs_api)
    theirs = server.post(other_graph(), client_id="someone", extra_data={"fake_run_time": 6})
    wait_until(lambda: server.queue_ids()[0] == [theirs])
    with pytest.raises(TransientProviderError, match="it was stopped and confirmed gone from"):
        provider_for(server, timeout=1.0, queue_timeout=1.0).generate(request(), Recorder())
    ours = next(prompt_id for prompt_id in server.prompts if prompt_id != theirs)
    assert server.queue_ids() == ([theirs], [])  # ours is gone, theirs still runs
    assert ours not in server.started and ours not in server.history
    assert calls(server, "POST", "/queue") == [{"delete": [ours]}]


@pytest.mark.parametrize("jobs_api", PROTOCOLS)
def test_an_ignored_interrupt_is_reported_truthfully_and_not_retried(comfy, jobs_api):
    server = comfy(run_time=30.0, jobs_api=jobs_api, ignore_interrupt=True)
    provider = provider_for(server, stop_timeout=1.0)
    with pytest.raises(PromptStillRunning) as caught:
        provider.generate(request(), Recorder())
    (prompt_id,) = server.prompts
    assert isinstance(caught.value, PermanentProviderError)  # a retry would run a second prompt beside it
    assert (caught.value.server, caught.value.prompt_id) == (server.url, prompt_id)
    assert str(caught.value) == (
        f"ComfyUI at {server.url} did not finish prompt {prompt_id} within 1.5 s; blogimages asked {server.url} "
        "to stop it but it was still running after 1 s. It is not retried, so that no second prompt runs next "
        "to it: check the server's queue, then generate the image again."
    )
    assert server.queue_ids() == ([prompt_id], [])  # what the message says: it still runs
    assert server.interrupts == [{"prompt_id": prompt_id}]


@pytest.mark.django_db
def test_a_job_whose_prompt_may_still_run_fails_without_posting_a_second_prompt(
    comfy, settings, run_worker, django_capture_on_commit_callbacks
):
    server = comfy(run_time=30.0, ignore_interrupt=True)
    settings.BLOGIMAGES_PROVIDERS = {
        **settings.BLOGIMAGES_PROVIDERS,
        "comfyui": {
            "BACKEND": "blogimages.providers.comfyui.ComfyUIProvider",
            "OPTIONS": {"urls": [server.url], "workflow": "sdxl", "timeout": 2.0, "stop_timeout": 1.0},
        },
    }
    spec = services.GenerationSpec(
        prompt="A lighthouse in a storm", providers=["comfyui"], overrides={"width": 128, "height": 128, "steps": 4}
    )
    with django_capture_on_commit_callbacks(execute=True):
        (result,) = services.request_generation(spec)
    run_worker()
    result.refresh_from_db()
    assert result.status == ResultStatus.FAILED and result.error_kind == ErrorKind.PERMANENT
    assert result.attempts == 1
    assert "was still running after 1 s. It is not retried" in result.error_message
    assert len(calls(server, "POST", "/prompt")) == 1  # no second prompt beside the one that still runs
    assert server.queue_ids() == ([result.remote_id], [])


def test_a_prompt_that_finishes_while_being_stopped_is_used(comfy):
    # The prompt does not stop (a node that never checks for interrupts) but finishes while the
    # stop is being confirmed: its image exists, so the job gets it instead of running it again.
    server = comfy(run_time=lambda graph: 1.0, ignore_interrupt=True)
    provider = provider_for(server, timeout=0.6, stop_timeout=5.0)
    image = provider.generate(request(), Recorder())
    assert server.interrupts == [{"prompt_id": image.remote_id}]
    assert image.content == server.files[("output", *_where(image.metadata["output"]))]
    assert len(calls(server, "POST", "/prompt")) == 1


def _where(output: dict) -> tuple[str, str]:
    return output["subfolder"], output["filename"]
