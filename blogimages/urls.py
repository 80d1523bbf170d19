"""Public URLs of blogimages: the JSON API under ``api/v1/``.

Include with ``path("", include("blogimages.urls"))``; see :mod:`blogimages.api`.
"""

from __future__ import annotations

from django.urls import path, re_path

from . import api, webhooks
from .api import actions as actions_api
from .api import refine as refine_api
from .api.framework import not_found

app_name = "blogimages"
urlpatterns = [
    path("api/v1/images/generate", api.generate, name="api-generate"),
    path("api/v1/images/results", api.result_list, name="api-results"),
    path("api/v1/images/results/<int:pk>", api.result_detail, name="api-result"),
    # Approve or reject several candidates at once, all or none (blogimages.api.actions.decide).
    path("api/v1/images/results/decide", actions_api.decide, name="api-results-decide"),
    # What an editor does with one candidate, as on the review page (blogimages.api.actions).
    path("api/v1/images/results/<int:pk>/approve", api.approve, name="api-result-approve"),
    path("api/v1/images/results/<int:pk>/reject", api.reject, name="api-result-reject"),
    path("api/v1/images/results/<int:pk>/cancel", api.cancel, name="api-result-cancel"),
    path("api/v1/images/results/<int:pk>/requeue", api.requeue, name="api-result-requeue"),
    path("api/v1/images/results/<int:pk>/regenerate", api.regenerate, name="api-result-regenerate"),
    path("api/v1/images/results/<int:pk>/attach", api.attach, name="api-result-attach"),
    # Refine, variations, upscale, reference (blogimages.refining) and the live preview.
    path("api/v1/images/results/<int:pk>/refine", refine_api.refine, name="api-result-refine"),
    path("api/v1/images/results/<int:pk>/preview", refine_api.preview, name="api-result-preview"),
    path("api/v1/prompt-examples", api.prompt_examples, name="api-prompt-examples"),
    path("api/v1/prompt-examples/<int:pk>", api.prompt_example, name="api-prompt-example"),
    path("api/v1/posts/<int:pk>/generate", api.generate_for_post, name="api-post-generate"),
    # A post's sections, as the review page shows and changes them (blogimages.api.sections).
    path("api/v1/posts/<int:pk>/sections", api.section_list, name="api-sections"),
    path("api/v1/posts/<int:pk>/sections/<str:key>", api.section_detail, name="api-section"),
    path("api/v1/posts/<int:pk>/sections/<str:key>/reject", api.section_reject, name="api-section-reject"),
    path("api/v1/posts/<int:pk>/sections/<str:key>/comments", api.section_comment, name="api-section-comments"),
    path("api/v1/posts/<int:pk>/sections/<str:key>/upload", api.section_upload, name="api-section-upload"),
    path("api/v1/comfyui/status", api.comfyui_status, name="api-comfyui-status"),
    path("api/v1/drafts/prompt", api.draft_prompt, name="api-draft-prompt"),
    path("api/v1/drafts/alt-text", api.draft_alt_text, name="api-draft-alt-text"),
    # The OpenAPI 3.1 document of all of the above (blogimages.api.openapi).
    path("api/v1/openapi.json", api.openapi_document, name="api-openapi"),
    # Hosted image APIs call back here; see blogimages.webhooks.
    path("api/v1/webhooks/<str:alias>/<str:nonce>/<str:token>", webhooks.receive, name="api-webhook"),
    # Last: any other path under api/v1/ is a JSON 404, so every answer of the API is JSON.
    re_path(r"^api/v1/(?P<rest>[\s\S]*)$", not_found),
]
