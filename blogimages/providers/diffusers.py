"""The in-process fallback: Hugging Face ``diffusers`` on this machine's GPU (or CPU).

It needs no server, only ``pip install torch diffusers`` (plus ``transformers``, which
diffusers' Stable Diffusion pipelines use) and weights already on disk. Nothing here
downloads: every load passes ``local_files_only=True``, so a worker never stalls on a
7 GB download in the middle of a job, and a missing model is a permanent error that
says how to fetch it ahead of time.

torch and diffusers are imported only inside :meth:`generate` and :meth:`health`, so a
site that never uses this provider never pays for them. A loaded pipeline is kept per
process (one per model, device and dtype) and one image is made at a time per process,
since a second concurrent pipeline call would only fight for the same GPU memory.

Edits use the loaded model's own image-to-image and inpainting pipelines
(``AutoPipelineForImage2Image.from_pipe`` / ``AutoPipelineForInpainting.from_pipe``), which
share its components: no second load, no second copy in memory. Refine and variations
start from the source at its own size with ``strength`` as the share of the schedule that
is re-run (a reference: at the request's size, the source cropped to fit, at a high
strength, so the new prompt leads); a refine's mask picks the inpainting pipeline, and the source is pasted back
outside the mask (feathered by ``mask_blur``), so what the mask keeps stays pixel for
pixel. Upscaling needs an upscaler's own weights, not the loaded model's, so it is refused.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import io
import logging
import math
import os
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from ..comfyui.loras import build_stack
from ..contract import (
    EditInputs,
    GeneratedImage,
    GenerationRequest,
    ModelChoice,
    PreparedRequest,
    ProgressReporter,
    ProviderHealth,
    seed_for,
    sent_size,
)
from ..exceptions import GenerationCancelled, PermanentProviderError, TransientProviderError
from ..images import binary_mask, mask_size
from ..remote import clip
from ..samplers import comfyui_sampler
from .base import BaseProvider

logger = logging.getLogger("blogimages.providers.diffusers")

DEFAULT_MODEL = "stabilityai/stable-diffusion-xl-base-1.0"
INSTALL_HINT = "pip install torch diffusers"
PACKAGES = ("torch", "diffusers")
DTYPES = ("auto", "float16", "bfloat16", "float32")
SIZE_MULTIPLE = 8
#: The diffusers pipeline class that ``from_pipe`` derives for each kind of run.
AUTO_PIPELINES = {
    "text2img": "AutoPipelineForText2Image",
    "img2img": "AutoPipelineForImage2Image",
    "inpaint": "AutoPipelineForInpainting",
}

#: ComfyUI sampler names (A1111's labels are translated first) -> a diffusers scheduler class and its options.
SAMPLERS: dict[str, tuple[str, dict[str, Any]]] = {
    "euler": ("EulerDiscreteScheduler", {}),
    "euler_ancestral": ("EulerAncestralDiscreteScheduler", {}),
    "heun": ("HeunDiscreteScheduler", {}),
    "dpm_2": ("KDPM2DiscreteScheduler", {}),
    "dpm_2_ancestral": ("KDPM2AncestralDiscreteScheduler", {}),
    "lms": ("LMSDiscreteScheduler", {}),
    "dpmpp_2m": ("DPMSolverMultistepScheduler", {}),
    "dpmpp_2m_sde": ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++"}),
    "dpmpp_2m_sde_gpu": ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++"}),
    "dpmpp_sde": ("DPMSolverSDEScheduler", {}),
    "dpmpp_sde_gpu": ("DPMSolverSDEScheduler", {}),
    "ddim": ("DDIMScheduler", {}),
    "plms": ("PNDMScheduler", {}),
    "pndm": ("PNDMScheduler", {}),
    "uni_pc": ("UniPCMultistepScheduler", {}),
    "uni_pc_bh2": ("UniPCMultistepScheduler", {"solver_type": "bh2"}),
    "deis": ("DEISMultistepScheduler", {}),
    "lcm": ("LCMScheduler", {}),
}
#: ComfyUI scheduler names -> options on the scheduler class (sigma schedules).
SCHEDULERS: dict[str, dict[str, Any]] = {
    "": {},
    "normal": {},
    "simple": {},
    "automatic": {},
    "karras": {"use_karras_sigmas": True},
    "exponential": {"use_exponential_sigmas": True},
    "beta": {"use_beta_sigmas": True},
    "sgm_uniform": {"timestep_spacing": "trailing"},
}

_PIPELINES: dict[tuple[str, ...], Any] = {}
_PIPELINES_LOCK = threading.Lock()
# One generation at a time per process: the pipeline (and its scheduler) is shared state.
_RUN_LOCK = threading.Lock()


class DiffusersProvider(BaseProvider):
    label = "diffusers (in-process)"
    kind = "diffusers"
    default_options = {
        "model": DEFAULT_MODEL,  # a Hugging Face repo id already in the local cache, or a local folder
        "device": "auto",  # "auto": cuda if available, else mps, else cpu; or "cuda", "cuda:1", "cpu", "mps"
        "dtype": "auto",  # "auto": float16 on a GPU, float32 on the CPU; or float16, bfloat16, float32
        "variant": None,  # e.g. "fp16" to load the *.fp16.safetensors files a repo ships
        "cache_dir": None,  # None: HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub
        "steps": 30,  # when the request sets none
        "lora_dir": "",  # folder that LoRA names are looked up in (files ending .safetensors)
        "allow_cpu": True,  # False: unhealthy without a GPU (a CPU takes minutes per SDXL image)
        "keep_loaded": True,  # keep the pipeline in memory between images
        "cpu_offload": False,  # enable_model_cpu_offload(): slower, for GPUs with little memory
        # Edits: the strength when the editor sets none (the share of the schedule re-run on the source).
        # The defaults are the ComfyUI provider's, so an edit looks alike on either.
        "refine_strength": 0.6,
        "variation_strength": 0.45,
        "inpaint_strength": 0.85,  # a refine with a mask
        "reference_strength": 0.75,
        "mask_blur": 4,  # pixels of feathering where the repainted area meets the kept source
    }
    operations = frozenset({"refine", "variations", "reference"})

    def __init__(self, alias: str, **options: Any):
        super().__init__(alias, **options)
        where = f"BLOGIMAGES_PROVIDERS[{alias!r}]"
        device = str(self.options["device"])
        if device not in ("auto", "cpu", "mps") and not (device == "cuda" or device.startswith("cuda:")):
            raise ImproperlyConfigured(f"{where}: device {device!r} is not one of auto, cuda, cuda:N, mps, cpu.")
        if self.options["dtype"] not in DTYPES:
            raise ImproperlyConfigured(f"{where}: dtype {self.options['dtype']!r} is not one of {', '.join(DTYPES)}.")

    # --- the request ----------------------------------------------------------------------------------

    def choose_model(self, request: GenerationRequest) -> ModelChoice:
        """A pipeline (repo id or folder); a checkpoint file name is another provider's."""
        model = request.model
        if not model or is_pipeline_name(model):
            return ModelChoice(model or self.options["model"])
        # A checkpoint file meant for ComfyUI or A1111 (e.g. when ``auto`` falls back here):
        # diffusers loads pipeline folders, so the configured one is used instead.
        return ModelChoice(
            self.options["model"],
            note=f"model {model!r} is a checkpoint file name, not a diffusers pipeline; used {self.options['model']}",
        )

    def adjust(self, request: GenerationRequest, choice: ModelChoice) -> tuple[GenerationRequest, list[str]]:
        refusal = self.edit_refusal(request)
        if refusal:
            raise PermanentProviderError(refusal)
        adjustments = []
        edit = request.edit
        width, height, snapped = sent_size(request, SIZE_MULTIPLE, "diffusers")
        adjustments.extend(snapped)
        scheduler_spec(request.sampler, request.scheduler)  # refuses names it cannot honour
        model = request.model if not choice.note else ""
        steps = request.steps or int(self.options["steps"])
        if edit is not None:
            # Only ``int(steps * strength)`` steps run; none at all is an error inside diffusers.
            strength = self.strength(edit)
            if int(steps * strength) < 1:
                needed = math.ceil(1 / strength)
                adjustments.append(
                    f"steps {steps} raised to {needed} so that strength {strength:g} runs at least one step"
                )
                steps = needed
        return replace(request, width=width, height=height, steps=steps, model=model), adjustments

    def edit_refusal(self, request: GenerationRequest) -> str:
        edit = request.edit
        if edit is not None and edit.operation == "upscale":
            return (
                f"{self.label} ({self.alias}) cannot upscale: that needs an upscaler's own weights, not the loaded "
                "model's; use a provider with an upscaler (Automatic1111, ComfyUI)."
            )
        refusal = super().edit_refusal(request)
        if refusal or edit is None:
            return refusal
        if edit.mask is not None:
            if edit.operation != "refine":
                return (
                    f"{self.label} ({self.alias}) uses a mask only to refine; remove the mask to "
                    f"{edit.operation} the whole image."
                )
            size = mask_size(edit.mask)
            if size is None:
                return "The mask is not a readable PNG image."
            if size != (edit.source.width, edit.source.height):
                return (
                    f"The mask is {size[0]}x{size[1]} but the source image is "
                    f"{edit.source.width}x{edit.source.height}; paint the mask on the source itself."
                )
        if edit.strength is not None and not 0 < edit.strength <= 1:
            return f"The strength must be above 0 and at most 1 with diffusers, not {edit.strength:g}."
        return ""

    def strength(self, edit: EditInputs) -> float:
        if edit.strength is not None:
            return float(edit.strength)
        if edit.mask is not None:
            return float(self.options["inpaint_strength"])
        if edit.operation == "variations":
            return float(self.options["variation_strength"])
        if edit.operation == "reference":
            return float(self.options["reference_strength"])
        return float(self.options["refine_strength"])

    def models(self) -> list[str]:
        return [self.options["model"]]

    # --- generating -------------------------------------------------------------------------------------

    def generate(self, request: GenerationRequest, reporter: ProgressReporter) -> GeneratedImage:
        request = self.prepared(request)
        model = request.choice.name
        path = locate_model(model, self.options["cache_dir"])
        missing = missing_packages()
        if missing:
            message = f"The diffusers provider needs {' and '.join(missing)}: {INSTALL_HINT}."
            if path is None:
                message += " " + model_missing(model, self.options["cache_dir"])
            raise PermanentProviderError(message)
        if path is None:
            raise PermanentProviderError(model_missing(model, self.options["cache_dir"]))
        torch = _import("torch")
        device = self.device(torch)
        if device == "cpu" and not self.options["allow_cpu"]:
            raise PermanentProviderError("The diffusers provider has no GPU here and allow_cpu is off.")
        seed = seed_for(request, 2**32)
        reporter.seed(seed)
        kind = "text2img"
        if request.edit is not None:
            kind = "inpaint" if request.edit.mask is not None else "img2img"
        with _RUN_LOCK:
            pipe = self.pipeline(model, path, device, torch, kind=kind)
            try:
                image, scheduler = self._run(pipe, request, seed, reporter, torch)
            except GenerationCancelled:
                raise
            except Exception as exc:
                if _is_oom(torch, exc):
                    _free(torch)
                    raise TransientProviderError(f"The GPU ran out of memory making this image ({device}).") from exc
                raise
            finally:
                if not self.options["keep_loaded"]:
                    self.unload()
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        metadata = {
            "device": device,
            "dtype": self.dtype_name(device),
            "scheduler": scheduler,
            "pipeline": type(pipe).__name__,
        }
        if request.edit is not None:
            metadata.update(operation=request.edit.operation, strength=self.strength(request.edit))
        return GeneratedImage(content=buffer.getvalue(), seed=seed, model=model, provider=self.alias, metadata=metadata)

    def _run(
        self, pipe: Any, request: PreparedRequest, seed: int, reporter: ProgressReporter, torch: Any
    ) -> tuple[Any, str]:
        steps = int(request.steps or self.options["steps"])
        original_scheduler = pipe.scheduler
        class_name, scheduler_options = scheduler_spec(request.sampler, request.scheduler)
        loras = self._loras(request)
        try:
            if class_name:
                diffusers = _import("diffusers")
                cls = getattr(diffusers, class_name, None)
                if cls is None:
                    raise PermanentProviderError(f"This diffusers version has no {class_name}; upgrade diffusers.")
                pipe.scheduler = cls.from_config(original_scheduler.config, **scheduler_options)
            if loras:
                self._apply_loras(pipe, loras)

            edit = request.edit
            # An edit runs only the last ``int(steps * strength)`` steps of the schedule.
            runs = min(int(steps * self.strength(edit)), steps) if edit is not None else steps

            def on_step_end(pipeline: Any, step: int, timestep: Any, callback_kwargs: dict) -> dict:
                # Raising here stops the denoising loop at once; the job sees the cancel.
                if reporter.cancelled():
                    raise GenerationCancelled("Cancelled while diffusers was generating.")
                reporter.progress(100 * (step + 1) / (runs + 1), f"step {step + 1}/{runs}")
                return callback_kwargs

            accepted = inspect.signature(pipe.__call__).parameters
            kwargs: dict[str, Any] = {
                "prompt": request.prompt,
                "width": request.width,
                "height": request.height,
                "num_inference_steps": steps,
                # A CPU generator gives the same noise for a seed on any machine.
                "generator": torch.Generator("cpu").manual_seed(seed),
            }
            source = mask = None
            if edit is not None:
                source, mask = edit_images(edit, request.width, request.height)
                kwargs.update(image=source, strength=self.strength(edit))
                if mask is not None:
                    kwargs["mask_image"] = mask
                kwargs = {k: v for k, v in kwargs.items() if k in accepted or k not in ("width", "height")}
            if request.negative_prompt and "negative_prompt" in accepted:
                kwargs["negative_prompt"] = request.negative_prompt
            if request.guidance_scale is not None:
                kwargs["guidance_scale"] = request.guidance_scale
            if "callback_on_step_end" in accepted:
                kwargs["callback_on_step_end"] = on_step_end
            if reporter.cancelled():
                raise GenerationCancelled("Cancelled before diffusers started.")
            image = pipe(**kwargs).images[0]
            if mask is not None:
                image = keep_outside_mask(image, source, mask, int(self.options["mask_blur"]))
            return image, type(pipe.scheduler).__name__
        finally:
            pipe.scheduler = original_scheduler
            if loras:
                pipe.unload_lora_weights()

    # --- LoRAs -------------------------------------------------------------------------------------------

    def _loras(self, request: GenerationRequest) -> list[tuple[Path, float]]:
        stack = build_stack(request.loras, request.extra.get("character_loras") or ())
        found, missing = [], []
        for lora in stack:
            path = Path(lora.name)
            if not path.is_absolute():
                path = Path(self.options["lora_dir"] or ".") / lora.name
            if path.is_file():
                found.append((path, lora.strength))
            else:
                missing.append(str(path))
        if missing:
            raise PermanentProviderError(
                f"LoRA file(s) not found: {', '.join(missing)}; put them in the provider's lora_dir "
                f"({self.options['lora_dir'] or 'not set'})."
            )
        return found

    def _apply_loras(self, pipe: Any, loras: list[tuple[Path, float]]) -> None:
        if importlib.util.find_spec("peft") is None:
            raise PermanentProviderError("LoRAs with diffusers need the peft package: pip install peft.")
        names = []
        for index, (path, _) in enumerate(loras):
            name = f"blogimages_{index}"
            pipe.load_lora_weights(str(path.parent), weight_name=path.name, adapter_name=name, local_files_only=True)
            names.append(name)
        pipe.set_adapters(names, adapter_weights=[strength for _, strength in loras])

    # --- the pipeline ------------------------------------------------------------------------------------

    def device(self, torch: Any) -> str:
        device = str(self.options["device"])
        if device != "auto":
            if device.startswith("cuda") and not torch.cuda.is_available():
                raise PermanentProviderError(f"The diffusers provider is set to {device}, but torch sees no CUDA GPU.")
            return device
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return "mps"
        return "cpu"

    def dtype_name(self, device: str) -> str:
        dtype = self.options["dtype"]
        if dtype == "auto":
            return "float32" if device == "cpu" else "float16"
        return dtype

    def pipeline(self, model: str, path: Path, device: str, torch: Any, kind: str = "text2img") -> Any:
        """The loaded pipeline; for ``kind`` "img2img" or "inpaint", one derived from it sharing its components."""
        dtype = self.dtype_name(device)
        key = (str(path), device, dtype, str(self.options["variant"] or ""))
        if kind != "text2img":
            base = self.pipeline(model, path, device, torch)
            with _PIPELINES_LOCK:
                derived = _PIPELINES.get((*key, kind))
                if derived is None:
                    diffusers = _import("diffusers")
                    auto = getattr(diffusers, AUTO_PIPELINES[kind])
                    try:
                        derived = auto.from_pipe(base)
                    except ValueError as exc:
                        # The model family has no such pipeline (diffusers maps each one it knows).
                        action = "inpaint" if kind == "inpaint" else "start from an image"
                        raise PermanentProviderError(
                            f"{model} ({type(base).__name__}) cannot {action} with this diffusers version "
                            f"({clip(exc)})."
                        ) from exc
                    if hasattr(derived, "set_progress_bar_config"):
                        derived.set_progress_bar_config(disable=True)
                    _PIPELINES[(*key, kind)] = derived
                return derived
        with _PIPELINES_LOCK:
            pipe = _PIPELINES.get(key)
            if pipe is not None:
                return pipe
            diffusers = _import("diffusers")
            kwargs: dict[str, Any] = {"torch_dtype": getattr(torch, dtype), "local_files_only": True}
            if self.options["variant"]:
                kwargs["variant"] = self.options["variant"]
            try:
                pipe = diffusers.AutoPipelineForText2Image.from_pretrained(str(path), **kwargs)
            except (OSError, ValueError) as exc:
                # OSError: files missing from a partial download; ValueError: a folder that is not a pipeline.
                if Path(model).expanduser() == path:
                    hint = "it may be incomplete or not a diffusers pipeline folder"
                else:
                    hint = f"fetch it again with: huggingface-cli download {model}"
                raise PermanentProviderError(
                    f"The local copy of {model} at {path} cannot be loaded ({clip(exc)}); {hint}."
                ) from exc
            if self.options["cpu_offload"] and device != "cpu":
                pipe.enable_model_cpu_offload(device=device)
            else:
                pipe = pipe.to(device)
            if hasattr(pipe, "set_progress_bar_config"):
                pipe.set_progress_bar_config(disable=True)  # tqdm in a worker log helps no one
            _PIPELINES[key] = pipe
            return pipe

    def unload(self) -> None:
        with _PIPELINES_LOCK:
            _PIPELINES.clear()
        if importlib.util.find_spec("torch") is not None:
            _free(_import("torch"))

    # --- health -------------------------------------------------------------------------------------------

    def health(self) -> ProviderHealth:
        model = self.options["model"]
        path = locate_model(model, self.options["cache_dir"])
        missing = missing_packages()
        info: dict[str, Any] = {
            "torch": "torch" not in missing,
            "diffusers": "diffusers" not in missing,
            "cuda": None,
            "device": None,
            "model": model,
            "model_cached": path is not None,
            "model_path": str(path) if path else "",
            "cache_dir": str(hub_cache(self.options["cache_dir"])),
        }
        problems = []
        if missing:
            problems.append(f"missing {', '.join(missing)} ({INSTALL_HINT})")
        if "torch" not in missing:
            try:
                torch = _import("torch")
                info["cuda"] = bool(torch.cuda.is_available())
                info["device"] = self.device(torch)
            except PermanentProviderError as exc:
                problems.append(str(exc))
        if info["device"] == "cpu" and not self.options["allow_cpu"]:
            problems.append("no GPU and allow_cpu is off")
        if path is None:
            problems.append(f"model {model} is not in the local cache (huggingface-cli download {model})")
        if problems:
            return ProviderHealth(ok=False, detail="; ".join(problems), info=info)
        where = info["device"] + (" (slow)" if info["device"] == "cpu" else "")
        return ProviderHealth(ok=True, detail=f"{model} on {where}, {self.dtype_name(info['device'])}", info=info)


