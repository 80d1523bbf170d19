"""Public URLs of blogimages: the JSON API under ``api/v1/``.

Include with ``path("", include("blogimages.urls"))``; see :mod:`blogimages.api`.
"""

from __future__ import annotations

from django.urls import path

from . import api, webhooks

app_name = "blogimages"
urlpatterns = [
    path("api/v1/images/generate", api.generate, name="api-generate"),
    path("api/v1/images/results", api.result_list, name="api-results"),
    path("api/v1/images/results/<int:pk>", api.result_detail, name="api-result"),
    path("api/v1/prompt-examples", api.prompt_examples, name="api-prompt-examples"),
    path("api/v1/prompt-examples/<int:pk>", api.prompt_example, name="api-prompt-example"),
    path("api/v1/posts/<int:pk>/generate", api.generate_for_post, name="api-post-generate"),
    path("api/v1/comfyui/status", api.comfyui_status, name="api-comfyui-status"),
    path("api/v1/drafts/prompt", api.draft_prompt, name="api-draft-prompt"),
    path("api/v1/drafts/alt-text", api.draft_alt_text, name="api-draft-alt-text"),
    # Hosted image APIs call back here; see blogimages.webhooks.
    path("api/v1/webhooks/<str:alias>/<str:nonce>/<str:token>", webhooks.receive, name="api-webhook"),
]
