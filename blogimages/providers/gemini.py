"""Google's Gemini image models through the Gemini API's ``generateContent``.

* ``POST {base}/models/{model}:generateContent`` with header ``x-goog-api-key`` and
  ``{"contents": [{"parts": [{"text": prompt}]}], "generationConfig":
  {"responseModalities": ["IMAGE"], "imageConfig": {"aspectRatio": "16:9"}}}``
  (request body: https://docs.cloud.google.com/gemini-enterprise-agent-platform/reference/models/inference;
  ``imageConfig``: https://firebase.google.com/docs/reference/js/ai.imageconfig).
* The image comes back inline: ``candidates[0].content.parts[].inlineData`` ``{"mimeType",
  "data"}`` (base64). There is no job and no result URL; the call is synchronous, so a
  cancel can only stop our waiting (Google may still bill for the image).
* Aspect ratios 1:1, 2:3, 3:2, 3:4, 4:3, 4:5, 5:4, 9:16, 16:9, 21:9; ``imageSize``
  1K, 2K or 4K on the models that take it
  (https://googleapis.github.io/js-genai/release_docs/interfaces/interactions_client.GeminiNextGenAPIClient.Interactions.ImageConfig.html).
* Safety: a blocked prompt has ``promptFeedback.blockReason``; a blocked image a
  candidate whose ``finishReason`` is ``SAFETY``, ``IMAGE_SAFETY``, ``PROHIBITED_CONTENT``
  and kin, with no image. Both are permanent.
* Errors are ``{"error": {"code", "message", "status", "details"}}``; 429
  ``RESOURCE_EXHAUSTED`` carries its wait as ``Retry-After`` or a ``RetryInfo`` detail's
  ``retryDelay`` ("37s").
"""

from __future__ import annotations

import binascii
import math
import re
import time
from typing import Any

import requests

from ..contract import GeneratedImage, GenerationRequest, ProgressReporter, ProviderHealth
from ..exceptions import GenerationCancelled, PermanentProviderError, ProviderError, TransientProviderError
from ..remote import BlockingCall, clip, connection_reason, decode_base64_image, image_type, json_body
from .hosted import HostedProvider

RATIOS = ["1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9"]
DEFAULT_MODELS: dict[str, dict[str, Any]] = {
    "gemini-2.5-flash-image": {"label": "Gemini 2.5 Flash Image", "aspect_ratios": RATIOS, "seed": False},
    "gemini-3-pro-image-preview": {
        "label": "Gemini 3 Pro Image (preview)",
        "aspect_ratios": RATIOS,
        "image_sizes": ["1K", "2K", "4K"],
        "seed": False,
    },
}
SAFETY_FINISH = {
    "SAFETY",
    "IMAGE_SAFETY",
    "PROHIBITED_CONTENT",
    "IMAGE_PROHIBITED_CONTENT",
    "BLOCKLIST",
    "SPII",
    "RECITATION",
}
POLL_EVERY = 0.25
_SECONDS = re.compile(r"^(\d+(?:\.\d+)?)s$")