# --- helpers --------------------------------------------------------------------------------------------


def scheduler_spec(sampler: str, scheduler: str) -> tuple[str, dict[str, Any]]:
    """The diffusers scheduler class and options for ComfyUI-style names; ("", {}) keeps the model's own."""
    sampler_key, scheduler_key = (sampler or "").strip(), (scheduler or "").strip().lower()
    if scheduler_key not in SCHEDULERS:
        raise PermanentProviderError(
            f"diffusers has no scheduler {scheduler!r}; use one of {', '.join(sorted(k for k in SCHEDULERS if k))}."
        )
    if not sampler_key:
        if SCHEDULERS[scheduler_key]:
            raise PermanentProviderError(
                f"Scheduler {scheduler!r} needs a sampler with diffusers (e.g. dpmpp_2m); the model's own sampler "
                "cannot be told which sigmas to use."
            )
        return "", {}
    if sampler_key.endswith("Scheduler"):  # a diffusers class name, used as given
        return sampler_key, dict(SCHEDULERS[scheduler_key])
    spec = SAMPLERS.get(comfyui_sampler(sampler_key))
    if spec is None:
        raise PermanentProviderError(
            f"diffusers has no sampler {sampler!r}; use one of "
            f"{', '.join(sorted(SAMPLERS))} or a diffusers scheduler class name."
        )
    return spec[0], {**spec[1], **SCHEDULERS[scheduler_key]}


