"""Workflow templates, their declared mappings, LoRA stacks, and checks against /object_info."""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import ImproperlyConfigured

from blogimages.comfyui.loras import build_stack
from blogimages.comfyui.workflows import SHIPPED_DIR, shipped_workflows
from blogimages.exceptions import PermanentProviderError
from blogimages.providers.base import GenerationRequest, Lora, ModelChoice
from blogimages.providers.comfyui import ComfyUIProvider
from tests.servers.comfyui import FakeComfyUI, Recorder

LORAS = ["ink.safetensors", "film.safetensors", "hero.safetensors", "villain.safetensors", "sidekick.safetensors"]

pytestmark = [pytest.mark.usefixtures("clean_routing")]


@pytest.fixture(scope="module")
def server():
    with FakeComfyUI(run_time=0.02, models={"loras": LORAS}) as fake:
        yield fake


def provider(server, **options) -> ComfyUIProvider:
    return ComfyUIProvider("comfyui", urls=[server.url], **{"poll_interval": 0.2, **options})


def by_class(graph: dict, class_type: str) -> list[dict]:
    return [node for node in graph.values() if node["class_type"] == class_type]


# --- the shipped templates -----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["sd35_large", "sd35_large_turbo", "flux1_dev", "sdxl"])
def test_each_shipped_template_runs_with_loras(server, name):
    loras = (Lora("ink", 0.8), Lora("film", 1.0, "cinematic"))
    req = GenerationRequest(
        prompt="a red fox in the snow",
        negative_prompt="blurry",
        width=320,
        height=256,
        steps=3,
        guidance_scale=2.5,
        model=name,
        loras=loras,
        extra={"character_loras": ["hero"]},
    )
    image = provider(server).generate(req, Recorder())
    graph = server.prompts[image.remote_id]
    assert image.metadata["workflow"] == name
    (sampler,) = by_class(graph, "KSampler")
    assert sampler["inputs"]["seed"] == image.seed and sampler["inputs"]["steps"] == 3
    texts = [node["inputs"]["text"] for node in by_class(graph, "CLIPTextEncode")]
    assert "a red fox in the snow" in texts
    latent = graph[sampler["inputs"]["latent_image"][0]]
    assert (latent["inputs"]["width"], latent["inputs"]["height"]) == (320, 256)
    # LoRAs: style, then character, then cinematic, chained between the loaders and the sampler.
    chain = by_class(graph, "LoraLoader")
    assert [(n["inputs"]["lora_name"], n["inputs"]["strength_model"]) for n in chain] == [
        ("ink.safetensors", 0.8),
        ("hero.safetensors", 0.85),
        ("film.safetensors", 0.95),
    ]
    model_path = sampler["inputs"]["model"][0]
    while graph[model_path]["class_type"] not in ("LoraLoader",):
        model_path = graph[model_path]["inputs"]["model"][0]  # through ModelSamplingSD3, if any
    assert graph[model_path]["inputs"]["lora_name"] == "film.safetensors"
    if name == "flux1_dev":
        # FLUX.1-dev: guidance is FluxGuidance's, the sampler stays at cfg 1, no negative prompt.
        assert by_class(graph, "FluxGuidance")[0]["inputs"]["guidance"] == 2.5
        assert sampler["inputs"]["cfg"] == 1.0 and "blurry" not in texts
        assert by_class(graph, "UNETLoader") and by_class(graph, "DualCLIPLoader")[0]["inputs"]["type"] == "flux"
    else:
        assert sampler["inputs"]["cfg"] == 2.5 and "blurry" in texts
    if name.startswith("sd35"):
        # SD3.5's text encoders come from their own loader, never from the checkpoint.
        (encoders,) = by_class(graph, "TripleCLIPLoader")
        encoder_id = next(node_id for node_id, node in graph.items() if node is encoders)
        assert all(node["inputs"]["clip"][0] != "4" for node in by_class(graph, "CLIPTextEncode"))
        assert chain[0]["inputs"]["clip"] == [encoder_id, 0]


