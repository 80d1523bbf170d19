"""The fake ComfyUI against the recordings it imitates (``../shared/comfyui-protocol``).

If the fake drifts from the real server, the client tests prove nothing; these replay
recorded requests and compare the answers. Skipped where the recordings are not present.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest
import requests
from websockets.sync.client import connect

from tests.servers.comfyui import FakeComfyUI, other_graph, wait_until

RECORDINGS = Path(
    os.environ.get("COMFYUI_PROTOCOL_DIR", Path(__file__).resolve().parents[2] / "shared" / "comfyui-protocol")
)
pytestmark = pytest.mark.skipif(not RECORDINGS.is_dir(), reason=f"no ComfyUI recordings at {RECORDINGS}")


def transcript(name: str) -> dict:
    return json.loads((RECORDINGS / name).read_text())


def events_until_done(ws, prompt_id: str) -> list[dict]:
    seen = []
    while True:
        message = json.loads(ws.recv(timeout=10))
        seen.append(message)
        if message["type"] == "executing" and message["data"] == {"node": None, "prompt_id": prompt_id}:
            return seen


def sorted_errors(body):
    if isinstance(body, dict):
        for entry in (body.get("node_errors") or {}).values():
            entry["errors"].sort(key=json.dumps)
    return body


def test_validation_answers_match_the_recording():
    recording = transcript("03_validation_errors.json")
    with FakeComfyUI(models={"checkpoints": []}) as server:
        compared = 0
        for event in recording["events"]:
            if event["kind"] != "http" or event["request"]["method"] != "POST" or event["response"]["status"] == 200:
                continue
            sent, expected = event["request"], event["response"]
            if "json" in sent:
                answer = requests.post(f"{server.url}/prompt", json=sent["json"], timeout=5)
            else:
                answer = requests.post(
                    f"{server.url}/prompt", data=sent["raw_body"], headers=sent["headers"], timeout=5
                )
            assert answer.status_code == expected["status"], event["label"]
            if "json" in expected:
                # Within one node ComfyUI lists errors in set order, which varies between runs.
                assert sorted_errors(answer.json()) == sorted_errors(expected["json"]), event["label"]
            else:
                assert answer.text == expected["text"] and answer.headers["Content-Type"].startswith("text/plain")
                compared += 1
        assert compared == 2  # both 500 text/plain answers (malformed and empty bodies)


def test_a_successful_prompt_sends_the_recorded_messages_in_order():
    recording = transcript("02_success_transcript.json")
    frames = [e["json"] for e in recording["events"] if e["kind"] == "ws_text"]
    first_done = next(i for i, f in enumerate(frames) if f["type"] == "executing" and f["data"]["node"] is None)
    with FakeComfyUI() as server:
        client_id = uuid.uuid4().hex
        with connect(f"ws://127.0.0.1:{server.port}/ws?clientId={client_id}") as ws:
            hello = json.loads(ws.recv(timeout=5))
            status = {"status": {"exec_info": {"queue_remaining": 0}}, "sid": client_id}
            assert hello == {"type": "status", "data": status}
            body = {"prompt": recording["prompt"], "client_id": client_id}
            prompt_id = requests.post(f"{server.url}/prompt", json=body, timeout=5).json()["prompt_id"]
            assert requests.get(f"{server.url}/history/{prompt_id}", timeout=5).json() == {}
            got = events_until_done(ws, prompt_id)
            assert [m["type"] for m in got] == [f["type"] for f in frames[1 : first_done + 1]]
            executed = next(m for m in got if m["type"] == "executed")
            assert executed["data"]["output"] == {
                "images": [{"filename": "success_00001_.png", "subfolder": "protocol_test", "type": "output"}]
            }
            entry = requests.get(f"{server.url}/history/{prompt_id}", timeout=5).json()[prompt_id]
            messages = [m[0] for m in entry["status"]["messages"]]
            assert messages == ["execution_start", "execution_cached", "execution_success"]
            # The identical prompt again: every node cached, the old file named again.
            again = requests.post(f"{server.url}/prompt", json=body, timeout=5).json()["prompt_id"]
            cached = events_until_done(ws, again)
            assert next(m for m in cached if m["type"] == "execution_cached")["data"]["nodes"] == ["1", "2"]
            assert next(m for m in cached if m["type"] == "executed")["data"]["output"] == executed["data"]["output"]


def test_queue_delete_and_interrupt_behave_as_recorded():
    with FakeComfyUI() as server:
        slow = {"fake_run_time": 2}
        q1 = server.post(other_graph(), client_id="a", extra_data=slow)
        wait_until(lambda: server.queue_ids()[0] == [q1])
        q2, q3 = (server.post(other_graph(), client_id="a", extra_data=slow) for _ in range(2))
        answer = requests.post(f"{server.url}/prompt", json={"prompt": other_graph(), "front": True}, timeout=5).json()
        assert answer["number"] < 0
        queue = requests.get(f"{server.url}/queue", timeout=5).json()
        # Heap order, as recorded ([-55, 54, 53]): front first, the rest not sorted.
        assert [item[0] for item in queue["queue_pending"]] == [answer["number"], 2, 1]
        assert requests.post(f"{server.url}/queue", json={"delete": [q3]}, timeout=5).text == ""
        assert requests.post(f"{server.url}/interrupt", json={"prompt_id": q2}, timeout=5).status_code == 200
        assert server.queue_ids() == ([q1], [answer["prompt_id"], q2])  # a pending prompt is not interrupted
        requests.post(f"{server.url}/interrupt", timeout=5)  # no body: global
        entry = wait_until(lambda: server.history.get(q1))
        assert entry["status"]["status_str"] == "error" and entry["status"]["completed"] is False
        assert [m[0] for m in entry["status"]["messages"]][-1] == "execution_interrupted"
        requests.post(f"{server.url}/queue", json={"clear": True}, timeout=5)
        wait_until(lambda: server.queue_ids() == ([], []))
        assert q3 not in server.history and q2 not in server.history


def test_a_foreign_origin_is_refused_as_recorded():
    recording = transcript("09_origin_check.json")
    with FakeComfyUI() as server:
        for event in recording["events"]:
            sent, expected = event["request"], event["response"]
            headers = dict(sent.get("headers") or {})
            if headers.get("Origin") == "http://127.0.0.1:8188":
                headers["Origin"] = server.url
            answer = requests.request(sent["method"], server.url + sent["path"], headers=headers, json=sent.get("json"))
            assert answer.status_code == expected["status"], event["label"]
            if expected["status"] == 403:
                assert answer.content == b""


def test_execution_errors_carry_the_recorded_payload():
    recording = transcript("04_execution_error_transcript.json")
    events = recording["events"]
    recorded = next(e["json"]["data"] for e in events if e.get("json", {}).get("type") == "execution_error")
    posted = next(e for e in events if e.get("label") == "POST /prompt (broken.safetensors)")
    graph = posted["request"]["json"]["prompt"]
    with FakeComfyUI(models={"checkpoints": ["broken.safetensors"]}) as server:
        client_id = uuid.uuid4().hex
        with connect(f"ws://127.0.0.1:{server.port}/ws?clientId={client_id}") as ws:
            ws.recv(timeout=5)
            prompt_id = requests.post(
                f"{server.url}/prompt", json={"prompt": graph, "client_id": client_id}, timeout=5
            ).json()["prompt_id"]
            got = events_until_done(ws, prompt_id)
    error = next(m["data"] for m in got if m["type"] == "execution_error")
    for key in ("node_id", "node_type", "exception_message", "exception_type", "traceback", "current_inputs"):
        assert error[key] == recorded[key], key
    assert [m["type"] for m in got][-3:] == ["execution_error", "status", "executing"]
