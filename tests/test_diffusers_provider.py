"""The in-process diffusers provider.

Without torch and diffusers (this project's own environment) it must fail with a clear
sentence and report why in its health. Where torch, diffusers and transformers are
installed, a tiny randomly initialised Stable Diffusion pipeline is built in a temporary
folder (nothing is downloaded) and run through the provider on the CPU, and on the GPU
when ``torch.cuda.is_available()``.
"""

from __future__ import annotations

import importlib.util
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from PIL import Image

from blogimages import services
from blogimages.contract import EditInputs, SourceImage
from blogimages.exceptions import GenerationCancelled, PermanentProviderError
from blogimages.providers import GenerationRequest, ProgressReporter, providers
from blogimages.providers.diffusers import DEFAULT_MODEL, DiffusersProvider, locate_model, scheduler_spec
from blogimages.services import GenerationSpec

BACKEND = "blogimages.providers.diffusers.DiffusersProvider"
HAVE_STACK = all(importlib.util.find_spec(name) for name in ("torch", "diffusers", "transformers"))


class Recorder(ProgressReporter):
    def __init__(self, cancel_at_step: int | None = None):
        super().__init__()
        self.reports: list[tuple[int, str]] = []
        self.cancel_at_step = cancel_at_step

    def progress(self, percent, message=""):
        self.reports.append((int(percent), message))

    def cancelled(self):
        return self.cancel_at_step is not None and len(self.reports) >= self.cancel_at_step


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache, so the developer's own downloads do not change the outcome."""
    cache = tmp_path / "hf-hub"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    return cache