def edit_images(edit: EditInputs, width: int, height: int) -> tuple[Any, Any]:
    """The source as an RGB image of ``width`` x ``height``, and the mask ("L", 255 = repaint) or None."""
    from PIL import Image, ImageOps

    with Image.open(io.BytesIO(edit.source.content)) as opened:
        source = opened.convert("RGB")
    if edit.operation == "reference":
        source = ImageOps.fit(source, (width, height), Image.LANCZOS)  # cropped to the new size, not stretched
    elif source.size != (width, height):
        source = source.resize((width, height), Image.LANCZOS)
    mask = None
    if edit.mask is not None:
        mask = binary_mask(edit.mask)
        if mask.size != (width, height):
            mask = mask.resize((width, height), Image.NEAREST)
    return source, mask


def keep_outside_mask(image: Any, source: Any, mask: Any, blur: int) -> Any:
    """The pipeline's image where the mask says repaint, the source itself elsewhere, feathered by ``blur``.

    The VAE round trip changes every pixel a little, even where the latents were kept."""
    from PIL import Image, ImageChops, ImageFilter

    if image.size != source.size:
        image = image.resize(source.size, Image.LANCZOS)
    soft = mask.filter(ImageFilter.GaussianBlur(blur)) if blur > 0 else mask
    # Feather only inwards, so every black mask pixel keeps the source exactly.
    soft = ImageChops.darker(soft, mask)
    return Image.composite(image.convert("RGB"), source, soft)