def test_shipped_graphs_are_plain_api_format_files():
    mappings = sorted(SHIPPED_DIR.glob("*.mapping.json"))
    assert len(mappings) == 14  # 4 text-to-image, their 8 img2img and inpaint, 2 upscale
    for mapping in mappings:
        graph = json.loads((SHIPPED_DIR / mapping.name.replace(".mapping.json", ".json")).read_text())
        assert all("class_type" in node and "inputs" in node for node in graph.values())
    # Only the text-to-image ones are workflows to pick; each carries its edit workflows.
    assert set(shipped_workflows()) == {"sd35_large", "sd35_large_turbo", "flux1_dev", "sdxl"}
    assert all(set(workflow.edits) == {"img2img", "inpaint", "upscale"} for workflow in shipped_workflows().values())


def test_prepare_rounds_the_size_and_says_what_is_not_used(server):
    req = GenerationRequest(
        prompt="x",
        negative_prompt="blurry",
        width=1000,
        height=700,
        model="flux1_dev",
        extra={"clip_skip": 2, "t5xxl": "t5xxl_fp8.safetensors"},
    )
    prepared, notes = provider(server).prepare(req)
    assert (prepared.width, prepared.height) == (1008, 704)
    assert notes == [
        "Size 1000\u00d7700 was rounded to 1008\u00d7704: FLUX.1-dev works in steps of 16 pixels.",
        "The negative prompt is not used: FLUX.1-dev has no negative prompt input.",
        "Not used by FLUX.1-dev: clip_skip.",
    ]


def test_model_picks_a_workflow_a_file_or_both(server):
    comfy = provider(server, workflow="sdxl")
    assert comfy.choose_model(GenerationRequest(prompt="x")) == ModelChoice("sdxl")
    assert comfy.choose_model(GenerationRequest(prompt="x", model="flux1_dev")) == ModelChoice("flux1_dev")
    choice = comfy.choose_model(GenerationRequest(prompt="x", model="my_sdxl_finetune.safetensors"))
    assert choice == ModelChoice("sdxl", file="my_sdxl_finetune.safetensors")
    choice = comfy.choose_model(GenerationRequest(prompt="x", model="flux1_dev:flux1-dev-fp8.safetensors"))
    assert choice == ModelChoice("flux1_dev", file="flux1-dev-fp8.safetensors")
    with pytest.raises(PermanentProviderError, match="has no workflow 'nope'"):
        comfy.choose_model(GenerationRequest(prompt="x", extra={"workflow": "nope"}))
    assert comfy.models() == ["flux1_dev", "sd35_large", "sd35_large_turbo", "sdxl"]


# --- operator workflows and their checks -----------------------------------------------------------


def operator_workflow(tmp_path, **changes) -> dict:
    """An exported SDXL graph (as an operator would save it) with its own titles and mapping."""
    graph = json.loads((SHIPPED_DIR / "sdxl.json").read_text())
    graph["3"]["_meta"]["title"] = "My sampler"
    path = tmp_path / "my_export.json"
    path.write_text(json.dumps(graph))
    config = {
        "label": "House style",
        "graph": str(path),
        "parameters": {
            "prompt": {"node": "Positive prompt", "input": "text"},
            "seed": {"node": "My sampler", "input": "seed"},
            "steps": {"node": "3", "input": "steps"},
            "width": {"node": "Empty latent", "input": "width"},
            "height": {"node": "Empty latent", "input": "height"},
        },
        "output": "Save image",
    }
    config.update(changes)
    return config


def test_an_operator_workflow_from_a_file_runs(server, tmp_path):
    comfy = provider(server, workflows={"house": operator_workflow(tmp_path)}, workflow="house")
    image = comfy.generate(GenerationRequest(prompt="a red fox", steps=7, width=128, height=128), Recorder())
    assert server.prompts[image.remote_id]["3"]["inputs"]["steps"] == 7
    assert image.metadata["workflow"] == "house"


