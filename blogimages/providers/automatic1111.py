"""Automatic1111's Stable Diffusion web UI (and Forge, which keeps its API) over its ``--api``.

One ``POST /sdapi/v1/txt2img`` makes the image; it blocks until the server is done, so
it runs in a thread while this one polls for progress and cancels. The request carries
our own task id (``force_task_id``), which the web UI's ``POST /internal/progress``
answers for: that tells our job from someone else's on a shared server, so progress is
ours and an interrupt (which is global on A1111) is only sent while our task runs.
Servers without that route (``--nowebui``) fall back to ``GET /sdapi/v1/progress``.

Traps this module handles, all silent on the server side:

* an unknown ``sd_model_checkpoint`` override is dropped and the loaded model used, so
  the model is checked against ``/sdapi/v1/sd-models`` before sending;
* an unknown scheduler becomes "Automatic", so schedulers are checked locally;
* after ``/sdapi/v1/interrupt`` the txt2img call still answers 200 with the half-made
  image, which must not be stored as a result;
* sizes that are not multiples of 8 are floored by the server, so they are snapped
  here and the change recorded.

Edits (``request.edit``): refine and variations are ``POST /sdapi/v1/img2img`` with the
source in ``init_images`` at its own size (snapped), ``denoising_strength`` as the
strength, and for a refine the mask in ``mask`` (A1111's convention is ours: white is
repainted). A reference is img2img at the request's size with the source cropped to fit
("Crop and resize") and a high strength, so the new prompt leads and the source guides.
A1111 stretches a mask of another size without a word, or fails with
"images do not match" when inpainting only the masked area, so the size is checked here
first. Upscale is ``POST /sdapi/v1/extra-single-image`` with a named upscaler: its
``upscaler_1`` defaults to "None", which returns the image unchanged, so the name is
always sent and checked against ``/sdapi/v1/upscalers``. The extras route has no task id
and cannot be interrupted: a cancelled upscale is abandoned and its image discarded.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import logging
import os
import threading
import time
import uuid
from dataclasses import replace
from typing import Any

import requests
from django.core.exceptions import ImproperlyConfigured

from ..comfyui.loras import LORA_EXTENSIONS, build_stack
from ..contract import (
    EditInputs,
    GeneratedImage,
    GenerationRequest,
    ModelChoice,
    ProgressReporter,
    ProviderHealth,
    sent_size,
)
from ..exceptions import GenerationCancelled, PermanentProviderError, TransientProviderError
from ..images import binary_mask, mask_size, png_bytes
from ..remote import BlockingCall, clip, connection_reason, decode_base64_image, json_body, status_error
from ..samplers import A1111_SAMPLERS, A1111_SCHEDULERS
from .base import BaseProvider

logger = logging.getLogger("blogimages.providers.automatic1111")

DEFAULT_URL = "http://127.0.0.1:7860"
TASK_PREFIX = "task(blogimages-"
UPSCALE_PREFIX = "extras(blogimages-"
SIZE_MULTIPLE = 8
#: A1111's "masked content" choices for ``inpainting_fill``, by the web UI's labels.
INPAINTING_FILL = {"fill": 0, "original": 1, "latent noise": 2, "latent nothing": 3}
#: The extras tab's slider stops at 8; larger factors are refused rather than sent.
MAX_UPSCALE = 8.0

#: Every sampler label A1111 knows, its own extras included.
SAMPLER_LABELS = sorted(set(A1111_SAMPLERS.values()) | {"DPM++ 2M SDE Heun", "DDIM CFG++"})
SCHEDULER_LABELS = sorted(set(A1111_SCHEDULERS.values()))


class Automatic1111Provider(BaseProvider):
    label = "Automatic1111"
    kind = "automatic1111"
    default_options = {
        # None: env AUTOMATIC1111_BASE_URL (the name Open WebUI uses), else http://127.0.0.1:7860.
        "base_url": None,
        # "user:password" for a server started with --api-auth; None: env AUTOMATIC1111_API_AUTH.
        "api_auth": None,
        "model": "",  # checkpoint when the request names none; "": whatever the server has loaded
        "steps": 20,  # when the request sets none (the API's own default is 50)
        "cfg_scale": 7.0,
        "sampler": "",  # "": the server's default sampler
        "scheduler": "",
        "timeout": 600.0,  # seconds for one image, queue wait included; keep below BLOGIMAGES_JOB_TIMEOUT
        "health_timeout": 2.0,
        "poll_interval": 0.5,  # seconds between progress polls (and cancel checks)
        "models_ttl": 30.0,  # seconds the checkpoint list is trusted before asking again
        # Edits: the denoising strength when the editor sets none (0 keeps the source, 1 ignores it).
        # The defaults are the ComfyUI provider's, so an edit looks alike on either.
        "refine_strength": 0.6,
        "variation_strength": 0.45,
        "inpaint_strength": 0.85,  # a refine with a mask
        "reference_strength": 0.75,
        "mask_blur": 4,  # pixels of feathering at the mask's edge
        "inpainting_fill": "original",  # what the masked area starts from: fill, original, latent noise, latent nothing
        "inpaint_full_res": False,  # True: repaint only the masked area at full resolution ("Only masked")
        "inpaint_full_res_padding": 32,
        "upscaler": "R-ESRGAN 4x+",  # a name from GET /sdapi/v1/upscalers (Lanczos needs no model)
    }
    operations = frozenset({"refine", "variations", "upscale", "reference"})

    def __init__(self, alias: str, **options: Any):
        super().__init__(alias, **options)
        self._models_cache: tuple[float, str, list[dict[str, Any]]] | None = None
        self._upscalers_cache: tuple[float, str, list[str]] | None = None
        self._lock = threading.Lock()
        where = f"BLOGIMAGES_PROVIDERS[{alias!r}]"
        if str(self.options["inpainting_fill"]) not in INPAINTING_FILL:
            raise ImproperlyConfigured(
                f"{where}: inpainting_fill {self.options['inpainting_fill']!r} is not one of "
                f"{', '.join(INPAINTING_FILL)}."
            )
        for name in ("refine_strength", "variation_strength", "inpaint_strength", "reference_strength"):
            if not 0 <= float(self.options[name]) <= 1:
                raise ImproperlyConfigured(f"{where}: {name} must be between 0 and 1, not {self.options[name]!r}.")

    # --- configuration --------------------------------------------------------------------------

    def base_url(self) -> str:
        url = self.options["base_url"] or os.environ.get("AUTOMATIC1111_BASE_URL") or DEFAULT_URL
        return url.rstrip("/")

    def _auth(self) -> tuple[str, str] | None:
        value = self.options["api_auth"] or os.environ.get("AUTOMATIC1111_API_AUTH") or ""
        if not value:
            return None
        user, _, password = value.partition(":")
        return user, password

    def _get(self, path: str, timeout: float, session: requests.Session | None = None) -> requests.Response:
        return (session or requests).get(f"{self.base_url()}{path}", auth=self._auth(), timeout=timeout)

    def _post(self, path: str, body: Any, timeout: Any, session: requests.Session | None = None) -> requests.Response:
        return (session or requests).post(f"{self.base_url()}{path}", json=body, auth=self._auth(), timeout=timeout)

    # --- checking a request -----------------------------------------------------------------------

    def choose_model(self, request: GenerationRequest) -> ModelChoice:
        """A checkpoint name, as A1111 lists it (checked against the server in ``generate``)."""
        return ModelChoice(request.model or self.options["model"])

    def adjust(self, request: GenerationRequest, choice: ModelChoice) -> tuple[GenerationRequest, list[str]]:
        refusal = self.edit_refusal(request)
        if refusal:
            raise PermanentProviderError(refusal)
        adjustments: list[str] = []
        edit = request.edit
        if edit is not None and edit.operation == "upscale":
            width, height = upscale_size(edit, request)
            return replace(request, width=width, height=height, model=choice.name), adjustments
        width, height, snapped = sent_size(request, SIZE_MULTIPLE, "Automatic1111")
        adjustments.extend(snapped)
        sampler, scheduler = a1111_sampler(
            request.sampler or self.options["sampler"], request.scheduler or self.options["scheduler"]
        )
        prepared = replace(
            request,
            width=width,
            height=height,
            steps=request.steps or int(self.options["steps"]),
            guidance_scale=(
                request.guidance_scale if request.guidance_scale is not None else float(self.options["cfg_scale"])
            ),
            sampler=sampler,
            scheduler=scheduler,
            model=choice.name,
        )
        return prepared, adjustments

    def payload(self, request: GenerationRequest, task_id: str, checkpoint: str = "") -> dict[str, Any]:
        """The txt2img body for a prepared request."""
        body: dict[str, Any] = {
            "prompt": _with_loras(request),
            "negative_prompt": request.negative_prompt,
            "width": request.width,
            "height": request.height,
            "steps": request.steps,
            "cfg_scale": request.guidance_scale,
            "seed": request.seed if request.seed is not None else -1,
            "batch_size": 1,
            "n_iter": 1,
            "send_images": True,
            "save_images": False,
            "force_task_id": task_id,
        }
        if request.sampler:
            body["sampler_name"] = request.sampler
        if request.scheduler:
            body["scheduler"] = request.scheduler
        if checkpoint:
            body["override_settings"] = {"sd_model_checkpoint": checkpoint}
            body["override_settings_restore_afterwards"] = True
        # An operator's escape hatch for A1111-only fields (hires fix, clip skip, ...).
        extra = request.extra.get("a1111")
        if isinstance(extra, dict):
            body.update(extra)
        return body

    def edit_refusal(self, request: GenerationRequest) -> str:
        refusal = super().edit_refusal(request)
        edit = request.edit
        if refusal or edit is None:
            return refusal
        name = f"{self.label} ({self.alias})"
        if edit.mask is not None:
            if edit.operation != "refine":
                return f"{name} uses a mask only to refine; remove the mask to {edit.operation} the whole image."
            size = mask_size(edit.mask)
            if size is None:
                return "The mask is not a readable PNG image."
            if size != (edit.source.width, edit.source.height):
                return (
                    f"The mask is {size[0]}x{size[1]} but the source image is "
                    f"{edit.source.width}x{edit.source.height}; paint the mask on the source itself."
                )
        if edit.strength is not None and not 0 <= edit.strength <= 1:
            return f"The strength must be between 0 and 1, not {edit.strength:g}."
        if edit.operation == "upscale":
            if edit.scale is not None and not 1 < edit.scale <= MAX_UPSCALE:
                return f"{name} upscales by more than 1 and at most {MAX_UPSCALE:g} times, not {edit.scale:g}."
            width, height = upscale_size(edit, request)
            if max(width / edit.source.width, height / edit.source.height) > MAX_UPSCALE:
                return f"{name} upscales at most {MAX_UPSCALE:g} times; {width}x{height} is more than that."
        return ""

    def edit_fields(self, request: GenerationRequest) -> dict[str, Any]:
        """What an img2img body adds to the txt2img one for a refine or variation."""
        edit = request.edit
        assert edit is not None
        if edit.strength is not None:
            strength = edit.strength
        elif edit.mask is not None:
            strength = self.options["inpaint_strength"]
        elif edit.operation == "variations":
            strength = self.options["variation_strength"]
        elif edit.operation == "reference":
            strength = self.options["reference_strength"]
        else:
            strength = self.options["refine_strength"]
        fields: dict[str, Any] = {
            "init_images": [_b64(edit.source.content)],
            "denoising_strength": float(strength),
            # 0 "Just resize": only a snap of a few pixels for the source's own size; 1 "Crop and
            # resize" for a reference made at the request's size.
            "resize_mode": 1 if edit.operation == "reference" else 0,
            "include_init_images": False,
        }
        if edit.mask is not None:
            fields.update(
                mask=_b64(png_bytes(binary_mask(edit.mask))),
                mask_blur=int(self.options["mask_blur"]),
                inpainting_fill=INPAINTING_FILL[str(self.options["inpainting_fill"])],
                inpaint_full_res=bool(self.options["inpaint_full_res"]),
                inpaint_full_res_padding=int(self.options["inpaint_full_res_padding"]),
                inpainting_mask_invert=0,
            )
        return fields

    # --- models -------------------------------------------------------------------------------------

    def _checkpoints(self, *, fresh: bool = False) -> list[dict[str, Any]]:
        now = time.monotonic()
        url = self.base_url()
        with self._lock:
            cached = self._models_cache
        if cached and not fresh and cached[1] == url and now - cached[0] < float(self.options["models_ttl"]):
            return cached[2]
        try:
            response = self._get("/sdapi/v1/sd-models", timeout=10)
        except requests.RequestException as exc:
            raise _unreachable(url, exc) from exc
        _raise_for(response, url)
        checkpoints = response.json()
        with self._lock:
            self._models_cache = (now, url, checkpoints)
        return checkpoints

    def checkpoint_title(self, model: str) -> str:
        """The server's title for ``model`` (file name, name without extension, title or hash)."""
        for fresh in (False, True):
            for item in self._checkpoints(fresh=fresh):
                if model in _checkpoint_names(item):
                    return item["title"]
        names = ", ".join(item.get("model_name", item.get("title", "?")) for item in self._checkpoints()) or "none"
        raise PermanentProviderError(
            f"Automatic1111 at {self.base_url()} has no checkpoint {model!r} (it has: {names}); copy the file into "
            "models/Stable-diffusion and press the refresh button (or POST /sdapi/v1/refresh-checkpoints)."
        )

    def models(self) -> list[str]:
        try:
            return [item["model_name"] for item in self._checkpoints()]
        except (TransientProviderError, PermanentProviderError, ValueError, KeyError):
            return []

    def upscaler(self) -> str:
        """The configured upscaler, checked against the server's list (refreshed once if missing)."""
        name = str(self.options["upscaler"])
        url = self.base_url()
        for fresh in (False, True):
            now = time.monotonic()
            with self._lock:
                cached = self._upscalers_cache
            if fresh or not cached or cached[1] != url or now - cached[0] >= float(self.options["models_ttl"]):
                try:
                    response = self._get("/sdapi/v1/upscalers", timeout=10)
                except requests.RequestException as exc:
                    raise _unreachable(url, exc) from exc
                _raise_for(response, url)
                names = [item.get("name", "") for item in json_body(response) or [] if isinstance(item, dict)]
                cached = (now, url, names)
                with self._lock:
                    self._upscalers_cache = cached
            if name in cached[2]:
                return name
        have = ", ".join(n for n in cached[2] if n != "None") or "none"
        raise PermanentProviderError(
            f"Automatic1111 at {url} has no upscaler {name!r} (it has: {have}); set the provider's upscaler option "
            "to one of those."
        )

    # --- generating --------------------------------------------------------------------------------

    def generate(self, request: GenerationRequest, reporter: ProgressReporter) -> GeneratedImage:
        request = self.prepared(request)
        if request.edit is not None and request.edit.operation == "upscale":
            return self._upscale(request, reporter)
        url = self.base_url()
        checkpoint = self.checkpoint_title(request.model) if request.model else ""
        task_id = f"{TASK_PREFIX}{uuid.uuid4().hex[:16]})"
        body = self.payload(request, task_id, checkpoint)
        path = "/sdapi/v1/txt2img"
        if request.edit is not None:
            body.update(self.edit_fields(request))
            path = "/sdapi/v1/img2img"
        reporter.remote_id(task_id, url)
        timeout = float(self.options["timeout"])
        call = BlockingCall(lambda: self._post(path, body, timeout=(10, timeout)), name=f"a1111-{task_id}")
        interrupted = self._wait(task_id, call, reporter)
        if interrupted or reporter.cancelled():
            raise GenerationCancelled("Cancelled while Automatic1111 was generating.")
        try:
            response = call.result()
        except requests.Timeout as exc:
            raise TransientProviderError(
                f"Automatic1111 at {url} did not answer within {timeout:.0f} s; it may still be busy with other images."
            ) from exc
        except requests.RequestException as exc:
            raise _unreachable(url, exc) from exc
        _raise_for(response, url, sampler=request.sampler)
        return self._image(response, request, checkpoint, task_id, url)

    def _wait(self, task_id: str, call: BlockingCall, reporter: ProgressReporter) -> bool:
        """Report progress until the txt2img call returns; True if we interrupted our task."""
        interval = float(self.options["poll_interval"])
        interrupted = False
        shown = 0.0
        per_task = True  # until /internal/progress turns out to be missing
        with requests.Session() as session:
            while not call.wait(interval):
                state = None
                try:
                    if per_task:
                        state = self._task_state(session, task_id)
                        per_task = state is not None
                    if not per_task:
                        state = self._global_state(session)
                except (requests.RequestException, ValueError):
                    continue  # the txt2img call itself reports a dead server
                if reporter.cancelled():
                    if interrupted:
                        continue
                    if per_task and state.get("active"):
                        try:
                            self._post("/sdapi/v1/interrupt", None, timeout=5, session=session)
                        except requests.RequestException:
                            continue  # try again at the next poll
                        interrupted = True
                    elif per_task and (state.get("queued") or not state.get("completed")):
                        # Still waiting behind another job: A1111 cannot dequeue it, so interrupt
                        # it the moment it starts rather than let it spend a whole image.
                        continue
                    else:
                        if not per_task:
                            logger.warning(
                                "Automatic1111 at %s has no /internal/progress, so task %s cannot be told from "
                                "other jobs and is not interrupted; the server will finish it and the image is "
                                "discarded.",
                                self.base_url(),
                                task_id,
                            )
                        return False
                    continue
                if state:
                    # Never backwards: between two polls our task can finish and the server go idle.
                    percent, message = state["report"]
                    shown = max(shown, percent)
                    reporter.progress(shown, message)
        return interrupted

    def _task_state(self, session: requests.Session, task_id: str) -> dict[str, Any] | None:
        response = self._post(
            "/internal/progress",
            {"id_task": task_id, "id_live_preview": -1, "live_preview": False},
            timeout=5,
            session=session,
        )
        if response.status_code == 404:
            return None
        response.raise_for_status()
        data = response.json()
        if data.get("active"):
            fraction = float(data.get("progress") or 0)
            eta = data.get("eta")
            message = f"generating, {fraction:.0%}" + (f", about {eta:.0f} s left" if eta else "")
            data["report"] = (5 + 94 * fraction, message)
        elif data.get("queued"):
            data["report"] = (2, data.get("textinfo") or "waiting in Automatic1111's queue")
        elif data.get("completed"):
            data["report"] = (99, "receiving the image")
        else:
            data["report"] = (1, "waiting for Automatic1111")
        return data

    def _global_state(self, session: requests.Session) -> dict[str, Any]:
        response = self._get("/sdapi/v1/progress?skip_current_image=true", timeout=5, session=session)
        response.raise_for_status()
        data = response.json()
        server = data.get("state") or {}
        if server.get("job_count", 0) <= 0:
            return {"report": (1, "waiting for Automatic1111")}
        step, steps = server.get("sampling_step", 0), server.get("sampling_steps", 0)
        message = f"step {step}/{steps}" if steps else "generating"
        return {"report": (5 + 94 * float(data.get("progress") or 0), message)}

    def _image(
        self, response: requests.Response, request: GenerationRequest, checkpoint: str, task_id: str, url: str
    ) -> GeneratedImage:
        data = json_body(response)
        if not isinstance(data, dict):
            raise TransientProviderError(f"Automatic1111 at {url} answered with something that is not JSON.")
        images = data.get("images") or []
        if not images:
            raise PermanentProviderError(
                f"Automatic1111 at {url} returned no image (a script or extension may have removed it)."
            )
        try:
            content = decode_base64_image(images[0])
        except (binascii.Error, ValueError, TypeError) as exc:
            raise PermanentProviderError(f"Automatic1111 at {url} returned an image that is not valid base64.") from exc
        try:
            info = json.loads(data.get("info") or "{}")
        except (TypeError, ValueError):
            info = {}
        seed = info.get("seed")
        if seed is None and info.get("all_seeds"):
            seed = info["all_seeds"][0]
        extra = info.get("extra_generation_params") or {}
        infotexts = info.get("infotexts") or []
        metadata = {
            "task_id": task_id,
            "operation": request.edit.operation if request.edit else None,
            "denoising_strength": info.get("denoising_strength") if request.edit else None,
            "sampler": info.get("sampler_name", request.sampler),
            "scheduler": extra.get("Schedule type", request.scheduler),
            "sd_model_name": info.get("sd_model_name"),
            "sd_model_hash": info.get("sd_model_hash"),
            "version": info.get("version"),
            "infotext": infotexts[0][:2000] if infotexts else "",
        }
        return GeneratedImage(
            content=content,
            seed=int(seed) if seed is not None else request.seed,
            model=info.get("sd_model_name") or checkpoint or request.model,
            provider=self.alias,
            remote_id=task_id,
            remote_server=url,
            metadata={k: v for k, v in metadata.items() if v not in (None, "")},
        )

    def _upscale(self, request: GenerationRequest, reporter: ProgressReporter) -> GeneratedImage:
        edit = request.edit
        assert edit is not None
        url = self.base_url()
        upscaler = self.upscaler()
        body: dict[str, Any] = {
            "image": _b64(edit.source.content),
            "upscaler_1": upscaler,
            "show_extras_results": True,
        }
        # To a size (resize_mode 1): A1111 upscales by the larger ratio, but floors the result to
        # multiples of 8, and its crop pads that with black to the size asked; so no crop there,
        # and the last few pixels are fitted here.
        body.update(
            resize_mode=1, upscaling_resize_w=request.width, upscaling_resize_h=request.height, upscaling_crop=False
        )
        remote_id = f"{UPSCALE_PREFIX}{uuid.uuid4().hex[:16]})"
        reporter.remote_id(remote_id, url)
        timeout = float(self.options["timeout"])
        call = BlockingCall(
            lambda: self._post("/sdapi/v1/extra-single-image", body, timeout=(10, timeout)), name=f"a1111-{remote_id}"
        )
        reporter.progress(5, f"upscaling with {upscaler}")
        while not call.wait(float(self.options["poll_interval"])):
            if reporter.cancelled():
                # Extras cannot be interrupted; the server finishes and the image is dropped.
                raise GenerationCancelled("Cancelled while Automatic1111 was upscaling.")
        if reporter.cancelled():
            raise GenerationCancelled("Cancelled while Automatic1111 was upscaling.")
        try:
            response = call.result()
        except requests.Timeout as exc:
            raise TransientProviderError(
                f"Automatic1111 at {url} did not answer within {timeout:.0f} s; it may still be busy with other images."
            ) from exc
        except requests.RequestException as exc:
            raise _unreachable(url, exc) from exc
        _raise_for(response, url)
        data = json_body(response)
        value = data.get("image") if isinstance(data, dict) else None
        if not value:
            raise PermanentProviderError(f"Automatic1111 at {url} returned no upscaled image.")
        try:
            content = decode_base64_image(value)
        except (binascii.Error, ValueError, TypeError) as exc:
            raise PermanentProviderError(f"Automatic1111 at {url} returned an image that is not valid base64.") from exc
        reporter.progress(99, "receiving the image")
        metadata: dict[str, Any] = {"operation": "upscale", "upscaler": upscaler}
        if edit.scale:
            metadata["scale"] = edit.scale
        content, fitted_from = fit_to(content, request.width, request.height)
        if fitted_from:
            metadata["fitted_from"] = fitted_from
        return GeneratedImage(
            content=content,
            seed=None,
            model=upscaler,
            provider=self.alias,
            remote_id=remote_id,
            remote_server=url,
            metadata=metadata,
        )

    # --- health and cancel ---------------------------------------------------------------------------

    def health(self) -> ProviderHealth:
        url = self.base_url()
        try:
            response = self._get("/sdapi/v1/options", timeout=float(self.options["health_timeout"]))
        except requests.RequestException as exc:
            return ProviderHealth(ok=False, detail=f"Automatic1111 at {url} is unreachable ({connection_reason(exc)})")
        if response.status_code == 404:
            return ProviderHealth(ok=False, detail=f"{url} has no /sdapi/v1 API; start the web UI with --api")
        if response.status_code == 401:
            return ProviderHealth(ok=False, detail=f"Automatic1111 at {url} refused the credentials (api_auth)")
        if response.status_code >= 400:
            return ProviderHealth(ok=False, detail=f"Automatic1111 at {url} answered {response.status_code}")
        try:
            options = response.json()
        except ValueError:
            return ProviderHealth(ok=False, detail=f"{url} does not look like Automatic1111 (not JSON)")
        model = options.get("sd_model_checkpoint") or "?"
        return ProviderHealth(ok=True, detail=f"Automatic1111 at {url}, model {model}", info={"model": model})

    def cancel(self, remote_id: str, remote_server: str = "") -> bool:
        """Interrupt ``remote_id`` if it is the task A1111 is running now; interrupt is global, so never otherwise."""
        if not remote_id.startswith(TASK_PREFIX) or (remote_server and remote_server.rstrip("/") != self.base_url()):
            return False
        try:
            with requests.Session() as session:
                state = self._task_state(session, remote_id)
                if state is None or not state.get("active"):
                    return False
                self._post("/sdapi/v1/interrupt", None, timeout=5, session=session)
        except requests.RequestException as exc:
            logger.info("Could not interrupt %s on %s: %s", remote_id, self.base_url(), exc)
            return False
        return True


