"""ComfyUI edits: refine (img2img, inpaint), variations, upscale and reference, with the source and
mask uploaded through ``/upload/image``, against the fake ComfyUI that runs the edit graphs on
the uploaded pixels (tests/servers/comfyui.py)."""

from __future__ import annotations

import copy
import gzip
import hashlib
import io
import json
import os
from pathlib import Path

import pytest
import requests
from django.core.exceptions import ImproperlyConfigured
from PIL import Image, ImageChops, ImageDraw

from blogimages.comfyui.client import ComfyUIClient
from blogimages.comfyui.workflows import (
    DEFAULT_STRENGTH,
    SHIPPED_DIR,
    _all_shipped,
    edit_uploads,
    mask_png,
    shipped_workflows,
    source_with_mask,
)
from blogimages.contract import EDIT_OPERATIONS, EditInputs, GenerationRequest, SourceImage
from blogimages.exceptions import PermanentProviderError
from blogimages.providers.comfyui import ComfyUIProvider
from tests.servers.comfyui import MODEL_INPUTS, RECORDED, Recorder

RECORDINGS = Path(
    os.environ.get("COMFYUI_PROTOCOL_DIR", Path(__file__).resolve().parents[2] / "shared" / "comfyui-protocol")
)

pytestmark = [pytest.mark.usefixtures("clean_routing")]


