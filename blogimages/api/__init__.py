"""The JSON API under ``/api/v1/``: plain Django views over the service layer.

Staff only. A request authenticates with the admin session (CSRF enforced for unsafe
methods, as in admin) or with ``Authorization: Bearer <token>`` where
``BLOGIMAGES_API_TOKENS`` maps the token to a username (no CSRF: a script holds no
cookies a third-party page could ride on). Each method needs the same Django permission
admin asks for. Every error is JSON: ``{"error": "one sentence"}``, and for bad input
``{"error": ..., "errors": {"field": ["message", ...]}}`` with status 400.

``framework`` holds what every endpoint shares (the ``@endpoint`` decorator, auth, JSON
errors, body parsing, pagination); each other module holds one group of endpoints.
"""

from __future__ import annotations

from .actions import approve, attach, cancel, regenerate, reject, requeue
from .drafts import draft_alt_text, draft_prompt
from .examples import prompt_example, prompt_examples
from .framework import ApiError, endpoint
from .generation import generate, generate_for_post
from .openapi import openapi_document
from .results import result_detail, result_json, result_list
from .sections import section_comment, section_detail, section_list, section_reject, section_upload
from .status import comfyui_status

__all__ = [
    "ApiError", "approve", "attach", "cancel", "comfyui_status", "draft_alt_text", "draft_prompt", "endpoint",
    "generate", "generate_for_post", "openapi_document", "prompt_example", "prompt_examples", "regenerate", "reject",
    "requeue", "result_detail", "result_json", "result_list", "section_comment", "section_detail", "section_list",
    "section_reject", "section_upload",
]  # fmt: skip