# --- helpers -----------------------------------------------------------------------------------------


def upscale_size(edit: EditInputs, request: GenerationRequest) -> tuple[int, int]:
    """The size an upscale makes: the source times ``edit.scale``, else the request's size."""
    if edit.scale is None:
        return request.width, request.height
    return round(edit.source.width * edit.scale), round(edit.source.height * edit.scale)


def fit_to(content: bytes, width: int, height: int) -> tuple[bytes, str]:
    """``content`` cropped to the aspect of ``width`` x ``height`` and resized to it, and the size
    it had ("" when it had that size already)."""
    from PIL import Image, ImageOps

    with Image.open(io.BytesIO(content)) as image:
        if image.size == (width, height):
            return content, ""
        was = f"{image.width}x{image.height}"
        fitted = ImageOps.fit(
            image.convert("RGBA" if "A" in image.getbands() else "RGB"), (width, height), Image.LANCZOS
        )
    return png_bytes(fitted), was


def _b64(content: bytes) -> str:
    return base64.b64encode(content).decode("ascii")


def a1111_sampler(sampler: str, scheduler: str) -> tuple[str, str]:
    """Translate ComfyUI sampler and scheduler names (or A1111's own) to what A1111 expects.

    ``dpmpp_2m`` + ``karras`` -> ("DPM++ 2M", "Karras"); A1111's older combined names
    ("DPM++ 2M Karras") are split the same way. A sampler we do not know passes through
    (an extension may add it; the server answers 404 if not). An unknown scheduler is an
    error here because A1111 would silently use "Automatic" instead.
    """
    sampler, scheduler = (sampler or "").strip(), (scheduler or "").strip()
    by_lower = {name.lower(): name for name in SAMPLER_LABELS}
    name = A1111_SAMPLERS.get(sampler.lower()) or by_lower.get(sampler.lower(), sampler)
    if name and name not in SAMPLER_LABELS:
        for label in ("Karras", "Exponential", "Polyexponential"):
            base = name[: -len(label)].strip()
            if name.endswith(f" {label}") and base in SAMPLER_LABELS:
                name, scheduler = base, scheduler or label
    if scheduler:
        labels = {label.lower(): label for label in SCHEDULER_LABELS}
        label = A1111_SCHEDULERS.get(scheduler.lower()) or labels.get(scheduler.lower())
        if label is None:
            raise PermanentProviderError(
                f"Automatic1111 has no scheduler {scheduler!r}; use one of {', '.join(sorted(A1111_SCHEDULERS))}."
            )
        scheduler = label
    return name, scheduler