def cache_model(cache: Path, repo: str, revision: str = "462165984030d82259a11f4367a4eed129e94a7b", ref=True) -> Path:
    """Lay out a model the way ``huggingface-cli download`` leaves it."""
    folder = cache / ("models--" + repo.replace("/", "--"))
    snapshot = folder / "snapshots" / revision
    snapshot.mkdir(parents=True)
    (snapshot / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionXLPipeline"}))
    if ref:
        (folder / "refs").mkdir()
        (folder / "refs" / "main").write_text(revision)
    return snapshot


@pytest.fixture
def without_torch(monkeypatch):
    """As on a machine without the packages, even where they are installed."""
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.setitem(sys.modules, "diffusers", None)


# --- without torch and diffusers ----------------------------------------------------------------------


def test_a_missing_package_and_model_are_one_clear_error(hf_cache, without_torch):
    provider = DiffusersProvider("diffusers")
    with pytest.raises(PermanentProviderError) as caught:
        provider.generate(GenerationRequest(prompt="A lighthouse"), Recorder())
    assert str(caught.value) == (
        "The diffusers provider needs torch and diffusers: pip install torch diffusers. "
        f"The model {DEFAULT_MODEL} is not in the local Hugging Face cache ({hf_cache}) and nothing is downloaded "
        f"while generating; fetch it ahead of time with: huggingface-cli download {DEFAULT_MODEL} "
        "(or set the provider's model option to a local pipeline folder)."
    )


def test_with_the_model_cached_only_the_packages_are_named(hf_cache, without_torch):
    cache_model(hf_cache, DEFAULT_MODEL)
    with pytest.raises(PermanentProviderError) as caught:
        DiffusersProvider("diffusers").generate(GenerationRequest(prompt="A lighthouse"), Recorder())
    assert str(caught.value) == "The diffusers provider needs torch and diffusers: pip install torch diffusers."


def test_health_says_what_is_missing(hf_cache, without_torch):
    health = DiffusersProvider("diffusers").health()
    assert health.ok is False
    assert health.detail == (
        "missing torch, diffusers (pip install torch diffusers); "
        f"model {DEFAULT_MODEL} is not in the local cache (huggingface-cli download {DEFAULT_MODEL})"
    )
    assert health.info == {
        "torch": False,
        "diffusers": False,
        "cuda": None,
        "device": None,
        "model": DEFAULT_MODEL,
        "model_cached": False,
        "model_path": "",
        "cache_dir": str(hf_cache),
    }

    snapshot = cache_model(hf_cache, DEFAULT_MODEL)
    health = DiffusersProvider("diffusers").health()
    assert (health.ok, health.info["model_cached"], health.info["model_path"]) == (False, True, str(snapshot))
    assert health.detail == "missing torch, diffusers (pip install torch diffusers)"


def test_models_are_found_as_huggingface_cli_leaves_them(hf_cache, tmp_path, monkeypatch):
    assert locate_model(DEFAULT_MODEL) is None
    snapshot = cache_model(hf_cache, DEFAULT_MODEL)
    assert locate_model(DEFAULT_MODEL) == snapshot
    # No refs/main (a download of a pinned revision): any complete snapshot will do.
    other = cache_model(hf_cache, "runwayml/stable-diffusion-v1-5", ref=False)
    assert locate_model("runwayml/stable-diffusion-v1-5") == other
    # A local folder, and the cache found through HF_HOME or an explicit cache_dir.
    assert locate_model(str(snapshot)) == snapshot
    monkeypatch.delenv("HF_HUB_CACHE")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    assert locate_model(DEFAULT_MODEL) is None
    assert locate_model(DEFAULT_MODEL, cache_dir=str(hf_cache)) == snapshot
    assert locate_model("sd_xl_base_1.0.safetensors") is None


@pytest.mark.parametrize(
    ("sampler", "scheduler", "expected"),
    [
        ("", "", ("", {})),
        ("euler_ancestral", "", ("EulerAncestralDiscreteScheduler", {})),
        ("dpmpp_2m", "karras", ("DPMSolverMultistepScheduler", {"use_karras_sigmas": True})),
        (
            "dpmpp_2m_sde",
            "exponential",
            ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++", "use_exponential_sigmas": True}),
        ),
        ("Euler a", "normal", ("EulerAncestralDiscreteScheduler", {})),
        ("uni_pc", "sgm_uniform", ("UniPCMultistepScheduler", {"timestep_spacing": "trailing"})),
        ("TCDScheduler", "", ("TCDScheduler", {})),
    ],
)
def test_sampler_names_map_to_diffusers_schedulers(sampler, scheduler, expected):
    assert scheduler_spec(sampler, scheduler) == expected


def test_prepare_refuses_what_it_cannot_honour_and_notes_what_it_changes():
    provider = DiffusersProvider("diffusers")
    with pytest.raises(PermanentProviderError, match="diffusers has no sampler 'dpmpp_2s_ancestral'; use one of ddim"):
        provider.prepare(GenerationRequest(prompt="x", sampler="dpmpp_2s_ancestral"))
    with pytest.raises(PermanentProviderError, match="diffusers has no scheduler 'linear_quadratic'"):
        provider.prepare(GenerationRequest(prompt="x", sampler="euler", scheduler="linear_quadratic"))
    with pytest.raises(PermanentProviderError, match="Scheduler 'karras' needs a sampler"):
        provider.prepare(GenerationRequest(prompt="x", scheduler="karras"))

    request, adjustments = provider.prepare(
        GenerationRequest(prompt="x", width=1001, height=600, model="sd_xl_base_1.0.safetensors")
    )
    assert (request.width, request.height, request.steps, request.model) == (1000, 600, 30, "")
    assert adjustments == [
        "size 1001x600 snapped to 1000x600 (diffusers needs multiples of 8)",
        f"model 'sd_xl_base_1.0.safetensors' is a checkpoint file name, not a diffusers pipeline; used {DEFAULT_MODEL}",
    ]
    assert provider.prepare(request) == (request, [])
    kept, _ = provider.prepare(GenerationRequest(prompt="x", model="runwayml/stable-diffusion-v1-5"))
    assert kept.model == "runwayml/stable-diffusion-v1-5"


def test_bad_options_are_improperly_configured():
    with pytest.raises(ImproperlyConfigured, match="device 'gpu' is not one of auto, cuda, cuda:N, mps, cpu"):
        DiffusersProvider("diffusers", device="gpu")
    with pytest.raises(ImproperlyConfigured, match="dtype 'half' is not one of auto, float16, bfloat16, float32"):
        DiffusersProvider("diffusers", dtype="half")
    with pytest.raises(ImproperlyConfigured, match="unknown option"):
        DiffusersProvider("diffusers", local_files_only=False)


def test_importing_the_provider_does_not_import_torch():
    code = "import sys, blogimages.providers.diffusers; print(sorted({'torch', 'diffusers'} & set(sys.modules)))"
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr


def test_end_to_end_the_job_fails_once_with_the_install_sentence(
    settings, hf_cache, without_torch, db, django_capture_on_commit_callbacks, run_worker, media_root
):
    settings.BLOGIMAGES_PROVIDERS = {**settings.BLOGIMAGES_PROVIDERS, "local": {"BACKEND": BACKEND}}
    assert providers["local"].health().ok is False
    with django_capture_on_commit_callbacks(execute=True):
        [result] = services.request_generation(GenerationSpec(prompt="A lighthouse", providers=["local"]))
    run_worker()
    result.refresh_from_db()
    assert (result.status, result.error_kind, result.attempts) == ("failed", "permanent", 1)
    assert result.error_message.startswith(
        "The diffusers provider needs torch and diffusers: pip install torch diffusers."
    )
    assert not result.image and not any(p.is_file() for p in Path(media_root).rglob("*"))


# --- with torch and diffusers: a tiny random pipeline, made here ----------------------------------------


@pytest.fixture(scope="module")
def tiny_pipeline(tmp_path_factory):
    """A randomly initialised Stable Diffusion pipeline small enough for a CPU, saved as a pipeline folder."""
    if not HAVE_STACK:
        pytest.skip("torch, diffusers and transformers are not installed")
    import torch
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    folder = tmp_path_factory.mktemp("tiny-sd")
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1, **{f"{c}</w>": 2 + i for i, c in enumerate("abcdefghij")}}
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    torch.manual_seed(0)
    pipe = StableDiffusionPipeline(
        vae=AutoencoderKL(
            block_out_channels=[4, 8],
            in_channels=3,
            out_channels=3,
            latent_channels=4,
            norm_num_groups=2,
            down_block_types=["DownEncoderBlock2D"] * 2,
            up_block_types=["UpDecoderBlock2D"] * 2,
        ),
        text_encoder=CLIPTextModel(
            CLIPTextConfig(
                bos_token_id=0,
                eos_token_id=1,
                pad_token_id=1,
                vocab_size=len(vocab),
                hidden_size=8,
                intermediate_size=16,
                num_attention_heads=2,
                num_hidden_layers=1,
                max_position_embeddings=77,
            )
        ),
        tokenizer=CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77),
        unet=UNet2DConditionModel(
            block_out_channels=(4, 8),
            layers_per_block=1,
            sample_size=16,
            in_channels=4,
            out_channels=4,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            cross_attention_dim=8,
            attention_head_dim=2,
            norm_num_groups=2,
        ),
        scheduler=EulerDiscreteScheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(folder / "pipeline")
    return folder / "pipeline"