# --- helpers -------------------------------------------------------------------------------------------


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def source_image(width=96, height=64) -> Image.Image:
    """A left-to-right gradient with a blue square: any resize or blend shows."""
    image = Image.new("RGB", (width, height))
    for x in range(width):
        for y in range(height):
            image.putpixel((x, y), (x * 255 // width, 200, y * 255 // height))
    ImageDraw.Draw(image).rectangle((10, 10, 30, 30), fill=(0, 0, 255))
    return image


def right_half_mask(width=96, height=64) -> Image.Image:
    mask = Image.new("L", (width, height), 0)
    ImageDraw.Draw(mask).rectangle((width // 2, 0, width, height), fill=255)
    return mask


def edit_request(operation="refine", *, prompt="make the sky stormier", mask=None, strength=None, scale=None, **kw):
    image = source_image()
    edit = EditInputs(
        operation=operation,
        source=SourceImage(png(image), image.width, image.height),
        mask=png(mask) if mask is not None else None,
        strength=strength,
        scale=scale,
    )
    return GenerationRequest(prompt=prompt, width=kw.pop("width", 96), height=kw.pop("height", 64), edit=edit, **kw)


def provider(server, **options) -> ComfyUIProvider:
    return ComfyUIProvider("comfyui", urls=[server.url], **{"workflow": "sdxl", "poll_interval": 0.2, **options})


def by_class(graph: dict, class_type: str) -> list[dict]:
    return [node for node in graph.values() if node["class_type"] == class_type]


def opened(content: bytes) -> Image.Image:
    return Image.open(io.BytesIO(content)).convert("RGB")


def upload(url: str, name: str, data: bytes, **fields) -> requests.Response:
    return requests.post(f"{url}/upload/image", files={"image": (name, data, "image/png")}, data=fields, timeout=5)


@pytest.fixture
def server(comfy):
    return comfy(run_time=0.02, models={"upscale_models": ["4x-UltraSharp.pth", "2x-Anime.pth"]})


# --- /upload/image: the recorded behaviour ---------------------------------------------------------------


@pytest.mark.skipif(not RECORDINGS.is_dir(), reason=f"no ComfyUI recordings at {RECORDINGS}")
def test_the_fake_answers_the_recorded_uploads_like_comfyui(server):
    """Replays 05b_upload_transcript.json's uploads (same fields, same sizes, same relations
    between the bytes) and compares status and body with what ComfyUI answered."""
    events = json.loads((RECORDINGS / "05b_upload_transcript.json").read_text())["events"]
    recorded = [e for e in events if e["kind"] == "http" and e["request"]["path"] == "/upload/image"]
    assert len(recorded) == 7
    first, second = b"A" * 98, b"B" * 97  # #2 replaces #1; #3 differs from #2; #4 equals #2
    contents = [first, second, first, second, first, first]
    for index, event in enumerate(recorded):
        form = dict(event["request"]["multipart_form"])
        image = form.pop("image", None)
        if image is None:
            response = requests.post(f"{server.url}/upload/image", files={"notimage": (None, "x")}, timeout=5)
        else:
            assert len(contents[index]) == image["bytes"]
            response = upload(server.url, image["filename"], contents[index], **form)
        assert response.status_code == event["response"]["status"], event["label"]
        if "json" in event["response"]:
            assert response.json() == event["response"]["json"], event["label"]
        else:
            assert response.content == b"", event["label"]
    # The replaced file holds the second bytes; the renamed one the third.
    assert server.files[("input", "", "protocol_upload.png")] == second
    assert server.files[("input", "", "protocol_upload (1).png")] == first
    # And /view serves an upload back (type=input), as recorded.
    view = requests.get(f"{server.url}/view", params={"filename": "protocol_upload.png", "type": "input"}, timeout=5)
    assert view.status_code == 200 and view.content == second


def test_renaming_goes_on_counting_and_identical_bytes_find_their_copy(server):
    names = [upload(server.url, "x.png", data, subfolder="s").json()["name"] for data in (b"1", b"2", b"3", b"2")]
    assert names == ["x.png", "x (1).png", "x (2).png", "x (1).png"]
    assert upload(server.url, "../x.png", b"1").status_code == 400
    assert upload(server.url, "x.png", b"1", subfolder="../up").status_code == 400


def test_the_client_uses_the_name_the_server_returns(server):
    client = ComfyUIClient(server.url)
    assert client.upload_image(b"one", "a.png", subfolder="blogimages") == "blogimages/a.png"
    # Someone else's different file has the name: ours is stored beside it, not over it.
    assert client.upload_image(b"two", "a.png", subfolder="blogimages") == "blogimages/a (1).png"
    assert server.files[("input", "blogimages", "a.png")] == b"one"
    # The same bytes again: the existing copy, no third file.
    assert client.upload_image(b"two", "a.png", subfolder="blogimages") == "blogimages/a (1).png"
    assert len([key for key in server.files if key[:2] == ("input", "blogimages")]) == 2
    sent = server.uploads[0]
    assert sent["overwrite"] is False and sent["type"] == "input"


def test_a_refused_upload_is_a_sentence(server):
    client = ComfyUIClient(server.url)
    server.fail_next(1, status=400, path="/upload/image")
    with pytest.raises(PermanentProviderError, match=r"answered 400 Bad Request to POST /upload/image of 'a.png'"):
        client.upload_image(b"one", "a.png")


# --- each operation against the fake -----------------------------------------------------------------


def test_refine_without_a_mask_runs_img2img_on_the_uploaded_source(server):
    comfy = provider(server)
    image = comfy.generate(edit_request(strength=0.3, steps=3), Recorder())
    graph = server.prompts[image.remote_id]
    assert image.metadata["workflow"] == "sdxl_img2img"
    (load,) = by_class(graph, "LoadImage")
    (sampler,) = by_class(graph, "KSampler")
    assert sampler["inputs"]["denoise"] == 0.3 and sampler["inputs"]["steps"] == 3
    assert "make the sky stormier" in [n["inputs"]["text"] for n in by_class(graph, "CLIPTextEncode")]
    # The source went up once, under its content hash, in the blogimages subfolder.
    digest = hashlib.sha256(png(source_image())).hexdigest()[:20]
    assert load["inputs"]["image"] == f"blogimages/blogimages-source-{digest}.png"
    assert image.metadata["uploads"] == [load["inputs"]["image"]]
    assert server.files[("input", "blogimages", f"blogimages-source-{digest}.png")] == png(source_image())
    # The result is the source moved 30 % towards the sampler's colour: made from the source.
    result = opened(image.content)
    assert result.size == (96, 64)
    source = source_image()
    left, right = result.getpixel((2, 40)), result.getpixel((90, 40))
    assert left != right  # the gradient shows through
    assert all(abs(a - b) <= 0.3 * 255 + 1 for a, b in zip(left, source.getpixel((2, 40)), strict=True))


def test_strength_zero_keeps_the_source_and_one_ignores_it(server):
    comfy = provider(server)
    kept = opened(comfy.generate(edit_request(strength=0.0, seed=5), Recorder()).content)
    assert ImageChops.difference(kept, source_image()).getbbox() is None
    replaced = opened(comfy.generate(edit_request(strength=1.0, seed=5), Recorder()).content)
    assert len(replaced.getcolors()) == 1  # all the sampler's colour


def test_refine_with_a_mask_inpaints_inside_it_only(server):
    comfy = provider(server)
    image = comfy.generate(edit_request(mask=right_half_mask(), strength=0.9), Recorder())
    graph = server.prompts[image.remote_id]
    assert image.metadata["workflow"] == "sdxl_inpaint"
    (mask_node,) = by_class(graph, "LoadImageMask")
    assert mask_node["inputs"]["channel"] == "red"
    assert by_class(graph, "SetLatentNoiseMask") and by_class(graph, "ImageCompositeMasked")
    assert len(image.metadata["uploads"]) == 2
    # The mask went up as a grey PNG, white where the image may change.
    subfolder, _, name = mask_node["inputs"]["image"].partition("/")
    uploaded_mask = Image.open(io.BytesIO(server.files[("input", subfolder, name)]))
    assert uploaded_mask.mode == "L" and uploaded_mask.getpixel((90, 5)) == 255 and uploaded_mask.getpixel((5, 5)) == 0
    result, source = opened(image.content), source_image()
    left = (0, 0, 48, 64)
    assert ImageChops.difference(result.crop(left), source.crop(left)).getbbox() is None  # untouched
    assert result.getpixel((80, 40)) != source.getpixel((80, 40))  # changed
    assert graph[by_class(graph, "KSampler")[0]["inputs"]["latent_image"][0]]["class_type"] == "SetLatentNoiseMask"
    # The default strength of a masked refine, when the editor gives none.
    image = comfy.generate(edit_request(mask=right_half_mask()), Recorder())
    (sampler,) = by_class(server.prompts[image.remote_id], "KSampler")
    assert sampler["inputs"]["denoise"] == DEFAULT_STRENGTH["inpaint"]


def test_variations_and_reference_are_img2img_at_their_own_strengths(server):
    comfy = provider(server)
    seeds = set()
    for operation in ("variations", "reference"):
        image = comfy.generate(edit_request(operation, prompt=f"a {operation} prompt"), Recorder())
        graph = server.prompts[image.remote_id]
        assert image.metadata["workflow"] == "sdxl_img2img"
        (sampler,) = by_class(graph, "KSampler")
        assert sampler["inputs"]["denoise"] == DEFAULT_STRENGTH[operation]
        assert f"a {operation} prompt" in [n["inputs"]["text"] for n in by_class(graph, "CLIPTextEncode")]
        seeds.add(sampler["inputs"]["seed"])
    assert len(seeds) == 2  # a new seed each time: ComfyUI would otherwise answer from its cache


def test_the_same_source_is_uploaded_under_one_name(server):
    comfy = provider(server)
    first = comfy.generate(edit_request("variations"), Recorder())
    second = comfy.generate(edit_request("variations"), Recorder())
    assert first.metadata["uploads"] == second.metadata["uploads"]
    assert len([key for key in server.files if key[0] == "input"]) == 1


def test_a_name_taken_by_other_bytes_is_renamed_and_the_renamed_file_is_loaded(server):
    digest = hashlib.sha256(png(source_image())).hexdigest()[:20]
    taken = f"blogimages-source-{digest}.png"
    upload(server.url, taken, b"someone else's file", subfolder="blogimages")
    image = provider(server).generate(edit_request(strength=0.0), Recorder())
    (load,) = by_class(server.prompts[image.remote_id], "LoadImage")
    assert load["inputs"]["image"] == f"blogimages/blogimages-source-{digest} (1).png"
    assert ImageChops.difference(opened(image.content), source_image()).getbbox() is None
    assert server.files[("input", "blogimages", taken)] == b"someone else's file"


@pytest.mark.parametrize(("scale", "size"), [(2.0, (192, 128)), (1.5, (144, 96)), (None, (300, 200))])
def test_upscale_by_a_factor_or_to_the_requested_size(server, scale, size):
    comfy = provider(server)
    req = edit_request("upscale", prompt="", scale=scale, width=300, height=200, loras=())
    image = comfy.generate(req, Recorder())
    graph = server.prompts[image.remote_id]
    assert image.metadata["workflow"] == "upscale"
    (resize,) = by_class(graph, "ImageScale")
    assert resize["inputs"]["upscale_method"] == "lanczos"
    assert (resize["inputs"]["width"], resize["inputs"]["height"]) == size
    assert not by_class(graph, "KSampler") and not by_class(graph, "CheckpointLoaderSimple")
    result = opened(image.content)
    assert result.size == size
    assert ImageChops.difference(result, source_image().resize(size, Image.LANCZOS)).getbbox() is None


def test_upscale_with_a_model_from_an_operator_template(server):
    comfy = provider(
        server, workflows={"upscale": {"template": "upscale_model", "defaults": {"upscale_model": "2x-Anime.pth"}}}
    )
    image = comfy.generate(edit_request("upscale", prompt="", scale=3.0), Recorder())
    graph = server.prompts[image.remote_id]
    assert by_class(graph, "UpscaleModelLoader")[0]["inputs"]["model_name"] == "2x-Anime.pth"
    assert by_class(graph, "ImageUpscaleWithModel")
    assert opened(image.content).size == (288, 192)  # the model's 2x, then lanczos to exactly 3x


def test_an_edit_of_another_shipped_family_uses_its_own_edit_workflow(server):
    image = provider(server).generate(edit_request(model="flux1_dev", mask=right_half_mask()), Recorder())
    graph = server.prompts[image.remote_id]
    assert image.metadata["workflow"] == "flux1_dev_inpaint"
    assert by_class(graph, "UNETLoader") and by_class(graph, "FluxGuidance")
    (encode,) = by_class(graph, "VAEEncode")
    assert graph[encode["inputs"]["vae"][0]]["class_type"] == "VAELoader"  # the family's own VAE
    assert opened(image.content).size == (96, 64)


def test_edits_run_one_image_per_prompt(server):
    comfy = provider(server)
    assert comfy.can_batch(GenerationRequest(prompt="x"))
    assert not comfy.can_batch(edit_request())


def test_an_upload_that_fails_moves_to_the_next_server(comfy):
    first, second = comfy(run_time=0.02), comfy(run_time=0.02)
    first.fail_next(1, status=503, path="/upload/image")
    multi = ComfyUIProvider("comfyui", urls=[first.url, second.url], workflow="sdxl", poll_interval=0.2)
    image = multi.generate(edit_request(), Recorder())
    assert image.remote_server == second.url
    assert not first.prompts and second.uploads


# --- the mask in each of ComfyUI's conventions --------------------------------------------------------------


def test_mask_conversions_read_back_as_our_mask():
    mask = right_half_mask()
    grey = Image.open(io.BytesIO(mask_png(png(mask.convert("RGB")))))
    assert grey.mode == "L" and ImageChops.difference(grey, mask).getbbox() is None
    # LoadImageMask reads channel "red" of the image converted to RGBA: our mask as it is.
    assert ImageChops.difference(grey.convert("RGBA").getchannel("R"), mask).getbbox() is None
    # LoadImage's MASK is 1 - alpha: the alpha channel holds the inverted mask, the colours stay.
    combined = Image.open(io.BytesIO(source_with_mask(png(source_image()), png(mask))))
    assert combined.mode == "RGBA"
    assert combined.getpixel((90, 5))[3] == 0 and combined.getpixel((5, 5))[3] == 255
    assert ImageChops.difference(combined.convert("RGB"), source_image()).getbbox() is None


def inpaint_with_alpha_mask(tmp_path) -> dict:
    """An operator's inpaint export: the mask comes from LoadImage's MASK output (the alpha channel)."""
    graph = json.loads((SHIPPED_DIR / "sdxl_inpaint.json").read_text())
    del graph["23"]  # no LoadImageMask
    graph["24"]["inputs"]["mask"] = ["20", 1]
    graph["25"]["inputs"]["mask"] = ["20", 1]
    graph["20"]["_meta"]["title"] = "Picture"
    path = tmp_path / "house_inpaint.json"
    path.write_text(json.dumps(graph))
    return {
        "label": "House inpainting",
        "operation": "inpaint",
        "graph": str(path),
        "parameters": {
            "prompt": {"node": "Positive prompt", "input": "text"},
            "seed": {"node": "Sampler", "input": "seed"},
            "strength": {"node": "Sampler", "input": "denoise"},
            "denoise": {"node": "Sampler", "input": "denoise"},
            "source_image": {"node": "Picture", "input": "image"},
            "width": {"node": "Fit source", "input": "width"},
            "height": {"node": "Fit source", "input": "height"},
            "mask": {"node": "Picture", "input": "image"},  # the same input: the mask rides in the alpha
        },
        "output": "Save image",
    }


def test_an_operator_edit_workflow_with_the_mask_in_the_alpha_channel(server, tmp_path):
    house = json.loads((SHIPPED_DIR / "sdxl.mapping.json").read_text())
    house.update(graph=json.loads((SHIPPED_DIR / "sdxl.json").read_text()), edits={"inpaint": "house_inpaint"})
    comfy = provider(
        server, workflow="house", workflows={"house": house, "house_inpaint": inpaint_with_alpha_mask(tmp_path)}
    )
    assert comfy.models() == ["flux1_dev", "house", "sd35_large", "sd35_large_turbo", "sdxl"]  # no edit workflows
    image = comfy.generate(edit_request(mask=right_half_mask(), strength=0.8), Recorder())
    graph = server.prompts[image.remote_id]
    assert image.metadata["workflow"] == "house_inpaint"
    assert not by_class(graph, "LoadImageMask")
    (load,) = by_class(graph, "LoadImage")
    assert load["inputs"]["image"].startswith("blogimages/blogimages-masked-")
    assert len(server.uploads) == 1  # one RGBA file: the source with the mask in its alpha
    result, source = opened(image.content), source_image()
    assert ImageChops.difference(result.crop((0, 0, 48, 64)), source.crop((0, 0, 48, 64))).getbbox() is None
    assert result.getpixel((80, 40)) != source.getpixel((80, 40))
    # Its "edits" name no image-to-image workflow, and there is no "house_img2img": a refine
    # without a mask is refused; an upscale falls back to the shipped "upscale".
    assert set(comfy.workflows["house"].edits) == {"inpaint", "upscale"}
    assert "has no image-to-image workflow, so it cannot refine an image" in comfy.edit_refusal(edit_request())


def test_edit_uploads_follow_the_workflow(tmp_path):
    workflows = shipped_workflows()
    req = edit_request(mask=right_half_mask())
    (source, mask) = edit_uploads(workflows["sdxl"], req)
    assert (source.param, mask.param) == ("source_image", "mask")
    assert source.content == req.edit.source.content  # sent as stored
    assert edit_uploads(workflows["sdxl"], edit_request("upscale", mask=right_half_mask()))[0].param == "source_image"
    assert len(edit_uploads(workflows["sdxl"], edit_request("upscale", mask=right_half_mask()))) == 1  # no mask
    assert edit_uploads(workflows["sdxl"], GenerationRequest(prompt="x")) == []


# --- refusals, before anything is queued ----------------------------------------------------------------


def test_comfyui_offers_every_operation():
    assert ComfyUIProvider.operations == frozenset(EDIT_OPERATIONS)


def test_what_comfyui_refuses_is_a_sentence_and_nothing_is_sent(server, tmp_path):
    house = {
        "graph": json.loads((SHIPPED_DIR / "sdxl.json").read_text()),
        "parameters": {
            "prompt": {"node": "Positive prompt", "input": "text"},
            "seed": {"node": "Sampler", "input": "seed"},
        },
        "output": "Save image",
    }
    comfy = provider(server, workflows={"house": house})
    assert comfy.edit_refusal(edit_request()) == ""
    assert comfy.edit_refusal(edit_request("upscale", prompt="")) == ""  # an upscale needs no prompt
    assert comfy.edit_refusal(edit_request(model="house", mask=right_half_mask())) == (
        "Workflow 'house' has no inpainting workflow, so it cannot paint a mask on an image; name one in its "
        'mapping\'s "edits" (e.g. "inpaint": "my_inpaint") or pick another workflow.'
    )
    assert comfy.edit_refusal(edit_request(mask=right_half_mask(40, 40))) == (
        "The mask is 40\u00d740 pixels but the image is 96\u00d764; paint the mask on the image itself."
    )
    assert comfy.edit_refusal(edit_request(prompt="  ")) == (
        "To refine an image with Stable Diffusion XL 1.0 image-to-image, say what to change (the instruction is empty)."
    )
    assert comfy.edit_refusal(edit_request("upscale", prompt="", width=20000, height=100)) == (
        "Upscaling to 20000\u00d7100 is over ComfyUI's limit of 16384 pixels a side; choose a smaller size or factor."
    )
    with pytest.raises(PermanentProviderError, match="has no inpainting workflow"):
        comfy.prepare(edit_request(model="house", mask=right_half_mask()))
    assert not server.requests  # all offline


def test_a_missing_upload_is_refused_by_the_server_like_comfyui(server):
    graph = json.loads((SHIPPED_DIR / "upscale.json").read_text())
    graph["1"]["inputs"]["image"] = "blogimages/never-uploaded.png"
    response = requests.post(f"{server.url}/prompt", json={"prompt": graph}, timeout=5)
    assert response.status_code == 400
    (error,) = response.json()["node_errors"]["1"]["errors"]
    assert error == {
        "type": "custom_validation_failed",
        "message": "Custom validation failed for node",
        "details": "image - Invalid image file: blogimages/never-uploaded.png",
        "extra_info": {"input_name": "image"},
    }


# --- the templates: their mappings and every node against ComfyUI's /object_info ------------------------------


def object_info() -> dict:
    path = RECORDINGS / "object_info_full.json"
    if path.is_file():
        return json.loads(path.read_text())
    return json.loads(gzip.decompress(RECORDED.read_bytes()))["object_info"]


def combo_options(spec: list) -> list | None:
    if isinstance(spec[0], list):
        return spec[0]
    if spec[0] == "COMBO":
        return spec[1].get("options")
    return None


def test_every_shipped_template_fits_the_recorded_object_info():
    """Node classes, mapped inputs, every required input present, links to outputs of the right
    type, and every literal combo value among the options (model lists were empty when recorded)."""
    info = object_info()
    workflows = _all_shipped()
    assert {name for name, wf in workflows.items() if wf.operation != "generate"} == {
        *(
            f"{base}_{kind}"
            for base in ("sdxl", "sd35_large", "sd35_large_turbo", "flux1_dev")
            for kind in ("img2img", "inpaint")
        ),
        "upscale",
        "upscale_model",
    }
    for name, workflow in workflows.items():
        workflow.check(info, "the recordings", with_loras=workflow.lora_model is not None)
        for node_id, node in workflow.graph.items():
            spec = info[node["class_type"]]["input"]
            for input_name in spec.get("required", {}):
                assert input_name in node["inputs"], (name, node_id, input_name)
            for input_name, value in node["inputs"].items():
                config = {**spec.get("required", {}), **spec.get("optional", {})}[input_name]
                if isinstance(value, list):
                    outputs = info[workflow.graph[value[0]]["class_type"]]["output"]
                    assert outputs[value[1]] == config[0], (name, node_id, input_name)
                    continue
                # Files (models, uploads) were not on the recorded server; every other choice must be.
                files = {*MODEL_INPUTS, ("LoadImage", "image"), ("LoadImageMask", "image")}
                if (node["class_type"], input_name) not in files and combo_options(config) is not None:
                    assert value in combo_options(config), (name, node_id, input_name, value)
        if workflow.operation != "generate":
            assert "source_image" in workflow.parameters
            (binding,) = workflow.parameters["source_image"]
            assert workflow.graph[binding.node]["class_type"] == "LoadImage"
        if workflow.operation in ("img2img", "inpaint"):
            (binding,) = workflow.parameters["denoise"]
            assert workflow.graph[binding.node]["class_type"] == "KSampler"
        if workflow.operation == "inpaint":
            (binding,) = workflow.parameters["mask"]
            assert workflow.graph[binding.node]["class_type"] == "LoadImageMask"
            assert workflow.graph[binding.node]["inputs"]["channel"] == "red"


def test_each_edit_template_keeps_its_familys_model_settings():
    workflows = _all_shipped()
    for base in ("sdxl", "sd35_large", "sd35_large_turbo", "flux1_dev"):
        txt2img = workflows[base]
        for kind in ("img2img", "inpaint"):
            edit = workflows[f"{base}_{kind}"]
            for param in ("prompt", "seed", "steps", "model", "sampler", "scheduler", "guidance"):
                assert param in edit.parameters, (base, kind, param)
            assert "batch_size" not in edit.parameters
            assert edit.size_multiple == txt2img.size_multiple and edit.lora_model == txt2img.lora_model
            sampler = next(n for n in edit.graph.values() if n["class_type"] == "KSampler")
            original = next(n for n in txt2img.graph.values() if n["class_type"] == "KSampler")
            for key in ("steps", "cfg", "sampler_name", "scheduler"):
                assert sampler["inputs"][key] == original["inputs"][key]
    assert {kind: wf.name for kind, wf in shipped_workflows()["sd35_large_turbo"].edits.items()} == {
        "img2img": "sd35_large_turbo_img2img",
        "inpaint": "sd35_large_turbo_inpaint",
        "upscale": "upscale",
    }


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"operation": "outpaint"}, "'operation' must be one of generate, img2img, inpaint, upscale"),
        ({"operation": "img2img"}, "the mapping has no 'source_image' parameter"),
        ({"edits": {"sketch": "x"}}, "'edits' must map some of img2img, inpaint, upscale"),
        ({"edits": {"img2img": "nope"}}, "names 'nope' as its img2img workflow in \"edits\", but there is no workflow"),
        ({"edits": {"img2img": "upscale"}}, 'but that mapping says "operation": "upscale"'),
    ],
)
def test_bad_edit_mappings_are_configuration_errors(server, config, message):
    house = {
        "graph": json.loads((SHIPPED_DIR / "sdxl.json").read_text()),
        "parameters": {
            "prompt": {"node": "Positive prompt", "input": "text"},
            "seed": {"node": "Sampler", "input": "seed"},
        },
        "output": "Save image",
        **config,
    }
    with pytest.raises(ImproperlyConfigured, match=message.replace("(", r"\(")):
        provider(server, workflows={"house": house})


def test_a_template_reference_must_be_shipped_and_defaults_mapped(server):
    with pytest.raises(ImproperlyConfigured, match="'template' must name a shipped workflow"):
        provider(server, workflows={"up": {"template": "nope"}})
    with pytest.raises(ImproperlyConfigured, match="'defaults' sets 'colour', which the mapping does not map"):
        provider(server, workflows={"upscale": {"template": "upscale", "defaults": {"colour": "red"}}})
    upscale_config = copy.deepcopy(json.loads((SHIPPED_DIR / "upscale.mapping.json").read_text()))
    del upscale_config["parameters"]["width"]
    with pytest.raises(ImproperlyConfigured, match="an upscale workflow must map 'width' and 'height'"):
        provider(server, workflows={"upscale": {**upscale_config, "graph": str(SHIPPED_DIR / "upscale.json")}})