def _with_loras(request: GenerationRequest) -> str:
    """A1111 applies LoRAs from ``<lora:name:strength>`` tags in the prompt, in the shared stacking order."""
    stack = build_stack(request.loras, request.extra.get("character_loras") or ())
    if not stack:
        return request.prompt
    tags = []
    for lora in stack:
        name = lora.name
        for extension in LORA_EXTENSIONS:
            if name.lower().endswith(extension):
                name = name[: -len(extension)]
                break
        tags.append(f"<lora:{name}:{lora.strength:g}>")
    return f"{request.prompt} {' '.join(tags)}"


def _checkpoint_names(item: dict[str, Any]) -> set[str]:
    title = item.get("title") or ""
    filename = (item.get("filename") or "").replace("\\", "/").rsplit("/", 1)[-1]
    names = {title, title.split(" [")[0], item.get("model_name") or "", filename, item.get("hash") or ""}
    if filename:
        names.add(filename.rsplit(".", 1)[0])
    return names - {""}


def _unreachable(url: str, exc: Exception) -> TransientProviderError:
    return TransientProviderError(
        f"Automatic1111 at {url} is unreachable ({connection_reason(exc)}); is the web UI running?"
    )


def _raise_for(response: requests.Response, url: str, *, sampler: str = "") -> None:
    """Turn an error answer into the right error kind with one readable sentence."""
    status = response.status_code
    if status < 400:
        return
    body = json_body(response)
    detail = body.get("detail") if isinstance(body, dict) else None
    if status == 401:
        raise PermanentProviderError(
            f"Automatic1111 at {url} refused the credentials; set the provider's api_auth to the server's "
            "--api-auth user:password."
        )
    if status == 404 and detail == "Sampler not found":
        raise PermanentProviderError(
            f"Automatic1111 has no sampler {sampler!r}; use one of {', '.join(SAMPLER_LABELS)}."
        )
    if status == 404 and (not detail or detail == "Not Found"):
        raise PermanentProviderError(
            f"{url} has no Automatic1111 API at {response.request.path_url.split('?')[0]}; start the web UI with --api."
        )
    if status == 422 and isinstance(detail, list):
        problems = []
        for error in detail:
            loc = [str(part) for part in error.get("loc", ()) if part != "body"]
            problems.append(f"{'.'.join(loc) or 'body'}: {error.get('msg', 'invalid')}")
        raise PermanentProviderError(f"Automatic1111 rejected the request: {'; '.join(problems)}.")
    message = detail or (body.get("errors") if isinstance(body, dict) else "") or response.text[:300] or response.reason
    message = clip(message)
    raise status_error(
        response,
        transient=f"Automatic1111 had a server error ({status}): {message}",
        permanent=f"Automatic1111 rejected the request ({status}): {message}",
    )