class GeminiProvider(HostedProvider):
    label = "Gemini (Google)"
    kind = "gemini"
    service = "Gemini"
    key_names = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
    default_models = DEFAULT_MODELS
    default_options = {
        "api_key": None,  # None: settings / env GEMINI_API_KEY, then GOOGLE_API_KEY
        "base_url": "https://generativelanguage.googleapis.com/v1beta",
        "model": "gemini-2.5-flash-image",
        "models": {},
        "timeout": 180.0,  # seconds for one image
        "health_timeout": 5.0,
    }

    def looks_like_ours(self, model: str) -> bool:
        return model.startswith("gemini-")

    def headers(self, key: str) -> dict[str, str]:
        return {"x-goog-api-key": key}

    def body(self, request: GenerationRequest) -> dict[str, Any]:
        image_config: dict[str, Any] = {"aspectRatio": request.extra.get("aspect_ratio", "1:1")}
        if request.extra.get("image_size"):
            image_config["imageSize"] = request.extra["image_size"]
        return {
            "contents": [{"role": "user", "parts": [{"text": request.prompt}]}],
            "generationConfig": {"responseModalities": ["IMAGE"], "imageConfig": image_config},
        }

    def generate(self, request: GenerationRequest, reporter: ProgressReporter) -> GeneratedImage:
        request = self.prepared(request)
        key = self.require_key()
        if reporter.cancelled():
            raise GenerationCancelled("Cancelled before the request was sent to Gemini.")
        url = f"{self.base_url()}/models/{request.model}:generateContent"
        body = self.body(request)
        timeout = float(self.options["timeout"])

        def send() -> requests.Response:
            return requests.post(url, json=body, headers=self.headers(key), timeout=timeout)

        reporter.progress(2, f"sent to Gemini ({request.model})")
        started = time.monotonic()
        # Run the call aside so this thread heartbeats and notices a cancel.
        call = BlockingCall(send, name=f"blogimages-gemini-{request.result_id}")
        while not call.wait(POLL_EVERY):
            if reporter.cancelled():
                raise GenerationCancelled("Cancelled while Gemini was generating (Google may still bill for it).")
            elapsed = time.monotonic() - started
            reporter.progress(5 + 85 * (1 - math.exp(-elapsed / 20)), f"Gemini is drawing ({elapsed:.0f} s)")
        try:
            response = call.result()
        except requests.Timeout as exc:
            raise TransientProviderError(f"Gemini did not answer within {timeout:g} seconds.") from exc
        except requests.RequestException as exc:
            raise TransientProviderError(f"Gemini could not be reached ({connection_reason(exc)}).") from exc
        if response.status_code >= 400:
            raise self.error_for(response, "generating the image")
        data = json_body(response)
        content, mime, text = self._image(data)
        metadata = {
            "aspect_ratio": request.extra.get("aspect_ratio"),
            "image_size": request.extra.get("image_size"),
            "mime_type": mime,
            "text": clip(text, 500) if text else None,
            "usage": (data or {}).get("usageMetadata"),
            "model_version": (data or {}).get("modelVersion"),
            "seconds": round(time.monotonic() - started, 2),
        }
        reporter.progress(100, "received from Gemini")
        return GeneratedImage(
            content=content,
            model=request.model,
            provider=self.alias,
            metadata={k: v for k, v in metadata.items() if v not in (None, "")},
        )

    def _image(self, data: Any) -> tuple[bytes, str, str]:
        if not isinstance(data, dict):
            raise TransientProviderError("Gemini answered with something that is not JSON.")
        feedback = data.get("promptFeedback") or {}
        if feedback.get("blockReason"):
            raise self.safety_error(f"prompt blocked: {feedback['blockReason']}")
        candidates = data.get("candidates") or []
        texts = []
        for candidate in candidates:
            for part in (candidate.get("content") or {}).get("parts") or []:
                inline = part.get("inlineData") or part.get("inline_data")
                if inline and inline.get("data"):
                    try:
                        content = decode_base64_image(inline["data"])
                    except (binascii.Error, ValueError) as exc:
                        raise PermanentProviderError("Gemini sent an image that is not valid base64.") from exc
                    if not image_type(content):
                        raise PermanentProviderError("Gemini sent data that is not a PNG, JPEG or WebP image.")
                    return content, str(inline.get("mimeType") or image_type(content)), " ".join(texts)
                if part.get("text"):
                    texts.append(part["text"])
        reasons = {str(c.get("finishReason") or "") for c in candidates}
        blocked = reasons & SAFETY_FINISH
        if blocked:
            raise self.safety_error(f"finish reason {', '.join(sorted(blocked))}")
        said = f": {clip(' '.join(texts), 200)}" if texts else ""
        finish = ", ".join(sorted(r for r in reasons if r)) or "none"
        raise PermanentProviderError(f"Gemini answered without an image (finish reason {finish}){said}.")

    def error_text(self, body: Any) -> str:
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            return clip(f"{error.get('status') or ''} {error.get('message') or ''}".strip(), 300)
        return super().error_text(body)

    def error_for(self, response: requests.Response, doing: str) -> ProviderError:
        error = super().error_for(response, doing)
        if response.status_code == 429 and error.retry_after is None:
            error.retry_after = _retry_delay(json_body(response))
        if response.status_code == 403 and not isinstance(error, TransientProviderError):
            return PermanentProviderError(f"Gemini refused the API key (403): {self.error_text(json_body(response))}.")
        return error

    def check_health(self, info: dict[str, Any]) -> ProviderHealth:
        # Reading the model's description is free and fails on a bad key.
        return self.health_get(f"{self.base_url()}/models/{self.options['model']}", info, self.headers(self.api_key()))


def _retry_delay(body: Any) -> float | None:
    """``retryDelay`` ("37s") from a RetryInfo detail of a Google API error."""
    error = body.get("error") if isinstance(body, dict) else None
    details = error.get("details") if isinstance(error, dict) else None
    for detail in details or []:
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            match = _SECONDS.match(str(detail.get("retryDelay") or ""))
            if match:
                return float(match.group(1))
    return None