def _device_params():
    params = [pytest.param("cpu", id="cpu")]
    cuda = False
    if importlib.util.find_spec("torch"):
        import torch

        cuda = torch.cuda.is_available()
    params.append(pytest.param("cuda", id="cuda", marks=pytest.mark.skipif(not cuda, reason="no CUDA GPU")))
    return params


@pytest.mark.parametrize("device", _device_params())
def test_the_pipeline_runs_with_progress_seed_sampler_and_cancel(tiny_pipeline, device):
    provider = DiffusersProvider("diffusers", model=str(tiny_pipeline), device=device, steps=4)
    assert provider.health().ok, provider.health().detail
    request, _ = provider.prepare(
        GenerationRequest(
            prompt="a bad cafe",
            negative_prompt="ice",
            width=64,
            height=48,
            seed=1234,
            sampler="dpmpp_2m",
            scheduler="karras",
            guidance_scale=5.0,
        )
    )
    reporter = Recorder()
    image = provider.generate(request, reporter)

    assert Image.open(io.BytesIO(image.content)).size == (64, 48)
    assert (image.seed, image.model, image.metadata["device"]) == (1234, str(tiny_pipeline), device)
    assert image.metadata["scheduler"] == "DPMSolverMultistepScheduler"
    assert [message for _, message in reporter.reports] == ["step 1/4", "step 2/4", "step 3/4", "step 4/4"]
    # The same seed gives the same image; the pipeline's own scheduler is back afterwards.
    assert provider.generate(request, Recorder()).content == image.content
    unpinned = provider.generate(GenerationRequest(prompt="a", width=64, height=64, steps=2), Recorder())
    assert unpinned.seed is not None and unpinned.metadata["scheduler"] == "EulerDiscreteScheduler"

    with pytest.raises(GenerationCancelled):
        provider.generate(request, Recorder(cancel_at_step=2))


