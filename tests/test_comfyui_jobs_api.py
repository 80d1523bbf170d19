"""Both ComfyUI protocol generations: 0.3.x (``/history`` + ``/queue``) and newer servers' jobs API.

The jobs API (``GET /api/jobs``, ``/api/jobs/<id>``; ComfyUI's ``server.py`` and
``comfy_execution/jobs.py``) tells an unknown prompt (404) from one that has not finished,
which ``/history`` (``{}`` for both) cannot. It is detected per server and used where the
server has it; the fake speaks it with ``jobs_api=True``.
"""

from __future__ import annotations

import uuid

import pytest
import requests

from blogimages import status
from blogimages.exceptions import PermanentProviderError
from blogimages.providers.base import GenerationRequest
from blogimages.providers.comfyui import ComfyUIProvider
from tests.servers.comfyui import NEWER_VERSION, FakeComfyUI, Recorder, other_graph, wait_until

pytestmark = [pytest.mark.usefixtures("clean_routing")]


def provider_for(*servers: FakeComfyUI, **options) -> ComfyUIProvider:
    options = {"workflow": "sdxl", "poll_interval": 0.2, **options}
    return ComfyUIProvider("comfyui", urls=[server.url for server in servers], **options)


def request() -> GenerationRequest:
    return GenerationRequest(prompt="a lighthouse on a cliff", width=128, height=128, steps=3)


def gets(server: FakeComfyUI, prefix: str) -> list[str]:
    return [path for method, path, _ in server.requests if method == "GET" and path.startswith(prefix)]


# --- completing a job -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "jobs_api,version,protocol", [(False, "0.3.64", "/history and /queue"), (True, NEWER_VERSION, "jobs API")]
)
def test_both_protocol_generations_complete_a_job(comfy, jobs_api, version, protocol):
    # A stalled socket: completion must come from polling, through the protocol the server speaks.
    server = comfy(stall_socket=True, run_time=0.4, jobs_api=jobs_api)
    image = provider_for(server).generate(request(), Recorder())
    output = image.metadata["output"]
    assert image.content == server.files[("output", output["subfolder"], output["filename"])]
    assert image.metadata["protocol"] == protocol and image.metadata["comfyui_version"] == version
    if jobs_api:
        assert image.metadata["completion"] == "jobs"
        assert gets(server, f"/api/jobs/{image.remote_id}")
        assert not gets(server, "/history") and not gets(server, "/queue")
    else:
        assert image.metadata["completion"] == "history"
        assert gets(server, f"/history/{image.remote_id}")
        assert not gets(server, "/api/jobs/")  # only the probe, which 0.3.64 answers with 404


def test_the_protocol_is_detected_once_per_server_and_each_server_on_its_own(comfy):
    old, new = comfy(jobs_api=False), comfy(jobs_api=True)
    provider = provider_for(old, new)
    for server in (old, new, old, new):
        client = provider.pool.client(server.url)
        assert client.server_info().jobs_api is server.jobs_api
    for server in (old, new):
        assert len(gets(server, "/api/jobs?limit=1")) == 1  # cached per server URL
        assert len(gets(server, "/system_stats")) == 1
    assert provider.pool.client(new.url).server_info().version == NEWER_VERSION


def test_a_queued_prompt_reports_its_place_through_the_jobs_api(comfy):
    server = comfy(jobs_api=True)
    first = server.post(other_graph(), client_id="a", extra_data={"fake_run_time": 1.5})
    wait_until(lambda: server.queue_ids()[0] == [first])
    server.post(other_graph(), client_id="b", extra_data={"fake_run_time": 0.1})
    reporter = Recorder()
    image = provider_for(server, poll_interval=0.1).generate(request(), reporter)
    assert image.remote_id in server.history
    assert (0, "queued on ComfyUI (2 ahead)") in reporter.updates
    assert not gets(server, "/queue") and not gets(server, "/history")  # from /api/jobs alone


# --- unknown versus not finished ------------------------------------------------------------------------


def test_the_jobs_api_tells_an_unknown_prompt_from_one_that_has_not_finished(comfy):
    server = comfy(jobs_api=True)
    client = provider_for(server).pool.client(server.url)
    running = server.post(other_graph(), client_id="a", extra_data={"fake_run_time": 3})
    wait_until(lambda: server.queue_ids()[0] == [running])
    pending = server.post(other_graph(), client_id="b", extra_data={"fake_run_time": 0.1})
    # /history answers {} for all three: it cannot tell them apart.
    for prompt_id in (running, pending, str(uuid.uuid4())):
        assert requests.get(f"{server.url}/history/{prompt_id}", timeout=5).json() == {}
    assert client.prompt_state(running).state == "running"
    assert (client.prompt_state(pending).state, client.prompt_state(pending).ahead) == ("pending", 1)
    assert client.prompt_state(str(uuid.uuid4())).state == "unknown"
    before = len(server.requests)
    client.prompt_state(str(uuid.uuid4()))
    assert [path.split("/")[2] for _, path, _ in server.requests[before:]] == ["jobs"]  # one call, no /history


