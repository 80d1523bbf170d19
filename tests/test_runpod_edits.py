"""Refine, variations, reference and upscale on RunPod's ComfyUI worker, against the local server over real HTTP.

The server (tests/servers/runpod.py) does what worker-comfyui does with ``input.images``:
checks them, stores each under its name in ComfyUI's input folder, fails a graph that loads
a file it was not given, and makes the output from the loaded image, so the result shows
what was sent.
"""

from __future__ import annotations

import base64
import io
import os

import pytest
import requests
from PIL import Image

from blogimages.contract import EditInputs, GenerationRequest, ProgressReporter, SourceImage
from blogimages.exceptions import PermanentProviderError
from blogimages.providers.runpod import RunPodProvider
from tests.servers.runpod import RunPodServer

RED, BLUE = (200, 30, 30), (30, 30, 200)


class Recorder(ProgressReporter):
    def __init__(self):
        super().__init__()
        self.reports: list[tuple[int, str]] = []
        self.remote: list[tuple[str, str]] = []

    def progress(self, percent, message=""):
        self.reports.append((int(percent), message))

    def remote_id(self, remote_id, server=""):
        self.remote.append((remote_id, server))


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ("RUNPOD_API_KEY", "RUNPOD_SERVER_100_ID", "POLLING_INTERVAL", "MAX_POLLING_DURATION"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server(thread_server):
    return thread_server(RunPodServer(api_key="rp-test", endpoints=("ep100",)))


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


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def two_tone(width: int = 96, height: int = 64) -> SourceImage:
    image = Image.new("RGB", (width, height), RED)
    image.paste(BLUE, (width // 2, 0, width, height))
    return SourceImage(png(image), width, height)


def right_half_mask(width: int = 96, height: int = 64) -> bytes:
    image = Image.new("L", (width, height), 0)
    image.paste(255, (width // 2, 0, width, height))
    return png(image)


def edit_request(operation: str, source: SourceImage | None = None, **edit) -> GenerationRequest:
    source = source or two_tone()
    return GenerationRequest(
        prompt="a stormier sky",
        width=source.width,
        height=source.height,
        steps=10,
        seed=321,
        edit=EditInputs(operation=operation, source=source, **edit),
    )


def sent(server, index: int = 0) -> dict:
    return server.runs[index]["json"]["input"]


def nodes(graph: dict, class_type: str) -> list[dict]:
    return [node for node in graph.values() if node["class_type"] == class_type]


def decode(content: bytes) -> Image.Image:
    return Image.open(io.BytesIO(content))


def test_a_masked_refine_sends_source_and_mask_beside_the_inpaint_workflow(server):
    provider = make(server)
    source = two_tone()
    reporter = Recorder()
    image = provider.generate(edit_request("refine", source, mask=right_half_mask()), reporter)

    job_input = sent(server)
    graph, images = job_input["workflow"], job_input["images"]
    assert [sorted(item) for item in images] == [["image", "name"], ["image", "name"]]
    by_name = {item["name"]: base64.b64decode(item["image"]) for item in images}
    [load] = nodes(graph, "LoadImage")
    [load_mask] = nodes(graph, "LoadImageMask")
    # The graph loads exactly the files sent, by the names sent; the worker stored them so.
    assert set(by_name) == {load["inputs"]["image"], load_mask["inputs"]["image"]}
    assert by_name[load["inputs"]["image"]] == source.content
    mask = decode(by_name[load_mask["inputs"]["image"]])
    assert mask.getpixel((10, 10)) in (0, (0, 0, 0)) and mask.getpixel((80, 10)) in (255, (255, 255, 255))
    assert server.inputs == by_name
    [sampler] = nodes(graph, "KSampler")
    assert (sampler["inputs"]["denoise"], sampler["inputs"]["seed"]) == (0.85, 321)
    assert nodes(graph, "CLIPTextEncode")[0]["inputs"]["text"] == "a stormier sky"

    result = decode(image.content).convert("RGB")
    assert result.size == (96, 64)
    assert result.getpixel((10, 10)) == RED  # black in the mask: kept
    assert result.getpixel((80, 10)) != BLUE  # white: repainted
    assert image.metadata["workflow"] == "sdxl_inpaint" and image.metadata["operation"] == "refine"
    assert sorted(image.metadata["uploads"]) == sorted(by_name)
    assert reporter.remote == [(image.remote_id, "ep100")]


def test_refine_and_variations_without_a_mask_run_img2img_at_their_strength(server):
    provider = make(server)
    provider.generate(edit_request("refine", strength=0.3), Recorder())
    variation = provider.generate(edit_request("variations"), Recorder())

    for index, denoise in ((0, 0.3), (1, 0.45)):
        job_input = sent(server, index)
        [item] = job_input["images"]
        assert nodes(job_input["workflow"], "LoadImage")[0]["inputs"]["image"] == item["name"]
        assert nodes(job_input["workflow"], "LoadImageMask") == []
        assert nodes(job_input["workflow"], "KSampler")[0]["inputs"]["denoise"] == denoise
    result = decode(variation.content).convert("RGB")
    assert result.getpixel((10, 10)) != RED and result.getpixel((80, 10)) != BLUE
    assert variation.metadata["workflow"] == "sdxl_img2img"


def test_upscale_by_a_factor_runs_the_upscale_workflow(server):
    provider = make(server)
    image = provider.generate(edit_request("upscale", scale=2), Recorder())
    job_input = sent(server)
    [scale] = nodes(job_input["workflow"], "ImageScale")
    assert (scale["inputs"]["width"], scale["inputs"]["height"]) == (192, 128)
    assert nodes(job_input["workflow"], "KSampler") == []
    result = decode(image.content).convert("RGB")
    assert result.size == (192, 128)
    assert result.getpixel((10, 10)) == RED and result.getpixel((185, 120)) == BLUE
    assert image.metadata["workflow"] == "upscale"


def test_a_source_too_large_for_one_job_is_refused_before_sending(server):
    noisy = Image.frombytes("RGB", (160, 160), os.urandom(160 * 160 * 3))
    source = SourceImage(png(noisy), 160, 160)
    provider = make(server, max_payload_bytes=150_000)
    request = edit_request("refine", source)
    sentence = provider.edit_refusal(request)
    assert sentence.startswith("The image is too large to send to RunPod: 0.1 MB as base64, and a job may be at most")
    assert sentence.endswith("MB; use a smaller source or another provider.")
    with pytest.raises(PermanentProviderError) as caught:
        provider.generate(request, Recorder())
    assert str(caught.value) == sentence
    assert server.runs == []

    # Had it been sent anyway, RunPod refuses the body.
    server.max_body = 50_000
    with pytest.raises(PermanentProviderError, match=r"RunPod rejected the request while submitting the job \(413\)"):
        make(server).generate(request, Recorder())


def test_the_worker_checks_its_images_as_worker_comfyui_does(server):
    """The server's side of the protocol, so a provider bug shows as the worker's own error."""
    headers = {"Authorization": "Bearer rp-test"}
    graph = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "missing.png"}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}},
    }

    def run(job_input: dict) -> dict:
        job = requests.post(f"{server.url}/ep100/run", json={"input": job_input}, headers=headers, timeout=5).json()
        for _ in range(10):
            status = requests.get(f"{server.url}/ep100/status/{job['id']}", headers=headers, timeout=5).json()
            if status["status"] not in ("IN_QUEUE", "IN_PROGRESS"):
                return status
        raise AssertionError(status)

    assert run({"workflow": graph, "images": [{"name": "a.png"}]})["error"] == (
        "'images' must be a list of objects with 'name' and 'image' keys"
    )
    failed = run({"workflow": graph})
    assert failed["status"] == "FAILED" and "Invalid image file: missing.png" in failed["error"]
    source = two_tone()
    ok = run(
        {"workflow": graph, "images": [{"name": "missing.png", "image": base64.b64encode(source.content).decode()}]}
    )
    assert ok["status"] == "COMPLETED" and server.inputs["missing.png"] == source.content


# --- end to end: refining.refine, the real worker, the stored result ---------------------------------------


def test_end_to_end_a_masked_refine_through_the_service(
    settings, server, make_post, django_capture_on_commit_callbacks, run_worker
):
    from django.core.files.storage import default_storage

    from blogimages import refining
    from tests.conftest import generated_result

    settings.BLOGIMAGES_PROVIDERS = {
        **settings.BLOGIMAGES_PROVIDERS,
        "runpod": {
            "BACKEND": "blogimages.providers.runpod.RunPodProvider",
            "OPTIONS": {
                "api_key": "rp-test",
                "endpoint_id": "ep100",
                "base_url": server.url,
                "polling_interval": 0.01,
                "workflow": "sdxl",
            },
        },
    }
    section = make_post(sections=1).sections.get()
    parent = generated_result(section, prompt="A lighthouse at dusk", width=96, height=64, colour=RED)
    with default_storage.open(parent.image.name) as fh:
        parent_bytes = fh.read()
    with django_capture_on_commit_callbacks(execute=True):
        [child] = refining.refine(
            parent, operation="refine", instruction="a stormier sky", mask=right_half_mask(), provider="runpod"
        )
    run_worker()
    child.refresh_from_db()

    assert child.status == "succeeded", child.error_message
    assert (child.parent_id, child.operation, child.provider_used) == (parent.pk, "refine", "runpod")
    job_input = sent(server)
    [load] = nodes(job_input["workflow"], "LoadImage")
    assert server.inputs[load["inputs"]["image"]] == parent_bytes  # the parent's file, as stored
    with default_storage.open(child.image.name) as fh:
        image = decode(fh.read()).convert("RGB")
    assert image.size == (96, 64)
    assert image.getpixel((10, 10)) == RED and image.getpixel((80, 10)) != RED