def test_a_partial_download_is_a_permanent_error_naming_the_fetch(tiny_pipeline, tmp_path):
    if not HAVE_STACK:
        pytest.skip("torch, diffusers and transformers are not installed")
    broken = tmp_path / "partial"
    broken.mkdir()
    (broken / "model_index.json").write_text((tiny_pipeline / "model_index.json").read_text())
    provider = DiffusersProvider("diffusers", model=str(broken), device="cpu")
    with pytest.raises(PermanentProviderError) as caught:
        provider.generate(GenerationRequest(prompt="x", width=64, height=64, steps=1), Recorder())
    assert str(caught.value).startswith(f"The local copy of {broken} at {broken} cannot be loaded (")
    assert str(caught.value).endswith("); it may be incomplete or not a diffusers pipeline folder.")


def test_end_to_end_with_the_tiny_pipeline(tiny_pipeline, settings, db, django_capture_on_commit_callbacks, run_worker):
    settings.BLOGIMAGES_PROVIDERS = {
        **settings.BLOGIMAGES_PROVIDERS,
        "local": {"BACKEND": BACKEND, "OPTIONS": {"model": str(tiny_pipeline), "device": "cpu", "steps": 2}},
    }
    with django_capture_on_commit_callbacks(execute=True):
        [result] = services.request_generation(
            GenerationSpec(
                prompt="a bad cafe",
                providers=["local"],
                overrides={"width": 96, "height": 64, "seed": 99},
            )
        )
    run_worker()
    result.refresh_from_db()
    assert result.status == "succeeded", result.error_message
    assert (result.provider_used, result.seed, result.width, result.height) == ("local", 99, 96, 64)
    assert result.provider_meta["device"] == "cpu"


