"""An in-process server that speaks Automatic1111's web UI API (v1.10) over real HTTP.

It behaves as ``modules/api/api.py`` and ``modules/progress.py`` do, including the parts
that are easy to get wrong in a client::

    server = A1111Server(step_delay=0.05)
    ...
    server.txt2img[0]["json"]          # what the client sent
    server.interrupts                  # how many POST /sdapi/v1/interrupt arrived

* ``POST /sdapi/v1/txt2img`` validates types like the API's pydantic v1 model (422
  ``{"detail": [{"loc", "msg", "type"}]}``), answers 404 ``Sampler not found`` for an
  unknown sampler, and runs one request at a time behind a queue lock. It registers the
  request's ``force_task_id`` as pending, then current, then finished, as the real one does.
  ``step_delay`` is the time per sampling step.
* An unknown ``override_settings.sd_model_checkpoint`` is silently dropped and the loaded
  model used; an unknown scheduler silently becomes "Automatic". Both as upstream.
* ``POST /sdapi/v1/interrupt`` stops whatever runs at the next step, and the txt2img call
  still answers 200 with the half-made image, as upstream.
* ``GET /sdapi/v1/progress`` reports the global state; ``POST /internal/progress`` answers
  for one task id (``webui=False`` removes it, like ``--nowebui``).
* ``api=False`` is a web UI started without ``--api`` (every ``/sdapi`` route is 404).
* ``api_auth=("user", "password")`` protects ``/sdapi`` with HTTP Basic, like ``--api-auth``.

``script("server_error")`` makes the next txt2img answer 500 the way the API middleware
does for an exception (``{"error", "detail", "body", "errors"}``).

Edits, as upstream's ``img2imgapi`` and ``extras_single_image_api``:

* ``POST /sdapi/v1/img2img`` takes the txt2img fields plus ``init_images`` (404 "Init image
  not found" without them, 500 "Invalid encoded image" for bad base64), ``denoising_strength``,
  ``resize_mode`` and the inpainting fields. The result is the first init image stretched to
  ``width`` x ``height`` (``resize_mode`` 1: cropped to fit) and blended towards a colour from
  the seed by ``denoising_strength``, inside the mask only when one is sent (white = repaint,
  or the alpha channel of a mask with transparency, as ``create_binary_mask`` reads it).
  A mask of another size is stretched without a word in "whole picture" mode and fails
  with ValueError "images do not match" in ``inpaint_full_res`` mode, as upstream.
  Sampling runs ``int(steps * denoising_strength)`` steps.
* ``POST /sdapi/v1/extra-single-image`` resizes by ``upscaling_resize`` (``resize_mode`` 0) or
  by the larger ratio to ``upscaling_resize_w`` x ``upscaling_resize_h`` (1), each floored to a
  multiple of 8 as upstream's ``Upscaler.upscale`` does; with ``upscaling_crop`` (1) the result
  is pasted centred on a canvas of exactly the asked size.
  ``upscaler_1`` defaults to "None", which returns the image unchanged; a name not in
  ``GET /sdapi/v1/upscalers`` is a 500 AssertionError "could not find upscaler named ...".
"""

from __future__ import annotations

import base64
import io
import json
import random
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from PIL import Image, ImageOps, PngImagePlugin

