"""The real job path with the ComfyUI provider: service call, RQ worker, fake ComfyUI, storage."""

from __future__ import annotations

import hashlib
import io

import pytest
from PIL import Image

from blogimages import services
from blogimages.images import strip_metadata
from blogimages.models import ErrorKind, ImageGenerationResult, ResultStatus
from tests.servers.comfyui import FakeComfyUI

pytestmark = [pytest.mark.usefixtures("clean_routing")]


@pytest.fixture
def comfyui(settings):
    """A fake ComfyUI and a ``comfyui`` provider alias pointed at it."""
    with FakeComfyUI(run_time=0.2) as server:
        settings.BLOGIMAGES_PROVIDERS = {
            **settings.BLOGIMAGES_PROVIDERS,
            "comfyui": {
                "BACKEND": "blogimages.providers.comfyui.ComfyUIProvider",
                "OPTIONS": {"urls": [server.url], "workflow": "sdxl", "poll_interval": 0.2},
            },
        }
        yield server


def generate(section=None, user=None, **overrides):
    spec = services.GenerationSpec(
        prompt="A lighthouse on a cliff at dusk",
        providers=["comfyui"],
        overrides={"width": 320, "height": 256, **overrides},
    )
    return services.request_generation(spec, section=section, user=user)


@pytest.mark.django_db
def test_a_section_image_is_generated_stored_and_recorded(
    comfyui, make_post, admin_user, run_worker, django_capture_on_commit_callbacks
):
    section = make_post(sections=1).sections.first()
    with django_capture_on_commit_callbacks(execute=True):
        (result,) = generate(section=section, user=admin_user, steps=5)
    assert run_worker() == 1

    result.refresh_from_db()
    assert result.status == ResultStatus.SUCCEEDED, result.error_message
    assert result.provider_used == "comfyui"
    graph = comfyui.prompts[result.remote_id]
    assert result.seed == graph["3"]["inputs"]["seed"] and result.seed is not None
    assert graph["3"]["inputs"]["steps"] == 5
    assert graph["9"]["inputs"]["filename_prefix"] == f"blogimages/result_{result.pk}"
    assert result.remote_server == comfyui.url
    assert result.provider_meta["workflow"] == "sdxl"
    # The stored file is what ComfyUI wrote less its metadata (the graph in the "prompt"
    # chunk), and its thumbnail exists.
    output = result.provider_meta["output"]
    served = comfyui.files[("output", output["subfolder"], output["filename"])]
    with result.image.open("rb") as stored:
        data = stored.read()
    # (plus blogimages' own provenance mark, which stripping removes again).
    assert strip_metadata(data) == strip_metadata(served) != served
    assert result.checksum == hashlib.sha256(data).hexdigest()
    assert Image.open(io.BytesIO(data)).size == (320, 256) == (result.width, result.height)
    assert result.thumbnail and result.thumbnail.storage.exists(result.thumbnail.name)
    assert result.progress == 100 and result.attempts == 1


@pytest.mark.django_db
def test_a_5xx_is_retried_and_then_succeeds(comfyui, run_worker, django_capture_on_commit_callbacks):
    comfyui.fail_next(1, 500, "/prompt")
    with django_capture_on_commit_callbacks(execute=True):
        (result,) = generate()
    run_worker()
    result.refresh_from_db()
    assert result.status == ResultStatus.SUCCEEDED, result.error_message
    assert result.attempts == 2
    posts = [(path, body) for method, path, body in comfyui.requests if method == "POST"]
    assert [path for path, _ in posts] == ["/prompt", "/queue", "/interrupt", "/prompt"]
    # The answer to the first POST was lost: the prompt is removed by the id the client chose, in case it was queued.
    lost = posts[0][1]["prompt_id"]
    assert posts[1][1] == {"delete": [lost]} and posts[2][1] == {"prompt_id": lost}


@pytest.mark.django_db
def test_a_missing_model_fails_the_result_with_one_clear_sentence(
    comfyui, run_worker, django_capture_on_commit_callbacks
):
    comfyui.models = {**comfyui.models, "checkpoints": []}
    with django_capture_on_commit_callbacks(execute=True):
        (result,) = generate()
    run_worker()
    result.refresh_from_db()
    assert result.status == ResultStatus.FAILED and result.error_kind == ErrorKind.PERMANENT
    assert result.error_message == (
        f"ComfyUI at {comfyui.url} rejected the workflow: node 4 \u201cLoad checkpoint\u201d (CheckpointLoaderSimple), "
        "input ckpt_name: Value not in list (ckpt_name: 'sd_xl_base_1.0.safetensors' not in [])."
    )
    assert result.attempts == 1  # permanent: not retried
    assert not result.image and ImageGenerationResult.objects.count() == 1


@pytest.mark.django_db
def test_an_execution_error_fails_the_result(comfyui, run_worker, django_capture_on_commit_callbacks):
    comfyui.models = {**comfyui.models, "checkpoints": ["valid_but_unknown.safetensors"]}
    with django_capture_on_commit_callbacks(execute=True):
        (result,) = services.request_generation(
            services.GenerationSpec(
                prompt="x",
                providers=["comfyui"],
                model="sdxl:valid_but_unknown.safetensors",
                overrides={"width": 128, "height": 128},
            )
        )
    run_worker()
    result.refresh_from_db()
    assert result.status == ResultStatus.FAILED
    assert result.error_message == (
        f"ComfyUI at {comfyui.url} failed in node 4 \u201cLoad checkpoint\u201d (CheckpointLoaderSimple): "
        "RuntimeError: ERROR: Could not detect model type of: "
        "/opt/ComfyUI/models/checkpoints/valid_but_unknown.safetensors."
    )
    # The seed it sent is on the failed row, so "same seed" can try it again.
    (graph,) = comfyui.prompts.values()
    sent = [node["inputs"]["seed"] for node in graph.values() if "seed" in node.get("inputs", {})]
    assert result.seed is not None and sent == [result.seed]