# --- edits: the loaded model's img2img and inpainting pipelines -------------------------------------------


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _source(width: int = 64, height: int = 48) -> SourceImage:
    """Red on the left half, blue on the right."""
    image = Image.new("RGB", (width, height), (200, 30, 30))
    image.paste((30, 30, 200), (width // 2, 0, width, height))
    return SourceImage(_png(image), width, height)


def _right_half_mask(width: int = 64, height: int = 48) -> bytes:
    image = Image.new("L", (width, height), 0)
    image.paste(255, (width // 2, 0, width, height))
    return _png(image)


def _edit(operation: str, source: SourceImage | None = None, steps: int = 4, **edit) -> GenerationRequest:
    return GenerationRequest(
        prompt="a bad cafe",
        width=1024,
        height=1024,
        steps=steps,
        seed=7,
        edit=EditInputs(operation=operation, source=source or _source(), **edit),
    )


def test_edit_limits_are_sentences_before_anything_runs(hf_cache, without_torch):
    """Offline and without torch: refusals come from the request alone."""
    provider = DiffusersProvider("diffusers")
    cases = {
        "upscale": (
            _edit("upscale", scale=2),
            "diffusers (in-process) (diffusers) cannot upscale: that needs an upscaler's own weights, not the loaded "
            "model's; use a provider with an upscaler (Automatic1111, ComfyUI).",
        ),
        "mask for variations": (
            _edit("variations", mask=_right_half_mask()),
            "diffusers (in-process) (diffusers) uses a mask only to refine; remove the mask to variations the whole "
            "image.",
        ),
        "mask size": (
            _edit("refine", mask=_right_half_mask(32, 24)),
            "The mask is 32x24 but the source image is 64x48; paint the mask on the source itself.",
        ),
        "strength": (
            _edit("refine", strength=0.0),
            "The strength must be above 0 and at most 1 with diffusers, not 0.",
        ),
    }
    for label, (request, sentence) in cases.items():
        assert provider.edit_refusal(request) == sentence, label
        with pytest.raises(PermanentProviderError) as caught:
            provider.prepare(request)
        assert str(caught.value) == sentence, label

    # The source's size (snapped), not the request's; enough steps for the strength to run one.
    request, adjustments = provider.prepare(_edit("refine", _source(60, 44), steps=4, strength=0.2))
    assert (request.width, request.height, request.steps) == (64, 48, 5)
    assert adjustments == [
        "source size 60x44 snapped to 64x48 (diffusers needs multiples of 8)",
        "steps 4 raised to 5 so that strength 0.2 runs at least one step",
    ]
    assert provider.prepare(request) == (request, [])


def test_refine_and_variations_run_the_img2img_pipeline_of_the_loaded_model(tiny_pipeline):
    from blogimages.providers import diffusers as module

    provider = DiffusersProvider("diffusers", model=str(tiny_pipeline), device="cpu", variation_strength=0.75)
    source = _source()
    reporter = Recorder()
    image = provider.generate(_edit("refine", source, strength=0.5), reporter)

    assert Image.open(io.BytesIO(image.content)).size == (64, 48)
    assert image.content != source.content
    assert image.metadata["pipeline"] == "StableDiffusionImg2ImgPipeline"
    assert (image.metadata["operation"], image.metadata["strength"], image.seed) == ("refine", 0.5, 7)
    # Half the schedule: two of the four steps run.
    assert [message for _, message in reporter.reports] == ["step 1/2", "step 2/2"]
    # Derived from the loaded pipeline: the same modules, not a second load.
    pipes = {key[-1]: pipe for key, pipe in module._PIPELINES.items() if key[0] == str(tiny_pipeline)}
    assert pipes["img2img"].unet is next(p for k, p in pipes.items() if k not in ("img2img", "inpaint")).unet

    # The source matters (same seed, other source: other image), and the seed does.
    assert provider.generate(_edit("refine", source, strength=0.5), Recorder()).content == image.content
    flipped = SourceImage(_png(Image.open(io.BytesIO(source.content)).transpose(Image.FLIP_LEFT_RIGHT)), 64, 48)
    assert provider.generate(_edit("refine", flipped, strength=0.5), Recorder()).content != image.content
    variation = provider.generate(_edit("variations", source), Recorder())
    assert variation.metadata["strength"] == 0.75 and variation.content != image.content

    # A reference: the request's size (the source cropped to it), the new prompt, a high strength.
    reference = provider.generate(
        GenerationRequest(prompt="a cafe", width=96, height=48, steps=4, edit=EditInputs("reference", source)),
        Recorder(),
    )
    assert Image.open(io.BytesIO(reference.content)).size == (96, 48)
    assert (reference.metadata["operation"], reference.metadata["strength"]) == ("reference", 0.75)

    with pytest.raises(GenerationCancelled):
        provider.generate(_edit("refine", source, strength=1.0), Recorder(cancel_at_step=2))


@pytest.mark.parametrize("device", _device_params())
def test_a_masked_refine_inpaints_and_keeps_the_source_outside_the_mask(tiny_pipeline, device):
    provider = DiffusersProvider("diffusers", model=str(tiny_pipeline), device=device)
    source = _source()
    image = provider.generate(_edit("refine", source, mask=_right_half_mask()), Recorder())

    assert image.metadata["pipeline"] == "StableDiffusionInpaintPipeline"
    assert image.metadata["strength"] == 0.85  # the inpaint default
    result = Image.open(io.BytesIO(image.content)).convert("RGB")
    original = Image.open(io.BytesIO(source.content)).convert("RGB")
    assert result.size == (64, 48)
    left = (0, 0, 32, 48)
    assert result.crop(left).tobytes() == original.crop(left).tobytes()  # black: kept pixel for pixel
    right = (40, 0, 64, 48)  # beyond the feathered edge
    assert result.crop(right).tobytes() != original.crop(right).tobytes()  # white: repainted


def test_end_to_end_a_masked_refine_with_the_tiny_pipeline(
    tiny_pipeline, settings, make_post, django_capture_on_commit_callbacks, run_worker
):
    from django.core.files.storage import default_storage

    from blogimages import refining
    from tests.conftest import generated_result

    settings.BLOGIMAGES_PROVIDERS = {
        **settings.BLOGIMAGES_PROVIDERS,
        "local": {"BACKEND": BACKEND, "OPTIONS": {"model": str(tiny_pipeline), "device": "cpu", "steps": 4}},
    }
    section = make_post(sections=1).sections.get()
    parent = generated_result(section, prompt="a bad cafe", width=64, height=48, colour=(200, 30, 30))
    with django_capture_on_commit_callbacks(execute=True):
        [child] = refining.refine(
            parent, operation="refine", instruction="a cafe", mask=_right_half_mask(), provider="local"
        )
    run_worker()
    child.refresh_from_db()

    assert child.status == "succeeded", child.error_message
    assert (child.parent_id, child.operation, child.provider_used) == (parent.pk, "refine", "local")
    assert child.provider_meta["pipeline"] == "StableDiffusionInpaintPipeline"
    with default_storage.open(child.image.name) as fh:
        image = Image.open(io.BytesIO(fh.read())).convert("RGB")
    assert image.size == (64, 48)
    assert image.getpixel((5, 5)) == (200, 30, 30) and image.getpixel((60, 5)) != (200, 30, 30)