SAMPLERS = [
    ("DPM++ 2M", ["k_dpmpp_2m"]),
    ("DPM++ SDE", ["k_dpmpp_sde"]),
    ("DPM++ 2M SDE", ["k_dpmpp_2m_sde"]),
    ("DPM++ 2M SDE Heun", ["k_dpmpp_2m_sde_heun"]),
    ("DPM++ 2S a", ["k_dpmpp_2s_a"]),
    ("DPM++ 3M SDE", ["k_dpmpp_3m_sde"]),
    ("Euler a", ["k_euler_a", "k_euler_ancestral"]),
    ("Euler", ["k_euler"]),
    ("LMS", ["k_lms"]),
    ("Heun", ["k_heun"]),
    ("DPM2", ["k_dpm_2"]),
    ("DPM2 a", ["k_dpm_2_a"]),
    ("DPM fast", ["k_dpm_fast"]),
    ("DPM adaptive", ["k_dpm_ad"]),
    ("Restart", ["restart"]),
    ("DDIM", ["ddim"]),
    ("DDIM CFG++", ["ddim_cfgpp"]),
    ("PLMS", ["plms"]),
    ("UniPC", ["unipc"]),
    ("LCM", ["k_lcm"]),
]
SCHEDULERS = [
    ("automatic", "Automatic"),
    ("uniform", "Uniform"),
    ("karras", "Karras"),
    ("exponential", "Exponential"),
    ("polyexponential", "Polyexponential"),
    ("sgm_uniform", "SGM Uniform"),
    ("kl_optimal", "KL Optimal"),
    ("align_your_steps", "Align Your Steps"),
    ("simple", "Simple"),
    ("normal", "Normal"),
    ("ddim", "DDIM"),
    ("beta", "Beta"),
]
CHECKPOINTS = [
    {
        "title": "v1-5-pruned-emaonly.safetensors [6ce0161689]",
        "model_name": "v1-5-pruned-emaonly",
        "hash": "6ce0161689",
        "sha256": "6ce0161689b3853acaa03779ec93eafe75a02f4ced659bee03f50797806fa2fa",
        "filename": "/stable-diffusion-webui/models/Stable-diffusion/v1-5-pruned-emaonly.safetensors",
        "config": None,
    },
    {
        "title": "sd_xl_base_1.0.safetensors [31e35c80fc]",
        "model_name": "sd_xl_base_1.0",
        "hash": "31e35c80fc",
        "sha256": "31e35c80fc4829d14f90153f4c74cd59c90b779f6afe05a74cd6120b893f7e5b",
        "filename": "/stable-diffusion-webui/models/Stable-diffusion/sd_xl_base_1.0.safetensors",
        "config": None,
    },
]
#: The txt2img model's fields and pydantic v1 types (the ones a client sends; others are ignored).
FIELDS: dict[str, type] = {
    "prompt": str,
    "negative_prompt": str,
    "styles": list,
    "seed": int,
    "subseed": int,
    "subseed_strength": float,
    "sampler_name": str,
    "sampler_index": str,
    "scheduler": str,
    "batch_size": int,
    "n_iter": int,
    "steps": int,
    "cfg_scale": float,
    "width": int,
    "height": int,
    "restore_faces": bool,
    "tiling": bool,
    "enable_hr": bool,
    "hr_scale": float,
    "denoising_strength": float,
    "override_settings": dict,
    "override_settings_restore_afterwards": bool,
    "send_images": bool,
    "save_images": bool,
    "force_task_id": str,
    "script_name": str,
    "script_args": list,
    "alwayson_scripts": dict,
}
DEFAULTS = {
    "prompt": "",
    "negative_prompt": "",
    "seed": -1,
    "sampler_name": None,
    "sampler_index": "Euler",
    "scheduler": None,
    "batch_size": 1,
    "n_iter": 1,
    "steps": 50,
    "cfg_scale": 7.0,
    "width": 512,
    "height": 512,
    "override_settings": None,
    "override_settings_restore_afterwards": True,
    "send_images": True,
    "save_images": False,
    "force_task_id": None,
}
#: What img2img accepts beyond the txt2img fields.
IMG2IMG_FIELDS: dict[str, type] = {
    **{k: v for k, v in FIELDS.items() if k not in ("enable_hr", "hr_scale")},
    "init_images": list,
    "resize_mode": int,
    "image_cfg_scale": float,
    "mask": str,
    "mask_blur_x": int,
    "mask_blur_y": int,
    "mask_blur": int,
    "mask_round": bool,
    "inpainting_fill": int,
    "inpaint_full_res": bool,
    "inpaint_full_res_padding": int,
    "inpainting_mask_invert": int,
    "initial_noise_multiplier": float,
    "include_init_images": bool,
}
IMG2IMG_DEFAULTS = {
    **DEFAULTS,
    "init_images": None,
    "resize_mode": 0,
    "denoising_strength": 0.75,
    "mask": None,
    "mask_blur": 4,
    "inpainting_fill": 0,
    "inpaint_full_res": True,  # StableDiffusionProcessingImg2Img's own default ("Only masked")
    "inpaint_full_res_padding": 0,
    "inpainting_mask_invert": 0,
    "include_init_images": False,
}
EXTRAS_FIELDS: dict[str, type] = {
    "resize_mode": int,
    "show_extras_results": bool,
    "gfpgan_visibility": float,
    "codeformer_visibility": float,
    "codeformer_weight": float,
    "upscaling_resize": float,
    "upscaling_resize_w": int,
    "upscaling_resize_h": int,
    "upscaling_crop": bool,
    "upscaler_1": str,
    "upscaler_2": str,
    "extras_upscaler_2_visibility": float,
    "upscale_first": bool,
    "image": str,
}
EXTRAS_DEFAULTS = {
    "resize_mode": 0,
    "upscaling_resize": 2.0,
    "upscaling_resize_w": 512,
    "upscaling_resize_h": 512,
    "upscaling_crop": True,
    "upscaler_1": "None",
    "image": "",
}
UPSCALERS = [
    ("None", None, 4),
    ("Lanczos", None, 4),
    ("Nearest", None, 4),
    ("ESRGAN_4x", "ESRGAN_4x", 4),
    ("LDSR", None, 4),
    ("R-ESRGAN 4x+", None, 4),
    ("R-ESRGAN 4x+ Anime6B", None, 4),
    ("ScuNET GAN", None, 4),
    ("SwinIR 4x", None, 4),
]
TYPE_ERRORS = {
    int: ("value is not a valid integer", "type_error.integer"),
    float: ("value is not a valid float", "type_error.float"),
    str: ("str type expected", "type_error.str"),
    bool: ("value could not be parsed to a boolean", "type_error.bool"),
    dict: ("value is not a valid dict", "type_error.dict"),
    list: ("value is not a valid list", "type_error.list"),
}