def test_a_mapping_to_an_input_the_server_lacks_is_named_before_anything_is_queued(server, tmp_path):
    config = operator_workflow(tmp_path)
    config["parameters"]["steps"] = {"node": "My sampler", "input": "stepz"}
    comfy = provider(server, workflows={"house": config}, workflow="house")
    before = len(server.prompts)
    with pytest.raises(PermanentProviderError) as caught:
        comfy.generate(GenerationRequest(prompt="x", width=128, height=128), Recorder())
    assert str(caught.value) == (
        f"Workflow 'house' does not fit ComfyUI at {server.url}: parameter 'steps' is mapped to input 'stepz' "
        "of node 3 \u201cMy sampler\u201d (KSampler), which has no such input (it has model, seed, steps, cfg, "
        "sampler_name, scheduler, positive, negative, latent_image, denoise)."
    )
    assert len(server.prompts) == before


def test_a_node_type_the_server_lacks_is_named(server, tmp_path):
    config = operator_workflow(tmp_path)
    graph = json.loads(open(config["graph"]).read())
    graph["20"] = {"class_type": "UltimateSDUpscale", "inputs": {}, "_meta": {"title": "Upscale"}}
    config["graph"] = graph
    comfy = provider(server, workflows={"house": config}, workflow="house")
    with pytest.raises(
        PermanentProviderError,
        match=(
            r"node 20 \u201cUpscale\u201d \(UltimateSDUpscale\) needs the node type 'UltimateSDUpscale', which that "
            r"server does not have \(a custom node that is not installed there\?\)"
        ),
    ):
        comfy.generate(GenerationRequest(prompt="x", width=128, height=128), Recorder())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"parameters": {"seed": {"node": "My sampler", "input": "seed"}}}, "the mapping has no 'prompt' parameter"),
        ({"output": "Save the image"}, "output names node 'Save the image', but the graph has no node with that id"),
        ({"graph": {"nodes": [], "links": [], "version": 0.4}}, "is in ComfyUI's UI format; export it with"),
        ({"graph": "/nonexistent/export.json"}, "cannot read the graph file '/nonexistent/export.json'"),
        (
            {"parameters": {"prompt": "Positive prompt.text", "seed": {"node": "3", "input": "seed"}}},
            "parameter 'prompt' must be {'node': <title or id>, 'input': <input name>}",
        ),
    ],
)
def test_a_bad_mapping_is_a_configuration_error_naming_the_spot(server, tmp_path, change, message):
    with pytest.raises(ImproperlyConfigured, match=message.replace("(", r"\(").replace("?", r"\?")) as caught:
        provider(server, workflows={"house": operator_workflow(tmp_path, **change)})
    assert str(caught.value).startswith("BLOGIMAGES_PROVIDERS['comfyui']: workflow 'house': ")


def test_an_unknown_default_workflow_or_option_is_a_configuration_error(server):
    with pytest.raises(ImproperlyConfigured, match="workflow 'sd4' is not defined; choose one of flux1_dev, sd35"):
        provider(server, workflow="sd4")
    with pytest.raises(ImproperlyConfigured, match="unknown option"):
        provider(server, colour="red")


# --- LoRA strength rules -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("characters", "character_strength", "cinematic_strength"),
    [
        (0, None, 1.0),
        (1, 0.85, 0.95),
        (2, 0.75, 0.85),
        (3, 0.65, 0.75),
        (4, 0.65, 0.75),
    ],
)
def test_lora_strengths_follow_the_number_of_characters(characters, character_strength, cinematic_strength):
    names = ["hero", "villain", "sidekick", "extra"][:characters]
    stack = build_stack([Lora("film", 1.0, "cinematic"), Lora("ink", 0.7)], names)
    assert [lora.role for lora in stack] == ["style"] + ["character"] * characters + ["cinematic"]
    assert stack[0].name == "ink.safetensors" and stack[0].strength == 0.7  # the style LoRA keeps its own
    assert {lora.strength for lora in stack if lora.role == "character"} == ({character_strength} - {None})
    assert stack[-1].strength == cinematic_strength


def test_character_loras_may_be_names_loras_or_dicts_and_are_not_doubled():
    stack = build_stack(
        [Lora("hero.safetensors", 1.0, "character")],
        ["hero", {"name": "villain", "strength": 0.5}, Lora("sidekick.ckpt", 1.0)],
    )
    assert [(lora.name, lora.strength) for lora in stack] == [
        ("hero.safetensors", 0.65),
        ("villain.safetensors", 0.325),
        ("sidekick.ckpt", 0.65),
    ]
