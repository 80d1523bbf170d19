"""``GET /api/v1/comfyui/status``: the health of each provider that runs ComfyUI workflows."""

from __future__ import annotations

import json

from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpRequest, HttpResponse

from .. import status
from .framework import PERM_VIEW_RESULT, endpoint, json_response


@endpoint({"GET": (PERM_VIEW_RESULT,)})
def comfyui_status(request: HttpRequest) -> HttpResponse:
    """``health()`` of each provider whose class says it runs ComfyUI workflows, checked in parallel."""
    rows = status.provider_health(status.aliases_where(runs_comfyui=True))
    return json_response(
        {
            "providers": {
                row.alias: {
                    "ok": row.ok,
                    "detail": row.detail,
                    # Whatever a health check put in ``info`` becomes plain JSON (dates as text, ...).
                    "info": json.loads(json.dumps(row.info, cls=DjangoJSONEncoder, default=str)),
                }
                for row in sorted(rows, key=lambda row: row.alias)
            }
        }
    )