class A1111Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        *,
        step_delay: float = 0.0,
        webui: bool = True,
        api: bool = True,
        api_auth: tuple[str, str] | None = None,
        checkpoints: list[dict[str, Any]] | None = None,
        upscalers: list[str] | None = None,
    ):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.step_delay = step_delay
        self.webui = webui
        self.api = api  # False: started without --api, so every /sdapi route is 404
        self.api_auth = api_auth
        self.checkpoints = checkpoints if checkpoints is not None else [dict(c) for c in CHECKPOINTS]
        self.loaded = self.checkpoints[0]["title"] if self.checkpoints else ""
        self.upscalers = upscalers if upscalers is not None else [name for name, _, _ in UPSCALERS]
        self.requests: list[dict[str, Any]] = []
        self.interrupts = 0
        self.interrupted_tasks: list[str] = []  # tasks that stopped early because of an interrupt
        self._script: deque[str] = deque()
        self._lock = threading.Lock()
        self.queue_lock = threading.Lock()  # the web UI runs one generation at a time
        # modules.progress / shared.state
        self.pending: dict[str, float] = {}
        self.current_task: str | None = None
        self.finished: list[str] = []
        self.state = self._idle_state()
        self.time_start = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def script(self, *outcomes: str) -> None:
        assert all(o in ("ok", "server_error") for o in outcomes), outcomes
        with self._lock:
            self._script.extend(outcomes)

    def next_outcome(self) -> str:
        with self._lock:
            return self._script.popleft() if self._script else "ok"

    @property
    def txt2img(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"] == "/sdapi/v1/txt2img"]

    @property
    def img2img(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"] == "/sdapi/v1/img2img"]

    @property
    def extras(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"] == "/sdapi/v1/extra-single-image"]

    def paths(self) -> list[str]:
        return [r["path"] for r in self.requests]

    @staticmethod
    def _idle_state() -> dict[str, Any]:
        return {
            "skipped": False,
            "interrupted": False,
            "stopping_generation": False,
            "job": "",
            "job_count": 0,
            "job_timestamp": "0",
            "job_no": 0,
            "sampling_step": 0,
            "sampling_steps": 0,
        }

    # --- generation ------------------------------------------------------------------------------

    def run_txt2img(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return self.run(body, DEFAULTS, FIELDS, "scripts_txt2img")

    def run_img2img(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if body.get("init_images") is None:
            return 404, {"error": "HTTPException", "detail": "Init image not found", "body": "", "errors": ""}
        try:
            mask = decode_image(body["mask"]) if body.get("mask") else None
            init_images = [decode_image(value) for value in body["init_images"]]
        except ValueError:
            return 500, {
                "error": "HTTPException",
                "detail": "Invalid encoded image",
                "body": "",
                "errors": "500: Invalid encoded image",
            }
        return self.run(body, IMG2IMG_DEFAULTS, IMG2IMG_FIELDS, "scripts_img2img", init_images, mask)

    def run(
        self,
        body: dict[str, Any],
        defaults: dict[str, Any],
        fields: dict[str, type],
        job: str,
        init_images: list[Image.Image] | None = None,
        mask: Image.Image | None = None,
    ) -> tuple[int, dict[str, Any]]:
        params = {**defaults, **{k: v for k, v in body.items() if k in fields}}
        sampler = params["sampler_name"] or params["sampler_index"]
        scheduler_label = "Automatic"
        for name, label in SCHEDULERS:
            if params["scheduler"] in (name, label):
                scheduler_label = label
        # A1111 >= 1.9 splits the old combined names ("DPM++ 2M Karras").
        for _, label in SCHEDULERS:
            if sampler.endswith(f" {label}") and sampler[: -len(label) - 1] in dict(SAMPLERS):
                sampler, scheduler_label = sampler[: -len(label) - 1], label
        if sampler not in dict(SAMPLERS):
            return 404, {"error": "HTTPException", "detail": "Sampler not found", "body": "", "errors": ""}
        task_id = params["force_task_id"] or f"task(txt2img-{random.randrange(10**7):07d})"
        with self._lock:
            self.pending[task_id] = time.time()
        with self.queue_lock:
            outcome = self.next_outcome()
            model = self.loaded
            wanted = (params["override_settings"] or {}).get("sd_model_checkpoint")
            for checkpoint in self.checkpoints:
                if wanted in (checkpoint["title"], checkpoint["model_name"]):
                    model = checkpoint["title"]
            seed = params["seed"] if params["seed"] not in (None, -1) else random.randrange(4294967294)
            steps = params["steps"]
            if init_images is not None:
                # img2img samples only the last part of the schedule.
                steps = max(1, int(steps * params["denoising_strength"]))
            with self._lock:
                self.pending.pop(task_id, None)
                self.current_task = task_id
                self.state = {
                    **self._idle_state(),
                    "job": job,
                    "job_count": 1,
                    "job_timestamp": time.strftime("%Y%m%d%H%M%S"),
                    "sampling_steps": steps,
                }
                self.time_start = time.time()
            try:
                if outcome == "server_error":
                    return 500, {
                        "error": "OutOfMemoryError",
                        "detail": "",
                        "body": "",
                        "errors": "CUDA out of memory. Tried to allocate 2.50 GiB",
                    }
                for step in range(1, steps + 1):
                    if self.state["interrupted"]:
                        self.interrupted_tasks.append(task_id)
                        break
                    time.sleep(self.step_delay)
                    with self._lock:
                        self.state["sampling_step"] = step
                image = None
                if init_images is not None:
                    try:
                        image = self._img2img_image(params, init_images[0], mask, seed)
                    except ValueError as exc:
                        return 500, {"error": "ValueError", "detail": "", "body": "", "errors": str(exc)}
                return 200, self._response(params, body, sampler, scheduler_label, seed, model, image)
            finally:
                with self._lock:
                    if self.current_task == task_id:
                        self.current_task = None
                    self.finished = [*self.finished, task_id][-16:]
                    self.state = {**self.state, "job": "", "job_count": 0}

    @staticmethod
    def _img2img_image(params: dict[str, Any], init: Image.Image, mask: Image.Image | None, seed: int) -> Image.Image:
        width, height = params["width"] // 8 * 8, params["height"] // 8 * 8
        source = init.convert("RGB")
        if mask is not None:
            # modules.processing.create_binary_mask: the alpha channel if the mask has transparency.
            if mask.mode == "RGBA" and mask.getextrema()[-1] != (255, 255):
                mask = mask.getchannel("A")
            mask = mask.convert("L").point(lambda x: 255 if x > 127 else 0)
            if params["inpainting_mask_invert"]:
                mask = ImageOps.invert(mask)
            if params["inpaint_full_res"] and mask.size != source.size:
                # Upstream pastes the source through the mask for the overlay: PIL refuses.
                raise ValueError("images do not match")
            mask = mask.resize((width, height))
        if params["resize_mode"] == 1:  # "Crop and resize"
            source = ImageOps.fit(source, (width, height))
        elif params["resize_mode"] == 2:  # "Resize and fill": fit inside, the rest filled from the edges
            inner = ImageOps.contain(source, (width, height))
            filled = inner.resize((width, height))
            filled.paste(inner, ((width - inner.width) // 2, (height - inner.height) // 2))
            source = filled
        else:  # 0 "Just resize", 3 "Just resize (latent upscale)"
            source = source.resize((width, height))
        painted = Image.blend(
            source, Image.new("RGB", (width, height), (seed % 200, 40 + seed % 97, 90)), params["denoising_strength"]
        )
        return painted if mask is None else Image.composite(painted, source, mask)

    def _response(self, params, body, sampler, scheduler_label, seed, model, image=None) -> dict[str, Any]:
        width, height = params["width"] // 8 * 8, params["height"] // 8 * 8
        name, short_hash = model.split(" [")[0].rsplit(".", 1)[0], model.split("[")[-1].rstrip("]")
        infotext = (
            f"{params['prompt']}\nNegative prompt: {params['negative_prompt']}\nSteps: {params['steps']}, "
            f"Sampler: {sampler}, Schedule type: {scheduler_label}, CFG scale: {params['cfg_scale']}, Seed: {seed}, "
            f"Size: {width}x{height}, Model hash: {short_hash}, Model: {name}, Version: v1.10.1"
        )
        if image is None:
            image = Image.new("RGB", (width, height), (seed % 200, 40 + seed % 97, 90))
        if self.state["interrupted"]:
            image.paste((128, 128, 128), (0, 0, width, height // 2))  # the half-made image upstream returns
        pnginfo = PngImagePlugin.PngInfo()
        pnginfo.add_text("parameters", infotext)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", pnginfo=pnginfo)
        info = {
            "prompt": params["prompt"],
            "all_prompts": [params["prompt"]],
            "negative_prompt": params["negative_prompt"],
            "all_negative_prompts": [params["negative_prompt"]],
            "seed": seed,
            "all_seeds": [seed],
            "subseed": 12345,
            "all_subseeds": [12345],
            "subseed_strength": 0,
            "width": width,
            "height": height,
            "sampler_name": sampler,
            "cfg_scale": params["cfg_scale"],
            "steps": params["steps"],
            "batch_size": 1,
            "restore_faces": False,
            "face_restoration_model": None,
            "sd_model_name": name,
            "sd_model_hash": short_hash,
            "sd_vae_name": None,
            "sd_vae_hash": None,
            "seed_resize_from_w": -1,
            "seed_resize_from_h": -1,
            "denoising_strength": params.get("denoising_strength") if "init_images" in params else None,
            "extra_generation_params": {"Schedule type": scheduler_label},
            "index_of_first_image": 0,
            "infotexts": [infotext],
            "styles": [],
            "job_timestamp": self.state["job_timestamp"],
            "clip_skip": 1,
            "is_using_inpainting_conditioning": False,
            "resize_mode": params.get("resize_mode", 0),
            "version": "v1.10.1",
        }
        return {
            "images": [base64.b64encode(buffer.getvalue()).decode()] if params["send_images"] else [],
            "parameters": {**DEFAULTS, **body},
            "info": json.dumps(info),
        }

    def run_extras(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        params = {**EXTRAS_DEFAULTS, **{k: v for k, v in body.items() if k in EXTRAS_FIELDS and v is not None}}
        try:
            image = decode_image(params["image"])
        except ValueError:
            return 500, {
                "error": "HTTPException",
                "detail": "Invalid encoded image",
                "body": "",
                "errors": "500: Invalid encoded image",
            }
        name = None if params["upscaler_1"] == "None" else params["upscaler_1"]
        if name is not None and name not in self.upscalers:
            return 500, {
                "error": "AssertionError",
                "detail": "",
                "body": "",
                "errors": f"could not find upscaler named {name}",
            }
        with self.queue_lock:
            time.sleep(self.step_delay)
            if name is not None:
                if params["resize_mode"] == 1:
                    target_w, target_h = params["upscaling_resize_w"], params["upscaling_resize_h"]
                    scale = max(target_w / image.width, target_h / image.height)
                else:
                    scale = params["upscaling_resize"]
                    target_w, target_h = None, None
                resample = Image.NEAREST if name == "Nearest" else Image.LANCZOS
                # modules.upscaler.Upscaler.upscale: the size is floored to a multiple of 8.
                size = (int(image.width * scale // 8 * 8), int(image.height * scale // 8 * 8))
                image = image.convert("RGB").resize(size, resample)
                if target_w and params["upscaling_crop"]:
                    # Pasted centred on a canvas of exactly the asked size (cropping or padding).
                    canvas = Image.new("RGB", (target_w, target_h))
                    canvas.paste(image, (target_w // 2 - image.width // 2, target_h // 2 - image.height // 2))
                    image = canvas
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return 200, {"html_info": "<p></p>", "image": base64.b64encode(buffer.getvalue()).decode()}

    def progress(self) -> dict[str, Any]:
        with self._lock:
            state = dict(self.state)
        if state["job_count"] == 0:
            return {"progress": 0, "eta_relative": 0, "state": state, "current_image": None, "textinfo": None}
        progress = 0.01 + (state["sampling_step"] / state["sampling_steps"] if state["sampling_steps"] else 0)
        elapsed = time.time() - self.time_start
        return {
            "progress": min(progress, 1),
            "eta_relative": elapsed / progress - elapsed,
            "state": state,
            "current_image": None,
            "textinfo": None,
        }

    def task_progress(self, id_task: str | None) -> dict[str, Any]:
        with self._lock:
            active = id_task == self.current_task
            queued = id_task in self.pending
            completed = id_task in self.finished
            state = dict(self.state)
            pending = sorted(self.pending, key=self.pending.get)
        if not active:
            textinfo = f"In queue: {pending.index(id_task) + 1}/{len(pending)}" if queued else "Waiting..."
            return {
                "active": False,
                "queued": queued,
                "completed": completed,
                "progress": None,
                "eta": None,
                "live_preview": None,
                "id_live_preview": -1,
                "textinfo": textinfo,
            }
        progress = state["sampling_step"] / state["sampling_steps"] if state["sampling_steps"] else 0
        elapsed = time.time() - self.time_start
        eta = elapsed / progress - elapsed if progress else None
        return {
            "active": True,
            "queued": False,
            "completed": completed,
            "progress": progress,
            "eta": eta,
            "live_preview": None,
            "id_live_preview": -1,
            "textinfo": None,
        }

    def interrupt(self) -> None:
        with self._lock:
            self.interrupts += 1
            if self.state["job_count"]:
                self.state["interrupted"] = True


def decode_image(value: Any) -> Image.Image:
    """``decode_base64_to_image``: base64 or a data URL; ValueError for anything else."""
    if not isinstance(value, str):
        raise ValueError("not a string")
    if value.startswith("data:image/"):
        value = value.split(";")[1].split(",")[1]
    try:
        image = Image.open(io.BytesIO(base64.b64decode(value)))
        image.load()
    except Exception as exc:  # noqa: BLE001 - upstream turns every failure into one answer
        raise ValueError("Invalid encoded image") from exc
    return image


def validate(body: Any, fields: dict[str, type] = FIELDS) -> list[dict[str, Any]]:
    """Pydantic v1's complaints about a txt2img (or img2img, extras) body, in its format."""
    if not isinstance(body, dict):
        return [{"loc": ["body"], "msg": "value is not a valid dict", "type": "type_error.dict"}]
    errors = []
    for name, kind in fields.items():
        if name not in body or body[name] is None:
            continue
        value = body[name]
        ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            ok = True
        if kind in (int, float) and isinstance(value, str):
            try:
                kind(value)  # pydantic v1 coerces numeric strings
                ok = True
            except ValueError:
                ok = False
        if not ok:
            msg, code = TYPE_ERRORS[kind]
            errors.append({"loc": ["body", name], "msg": msg, "type": code})
        elif fields is EXTRAS_FIELDS:
            errors.extend(_extras_constraint(name, value))
    if fields is IMG2IMG_FIELDS and isinstance(body.get("init_images"), list):
        for index, item in enumerate(body["init_images"]):
            if not isinstance(item, str):
                errors.append(
                    {"loc": ["body", "init_images", index], "msg": "str type expected", "type": "type_error.str"}
                )
    return errors


def _extras_constraint(name: str, value: Any) -> list[dict[str, Any]]:
    """ExtrasBaseRequest's Literal and bounds."""
    loc = ["body", name]
    if name == "resize_mode" and value not in (0, 1):
        return [{"loc": loc, "msg": "unexpected value; permitted: 0, 1", "type": "value_error.const"}]
    if name == "upscaling_resize" and float(value) <= 0:
        return [{"loc": loc, "msg": "ensure this value is greater than 0", "type": "value_error.number.not_gt"}]
    if name in ("upscaling_resize_w", "upscaling_resize_h") and int(value) < 1:
        return [
            {"loc": loc, "msg": "ensure this value is greater than or equal to 1", "type": "value_error.number.not_ge"}
        ]
    return []


class _Handler(BaseHTTPRequestHandler):
    server: A1111Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002 - quiet in tests
        pass

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _record(self, body: Any) -> str:
        path = urlsplit(self.path).path
        with self.server._lock:
            headers = {name.lower(): value for name, value in self.headers.items()}
            self.server.requests.append(
                {
                    "method": self.command,
                    "path": path,
                    "query": urlsplit(self.path).query,
                    "headers": headers,
                    "json": body,
                }
            )
        return path

    def _authorised(self, path: str) -> bool:
        if path.startswith("/sdapi/") and not self.server.api:
            self._send(404, {"detail": "Not Found"})
            return False
        if not path.startswith("/sdapi/") or self.server.api_auth is None:
            return True
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            self._send(401, {"detail": "Not authenticated"}, {"WWW-Authenticate": "Basic"})
            return False
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        if (user, password) != self.server.api_auth:
            self._send(
                401,
                {"error": "HTTPException", "detail": "Incorrect username or password", "body": "", "errors": ""},
                {"WWW-Authenticate": "Basic"},
            )
            return False
        return True

    def do_GET(self):  # noqa: N802
        path = self._record(None)
        if not self._authorised(path):
            return
        server = self.server
        if path == "/sdapi/v1/progress":
            self._send(200, server.progress())
        elif path == "/sdapi/v1/options":
            self._send(
                200,
                {
                    "sd_model_checkpoint": server.loaded,
                    "samples_format": "png",
                    "sd_checkpoint_hash": server.loaded.split("[")[-1].rstrip("]"),
                    "CLIP_stop_at_last_layers": 1,
                    "eta_noise_seed_delta": 0,
                    "outdir_samples": "",
                },
            )
        elif path == "/sdapi/v1/sd-models":
            self._send(200, server.checkpoints)
        elif path == "/sdapi/v1/upscalers":
            self._send(
                200,
                [
                    {"name": name, "model_name": model, "model_path": None, "model_url": None, "scale": scale}
                    for name, model, scale in UPSCALERS
                    if name in server.upscalers
                ],
            )
        elif path == "/sdapi/v1/samplers":
            self._send(200, [{"name": name, "aliases": aliases, "options": {}} for name, aliases in SAMPLERS])
        elif path == "/sdapi/v1/schedulers":
            self._send(
                200,
                [
                    {"name": name, "label": label, "aliases": None, "default_rho": -1, "need_inner_model": False}
                    for name, label in SCHEDULERS
                ],
            )
        elif path == "/internal/ping" and server.webui:
            self._send(200, {})
        else:
            self._send(404, {"detail": "Not Found"})

    def do_POST(self):  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        path = self._record(body)
        if not self._authorised(path):
            return
        server = self.server
        if path == "/sdapi/v1/txt2img":
            if isinstance(body, str):
                self._send(
                    422, {"detail": [{"loc": ["body", 0], "msg": "Expecting value", "type": "value_error.jsondecode"}]}
                )
                return
            errors = validate(body)
            if errors:
                self._send(422, {"detail": errors})
                return
            body = {
                k: (FIELDS[k](v) if FIELDS.get(k) in (int, float) and v is not None else v) for k, v in body.items()
            }
            status, payload = server.run_txt2img(body)
            self._send(status, payload)
        elif path in ("/sdapi/v1/img2img", "/sdapi/v1/extra-single-image"):
            fields = IMG2IMG_FIELDS if path == "/sdapi/v1/img2img" else EXTRAS_FIELDS
            errors = validate(body, fields)
            if errors:
                self._send(422, {"detail": errors})
                return
            body = {
                k: (fields[k](v) if fields.get(k) in (int, float) and v is not None else v) for k, v in body.items()
            }
            status, payload = server.run_img2img(body) if fields is IMG2IMG_FIELDS else server.run_extras(body)
            self._send(status, payload)
        elif path == "/sdapi/v1/interrupt":
            server.interrupt()
            self._send(200, {})
        elif path == "/internal/progress" and server.webui:
            self._send(200, server.task_progress((body or {}).get("id_task")))
        else:
            self._send(404, {"detail": "Not Found"})