def is_pipeline_name(model: str) -> bool:
    """A Hugging Face repo id ("org/name") or a local folder, as opposed to a checkpoint file name."""
    if Path(model).expanduser().is_dir():
        return True
    return (
        model.count("/") == 1
        and not model.startswith(("/", ".", "~"))
        and not model.endswith((".safetensors", ".ckpt", ".pt", ".bin", ".gguf"))
    )


def missing_packages() -> list[str]:
    return [name for name in PACKAGES if importlib.util.find_spec(name) is None]


def hub_cache(cache_dir: str | None = None) -> Path:
    """Where huggingface_hub keeps downloads, by its own rules (without importing it)."""
    if cache_dir:
        return Path(cache_dir).expanduser()
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HUGGINGFACE_HUB_CACHE"):
        return Path(os.environ["HUGGINGFACE_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    return Path(home).expanduser() / "hub"


def locate_model(model: str, cache_dir: str | None = None) -> Path | None:
    """The local folder of a pipeline: ``model`` itself if it is one, else its snapshot in the HF cache."""
    direct = Path(model).expanduser()
    if (direct / "model_index.json").is_file():
        return direct
    if "/" not in model or model.startswith(("/", ".", "~")):
        return None
    repo = hub_cache(cache_dir) / ("models--" + model.replace("/", "--"))
    snapshots = repo / "snapshots"
    ref = repo / "refs" / "main"
    if ref.is_file():
        snapshot = snapshots / ref.read_text().strip()
        if (snapshot / "model_index.json").is_file():
            return snapshot
    if snapshots.is_dir():
        for snapshot in sorted(snapshots.iterdir()):
            if (snapshot / "model_index.json").is_file():
                return snapshot
    return None


def model_missing(model: str, cache_dir: str | None = None) -> str:
    return (
        f"The model {model} is not in the local Hugging Face cache ({hub_cache(cache_dir)}) and nothing is downloaded "
        f"while generating; fetch it ahead of time with: huggingface-cli download {model} "
        "(or set the provider's model option to a local pipeline folder)."
    )


def _import(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise PermanentProviderError(f"{name} is installed but cannot be imported ({exc}); {INSTALL_HINT}.") from exc


def _is_oom(torch: Any, exc: BaseException) -> bool:
    oom = getattr(getattr(torch, "cuda", None), "OutOfMemoryError", None)
    return (oom is not None and isinstance(exc, oom)) or "out of memory" in str(exc).lower()


def _free(torch: Any) -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