def test_a_prompt_removed_by_someone_else_is_told_by_the_jobs_api(comfy):
    server = comfy(jobs_api=True)
    server.post(other_graph(), client_id="someone", extra_data={"fake_run_time": 3})

    def remove_ours(reporter, prompt_id, url):
        requests.post(f"{url}/queue", json={"delete": [prompt_id]}, timeout=5)

    with pytest.raises(PermanentProviderError, match="someone removed it from the queue before it ran"):
        provider_for(server).generate(request(), Recorder(on_remote_id=remove_ours))
    assert not gets(server, "/history")


def test_the_fake_answers_the_jobs_api_like_comfyui(comfy):
    old, new = comfy(), comfy(jobs_api=True)
    assert requests.get(f"{old.url}/api/jobs", timeout=5).status_code == 404  # 0.3.64 has none
    assert requests.get(f"{new.url}/jobs", timeout=5).status_code == 404  # only under /api
    done = provider_for(new).generate(request(), Recorder()).remote_id
    listing = requests.get(f"{new.url}/api/jobs", params={"status": "completed"}, timeout=5).json()
    assert listing["pagination"] == {"offset": 0, "limit": None, "total": 1, "has_more": False}
    (summary,) = listing["jobs"]
    assert summary["id"] == done and summary["status"] == "completed" and summary["outputs_count"] == 1
    assert "outputs" not in summary  # only the single-job answer carries them
    job = requests.get(f"{new.url}/api/jobs/{done}", timeout=5).json()
    assert job["outputs"] == new.history[done]["outputs"] and job["execution_status"]["status_str"] == "success"
    assert job["execution_end_time"] >= job["execution_start_time"] > 0
    bad = requests.get(f"{new.url}/api/jobs", params={"status": "done"}, timeout=5)
    assert bad.status_code == 400 and "Invalid status value(s): done" in bad.json()["error"]
    missing = requests.get(f"{new.url}/api/jobs/{uuid.uuid4()}", timeout=5)
    assert (missing.status_code, missing.json()) == (404, {"error": "Job not found"})


# --- the version on the status page ---------------------------------------------------------------------


@pytest.mark.django_db
def test_each_servers_version_and_protocol_are_reported(comfy, settings, admin_user, client, rq_queue):
    old, new = comfy(), comfy(jobs_api=True)
    settings.BLOGIMAGES_PROVIDERS = {
        **settings.BLOGIMAGES_PROVIDERS,
        "comfyui": {
            "BACKEND": "blogimages.providers.comfyui.ComfyUIProvider",
            "OPTIONS": {"urls": [old.url, new.url], "workflow": "sdxl"},
        },
    }
    (row,) = status.provider_health(["comfyui"])
    assert row.ok and row.detail == (
        f"2 of 2 ComfyUI servers reachable; {old.url} runs ComfyUI 0.3.64 (/history and /queue), "
        f"{new.url} runs ComfyUI {NEWER_VERSION} (jobs API)."
    )
    servers = {server["url"]: server for server in row.info["servers"]}
    assert (servers[old.url]["version"], servers[old.url]["jobs_api"]) == ("0.3.64", False)
    assert (servers[new.url]["version"], servers[new.url]["jobs_api"]) == (NEWER_VERSION, True)
    # The JSON status endpoint carries the same.
    client.force_login(admin_user)
    answer = client.get("/api/v1/comfyui/status").json()["providers"]["comfyui"]["info"]["servers"]
    assert [(server["version"], server["jobs_api"]) for server in answer] == [("0.3.64", False), (NEWER_VERSION, True)]
    # So does the status page: a row per server, with its version and a "jobs api" yes/no column.
    html = client.get("/admin/blogimages/imagegenerationresult/status/").content.decode()
    row = html[html.index('data-alias="comfyui"') :]
    assert '<th scope="col">jobs api</th>' in row and NEWER_VERSION in row and "0.3.64" in row
    assert f"{new.url} runs ComfyUI {NEWER_VERSION} (jobs API)" in row
