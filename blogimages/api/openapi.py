"""The API's OpenAPI 3.1 document, served at ``GET /api/v1/openapi.json``.

Built here by hand, next to the endpoints, and kept true by tests: ``tests/test_api_openapi.py``
validates real answers of every operation (successes and errors) against it and checks
that every route under ``api/v1/`` is described; ``tests/test_api_schemathesis.py`` runs
schemathesis against a live server with it. Change an endpoint, change its entry here.
"""

from __future__ import annotations

from copy import deepcopy
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from .. import __version__ as VERSION
from ..models import ErrorKind, Operation, ResultSource, ResultStatus, ReviewAction, ReviewStatus
from ..services import REQUEST_KEY_MAX, RESULT_ACTIONS
from .framework import DEFAULT_PAGE_SIZE, MAX_PAGE, MAX_PAGE_SIZE, json_response
from .results import DECISIONS

Schema = dict[str, Any]


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


STRING = {"type": "string"}
INTEGER = {"type": "integer"}
BOOLEAN = {"type": "boolean"}
URL = {"type": "string", "format": "uri"}
WHEN = {"type": "string", "format": "date-time"}
ID = {"type": "integer", "minimum": 1}


def obj(properties: dict[str, Schema], *, required: list[str] | None = None, extra: bool = False) -> Schema:
    """An object schema: every property required unless ``required`` says which."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
        "additionalProperties": extra,
    }


SCHEMAS: dict[str, Schema] = {
    "Error": {
        "type": "object",
        "description": "Every error: one sentence, and for bad input the sentences per field "
        "(``__all__`` for the request as a whole).",
        "properties": {
            "error": STRING,
            "errors": {"type": "object", "additionalProperties": {"type": "array", "items": STRING}},
            "budget": obj({"name": STRING, "limit": STRING, "left": STRING, "cost": STRING}),
            "results": {"type": "array", "items": ref("QueuedResult")},
            "result": ref("Result"),
        },
        "required": ["error"],
        "additionalProperties": False,
    },
    "QueuedResult": obj(
        {
            "id": ID,
            "status": {"enum": ResultStatus.values},
            "url": URL,
            "provider": STRING,
            "section": nullable(STRING),
        }
    ),
    "Result": obj(
        {
            "id": ID,
            "url": URL,
            "group": {"type": "string", "format": "uuid"},
            "status": {"enum": ResultStatus.values},
            "progress": {"type": "integer", "minimum": 0, "maximum": 100},
            "progress_message": STRING,
            "error": nullable(STRING),
            "error_kind": nullable({"enum": [kind for kind in ErrorKind.values if kind]}),
            "image_url": nullable(URL),
            "thumbnail_url": nullable(URL),
            "published_url": nullable(URL),
            "renditions": {"type": "object", "description": "width -> URL", "additionalProperties": URL},
            "width": nullable(INTEGER),
            "height": nullable(INTEGER),
            "seed": nullable(INTEGER),
            "provider": STRING,
            "provider_used": nullable(STRING),
            "model": STRING,
            "prompt": STRING,
            "final_prompt": STRING,
            "negative_prompt": STRING,
            "params": {"type": "object", "description": "The resolved settings that were sent."},
            "source": {"enum": ResultSource.values},
            "ai_generated": BOOLEAN,
            "post": nullable(STRING),
            "section": nullable(STRING),
            "prompt_example": nullable(ID),
            "is_approved": BOOLEAN,
            "decision": {"enum": list(DECISIONS)},
            "rejected_at": nullable(WHEN),
            "rejected_by": nullable(STRING),
            "rejection_comment": nullable(STRING),
            "operation": {"enum": Operation.values},
            "parent": nullable(ID),
            "created_at": WHEN,
            "queued_at": nullable(WHEN),
            "started_at": nullable(WHEN),
            "finished_at": nullable(WHEN),
            "actions": {
                "type": "array",
                "description": "What this user may do with it now, as the review page offers.",
                "items": {"enum": list(RESULT_ACTIONS)},
            },
        }
    ),
    "Page": obj(
        {
            "count": {"type": "integer", "minimum": 0},
            "page": {"type": "integer", "minimum": 1},
            "pages": {"type": "integer", "minimum": 1},
            "page_size": {"type": "integer", "minimum": 1},
            "next": nullable(URL),
            "previous": nullable(URL),
        }
    ),
    "GenerateRequest": {
        "type": "object",
        "description": "A prompt (or a prompt example that has one) and what to make it with. The "
        "settings may also be given at the top level.",
        "properties": {
            "prompt": STRING,
            "provider": STRING,
            "providers": {"type": "array", "items": STRING, "maxItems": 8},
            "settings": ref("Settings"),
            "prompt_example": nullable(INTEGER),
            "style": nullable(INTEGER),
            "format": nullable(INTEGER),
            "setting": nullable(INTEGER),
            "section": nullable({"anyOf": [STRING, INTEGER]}),
            "post": nullable({"anyOf": [STRING, INTEGER]}),
            "candidates": INTEGER,
        },
        "additionalProperties": False,
    },
    "Settings": obj(
        {
            "width": INTEGER,
            "height": INTEGER,
            "steps": INTEGER,
            "seed": INTEGER,
            "guidance_scale": {"type": "number"},
            "sampler": STRING,
            "scheduler": STRING,
            "model": STRING,
            "negative_prompt": STRING,
        },
        required=[],
    ),
    "GenerateResponse": obj(
        {"results": {"type": "array", "items": ref("QueuedResult")}, "group": nullable({"type": "string"})}
    ),
    "PostGenerateRequest": obj({"provider": nullable(STRING), "only_missing": BOOLEAN}, required=[]),
    "PostGenerateResponse": obj(
        {
            "post": STRING,
            "results": {"type": "array", "items": ref("QueuedResult")},
            "skipped": {
                "type": "array",
                "items": obj({"section": STRING, "title": STRING, "reason": STRING}),
            },
        }
    ),
    "PromptExample": obj(
        {
            "id": ID,
            "url": URL,
            "name": STRING,
            "prompt": STRING,
            "style": nullable(INTEGER),
            "format": nullable(INTEGER),
            "setting": nullable(INTEGER),
            "provider": STRING,
            "model": STRING,
            "notes": STRING,
            "created_by": nullable(STRING),
            "created_at": WHEN,
            "updated_at": WHEN,
        }
    ),
    "PromptExampleInput": obj(
        {
            "name": STRING,
            "prompt": nullable(STRING),
            "style": nullable(INTEGER),
            "format": nullable(INTEGER),
            "setting": nullable(INTEGER),
            "provider": nullable(STRING),
            "model": nullable(STRING),
            "notes": nullable(STRING),
        },
        required=[],
        # The read-only fields of PromptExample are accepted and ignored, so a GET's answer can be sent back.
        extra=True,
    ),
    "ComfyStatus": obj(
        {
            "providers": {
                "type": "object",
                "additionalProperties": obj({"ok": BOOLEAN, "detail": STRING, "info": {}}),
            }
        }
    ),
    "DraftPromptRequest": obj({"post": {"anyOf": [STRING, INTEGER]}, "section": {"anyOf": [STRING, INTEGER]}}),
    "DraftPromptResponse": obj({"post": STRING, "section": STRING, "prompt": STRING, "model": STRING}),
    "DraftAltTextRequest": obj({"result": INTEGER}),
    "DraftAltTextResponse": obj({"result": ID, "alt_text": STRING, "model": STRING}),
    "ApproveRequest": obj(
        {
            "alt_text": nullable(STRING),
            "comment": nullable(STRING),
            "replaces": nullable(INTEGER),
        },
        required=[],
    ),
    "RejectRequest": obj({"comment": STRING}),
    "DecideRequest": obj(
        {
            "decision": {"enum": ["approve", "reject"]},
            "ids": {"type": "array", "items": ID, "minItems": 1, "maxItems": 500},
            "comment": STRING,
        },
        required=["decision", "ids"],
    ),
    "DecideResponse": obj(
        {
            "message": STRING,
            "decision": {"enum": ["approve", "reject"]},
            "results": {"type": "array", "items": ref("Result")},
            "replaced": {"type": "array", "items": obj({"result": ID, "replaced": ID})},
            "warnings": {"type": "array", "items": STRING},
        }
    ),
    "RegenerateRequest": obj({"same_seed": BOOLEAN}, required=[]),
    "AttachRequest": obj({"post": {"anyOf": [STRING, INTEGER]}, "section": {"anyOf": [STRING, INTEGER]}}),
    "Empty": obj({}, required=[]),
    "ActionResponse": obj(
        {
            "message": STRING,
            "result": ref("Result"),
            "replaced": nullable(ID),
            "unchanged": BOOLEAN,
            "warnings": {"type": "array", "items": STRING},
            "regenerated_from": ID,
        },
        required=["message", "result"],
    ),
    "Event": obj(
        {
            "action": {"enum": ReviewAction.values},
            "user": nullable(STRING),
            "result": nullable(ID),
            "comment": STRING,
            "created_at": WHEN,
        }
    ),
    "Section": obj(
        {
            "post": STRING,
            "section": STRING,
            "url": URL,
            "title": STRING,
            "removed": BOOLEAN,
            "status": {"enum": ReviewStatus.values},
            "approved_result": nullable(ID),
            "alt_text": STRING,
            "prompt": STRING,
            "prompt_source": STRING,
            "prompt_override": STRING,
            "comment": STRING,
            "reviewed_by": nullable(STRING),
            "reviewed_at": nullable(WHEN),
            "results": {**URL, "description": "The section's results (GET)."},
            "history": {"type": "array", "items": ref("Event"), "description": "Newest first, at most 20."},
        },
        required=[
            "post",
            "section",
            "url",
            "title",
            "removed",
            "status",
            "approved_result",
            "alt_text",
            "prompt",
            "prompt_source",
            "prompt_override",
            "comment",
            "reviewed_by",
            "reviewed_at",
            "results",
        ],  # fmt: skip
    ),
    "SectionList": obj({"post": STRING, "title": STRING, "sections": {"type": "array", "items": ref("Section")}}),
    "SectionPatch": obj({"prompt": STRING, "alt_text": STRING}, required=[]),
    "CommentRequest": obj({"comment": STRING}),
    "CommentResponse": obj({"message": STRING, "event": ref("Event"), "section": ref("Section")}),
    "SectionRejectResponse": obj({"message": STRING, "section": ref("Section")}),
    "UploadForm": obj(
        {
            "file": {"type": "string", "contentMediaType": "application/octet-stream"},
            "approve_now": {"type": "string", "enum": ["true", "false", "1", "0", "on", "off", "yes", "no", ""]},
            "alt_text": STRING,
        },
        required=["file"],
    ),
    "UploadResponse": obj(
        {
            "message": STRING,
            "result": ref("Result"),
            "section": ref("Section"),
            "warnings": {"type": "array", "items": STRING},
        }
    ),
    # blogimages.api.refine (refining a result, its live preview).
    "RefineRequest": obj(
        {
            "operation": {"enum": [op for op in Operation.values if op != "generate"]},
            "instruction": nullable(STRING),
            "mask": nullable({**STRING, "description": "A PNG as base64 or a data: URL."}),
            "strength": nullable({"type": "number"}),
            "fidelity": nullable(STRING),
            "scale": nullable({"type": "number"}),
            "provider": nullable(STRING),
            "candidates": INTEGER,
        },
        required=["operation"],
    ),
    "RefineForm": obj(
        {
            "operation": STRING,
            "instruction": STRING,
            "mask": {"type": "string", "contentMediaType": "application/octet-stream"},
            "strength": STRING,
            "fidelity": STRING,
            "scale": STRING,
            "provider": STRING,
            "candidates": STRING,
        },
        required=["operation"],
    ),
    "RefineResponse": obj(
        {"parent": ID, "operation": STRING, "results": {"type": "array", "items": ref("QueuedResult")}}
    ),
    "WebhookAnswer": obj({"ok": BOOLEAN, "detail": STRING}),
}
SCHEMAS["ResultPage"] = {
    **deepcopy(SCHEMAS["Page"]),
    "properties": {**SCHEMAS["Page"]["properties"], "results": {"type": "array", "items": ref("Result")}},
    "required": [*SCHEMAS["Page"]["required"], "results"],
}
SCHEMAS["PromptExamplePage"] = {
    **deepcopy(SCHEMAS["Page"]),
    "properties": {**SCHEMAS["Page"]["properties"], "results": {"type": "array", "items": ref("PromptExample")}},
    "required": [*SCHEMAS["Page"]["required"], "results"],
}
SCHEMAS["GenerateRequest"]["properties"].update(SCHEMAS["Settings"]["properties"])

ERRORS = {
    400: "Bad input: ``errors`` names each field at fault (NUL characters, lone surrogates, over-long text, "
    "JSON nested too deeply, impossible dates and out-of-range numbers included).",
    401: "Not logged in, or no valid Bearer token.",
    402: "The month's budget cannot pay for it (``budget`` says which and how much is left).",
    403: "Not staff, a permission is missing (named), the host refuses it, or the CSRF check failed.",
    404: "No such object.",
    409: "Not in this state: the move is not allowed now, or someone else decided first.",
    413: "The request body is too large.",
    502: "The writer answered with an error or nonsense.",
    503: "The job queue (Redis) or the file storage is unavailable; nothing was lost.",
    504: "The writer did not answer in time.",
}


def _json(schema: Schema) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _error(status: int) -> dict[str, Any]:
    return {"description": ERRORS[status], "content": _json(ref("Error"))}


def _headers(*names: str) -> dict[str, Any]:
    known = {
        "Location": {"description": "The new result's URL.", "schema": URL},
        "Idempotent-Replayed": {
            "description": "``true``: the answer of an earlier request with the same Idempotency-Key.",
            "schema": {"enum": ["true"]},
        },
    }
    return {name: known[name] for name in names}


def operation(
    summary: str,
    tag: str,
    ok: dict[int, tuple[str, Schema | None]],
    errors: tuple[int, ...],
    *,
    body: Schema | None = None,
    body_required: bool = True,
    form: Schema | None = None,
    parameters: list[dict[str, Any]] | None = None,
    headers: tuple[str, ...] = (),
    description: str = "",
    public: bool = False,
    op_id: str,
) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status, (text, schema) in ok.items():
        responses[str(status)] = {"description": text}
        if schema is not None:
            responses[str(status)]["content"] = _json(schema)
        if headers and status < 300:
            responses[str(status)]["headers"] = _headers(*headers)
    for status in sorted({400, 401, 403, *errors} - ({401, 403} if public else set())):
        responses[str(status)] = _error(status)
    op: dict[str, Any] = {"operationId": op_id, "summary": summary, "tags": [tag], "responses": responses}
    if description:
        op["description"] = description
    if parameters:
        op["parameters"] = parameters
    if body is not None or form is not None:
        content = {}
        if body is not None:
            content["application/json"] = {"schema": body}
        if form is not None:
            content["multipart/form-data"] = {"schema": form}
        op["requestBody"] = {"required": body_required, "content": content}
    if public:
        op["security"] = []
    return op


def path_id(name: str = "pk", what: str = "result") -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": f"The {what}'s id.", "schema": ID}


SECTION_KEY = {
    "name": "key",
    "in": "path",
    "required": True,
    "description": "The section's key (the host's: a row id, a block id).",
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]+$"},
}
IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "The same key sent again (within 24 hours, by the same user) gets the first request's "
    "answer and makes nothing new.",
    "schema": {"type": "string", "pattern": "^[!-~]+$", "maxLength": REQUEST_KEY_MAX},
}
PAGE_PARAMETERS = [
    {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 1}},
    {
        "name": "page_size",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE, "default": DEFAULT_PAGE_SIZE},
    },
]


def _query(name: str, description: str, schema: Schema | None = None) -> dict[str, Any]:
    return {"name": name, "in": "query", "description": description, "schema": schema or STRING}


RESULT_LIST_PARAMETERS = [
    _query("status", "Comma-separated statuses: " + ", ".join(ResultStatus.values) + "."),
    _query("provider", "The provider alias asked for or used."),
    _query("model", "The model, exactly."),
    _query("decision", "approved, rejected or undecided.", {"enum": list(DECISIONS)}),
    _query("post", "The post's id."),
    _query("section", "The section's key."),
    _query("group", "The comparison group (a UUID).", {"type": "string", "format": "uuid"}),
    _query("style", "The style's id.", {"type": "integer", "minimum": 1}),
    _query("requested_by", "Who asked for it (a username)."),
    _query("since", "Made at or after this ISO 8601 date or time.", {"type": "string", "format": "date-time"}),
    _query("until", "Made before this ISO 8601 date or time.", {"type": "string", "format": "date-time"}),
    *PAGE_PARAMETERS,
]

ACTION_TAG = "Candidates"


def build_paths() -> dict[str, Any]:
    ok_result = {200: ("What was done, and the result now.", ref("ActionResponse"))}
    queued_result = {202: ("What was queued, and the result now.", ref("ActionResponse"))}
    return {
        "/api/v1/images/generate": {
            "post": operation(
                "Queue images for a prompt, with one or more providers",
                "Generation",
                {202: ("Queued (or, with a repeated Idempotency-Key, queued earlier).", ref("GenerateResponse"))},
                (402, 403, 413, 503),
                body=ref("GenerateRequest"),
                parameters=[IDEMPOTENCY_KEY],
                headers=("Location", "Idempotent-Replayed"),
                op_id="generate",
            )
        },
        "/api/v1/images/results": {
            "get": operation(
                "Results, newest first, filtered as the review page and the gallery filter them",
                "Results",
                {200: ("A page of results.", ref("ResultPage"))},
                (),
                parameters=RESULT_LIST_PARAMETERS,
                op_id="listResults",
            )
        },
        "/api/v1/images/results/{pk}": {
            "get": operation(
                "One result, with what this user may do with it",
                "Results",
                {200: ("The result.", ref("Result"))},
                (404,),
                parameters=[path_id()],
                op_id="getResult",
            )
        },
        "/api/v1/images/results/decide": {
            "post": operation(
                "Approve or reject several candidates at once, all or none",
                ACTION_TAG,
                {200: ("What was decided, and the results now.", ref("DecideResponse"))},
                (404, 409, 413),
                body=ref("DecideRequest"),
                description="As the review page's “Approve selected” and “Reject selected”: a rejection needs "
                "``comment`` (it goes on every candidate); only one candidate per section can be approved. "
                "When one is refused, nothing is decided. Approving images whose sections have no alt text "
                "publishes them and says so in ``warnings``.",
                op_id="decideResults",
            )
        },
        "/api/v1/images/results/{pk}/approve": {
            "post": operation(
                "Approve a candidate as its section's image",
                ACTION_TAG,
                ok_result,
                (404, 409, 413),
                body=ref("ApproveRequest"),
                body_required=False,
                parameters=[path_id()],
                description="``replaces``: the approved result the client saw (null: none); if the approval "
                "changed since, 409 says who changed it. ``alt_text`` is saved with the approval.",
                op_id="approveResult",
            )
        },
        "/api/v1/images/results/{pk}/reject": {
            "post": operation(
                "Reject a candidate (a comment is required)",
                ACTION_TAG,
                ok_result,
                (404, 409, 413),
                body=ref("RejectRequest"),
                parameters=[path_id()],
                op_id="rejectResult",
            )
        },
        "/api/v1/images/results/{pk}/cancel": {
            "post": operation(
                "Cancel a queued or running result",
                ACTION_TAG,
                ok_result,
                (404, 409, 413),
                body=ref("Empty"),
                body_required=False,
                parameters=[path_id()],
                op_id="cancelResult",
            )
        },
        "/api/v1/images/results/{pk}/requeue": {
            "post": operation(
                "Send a failed, cancelled or stranded result to the queue again",
                ACTION_TAG,
                queued_result,
                (402, 404, 409, 413, 503),
                body=ref("Empty"),
                body_required=False,
                parameters=[path_id()],
                op_id="requeueResult",
            )
        },
        "/api/v1/images/results/{pk}/regenerate": {
            "post": operation(
                "A new candidate with the same settings (a new seed unless same_seed)",
                ACTION_TAG,
                queued_result,
                (402, 404, 409, 413, 503),
                body=ref("RegenerateRequest"),
                body_required=False,
                parameters=[path_id(), IDEMPOTENCY_KEY],
                headers=("Location", "Idempotent-Replayed"),
                op_id="regenerateResult",
            )
        },
        "/api/v1/images/results/{pk}/attach": {
            "post": operation(
                "Send a finished playground result to a section, as one of its candidates",
                ACTION_TAG,
                ok_result,
                (404, 409, 413),
                body=ref("AttachRequest"),
                parameters=[path_id()],
                op_id="attachResult",
            )
        },
        "/api/v1/images/results/{pk}/refine": {
            "post": operation(
                "Refine, vary, upscale or re-prompt with a reference (blogimages.refining)",
                ACTION_TAG,
                {202: ("Queued.", ref("RefineResponse"))},
                (402, 404, 409, 413, 503),
                body=ref("RefineRequest"),
                form=ref("RefineForm"),
                parameters=[path_id(), IDEMPOTENCY_KEY],
                headers=("Location", "Idempotent-Replayed"),
                op_id="refineResult",
            )
        },
        "/api/v1/images/results/{pk}/preview": {
            "get": {
                **operation(
                    "The newest partial image of a running result",
                    "Results",
                    {},
                    (404,),
                    parameters=[path_id()],
                    op_id="previewResult",
                ),
            }
        },
        "/api/v1/prompt-examples": {
            "get": operation(
                "Prompt examples",
                "Library",
                {200: ("A page of prompt examples.", ref("PromptExamplePage"))},
                (),
                parameters=PAGE_PARAMETERS,
                op_id="listPromptExamples",
            ),
            "post": operation(
                "Add a prompt example",
                "Library",
                {201: ("Created.", ref("PromptExample"))},
                (413,),
                body=ref("PromptExampleInput"),
                op_id="createPromptExample",
            ),
        },
        "/api/v1/prompt-examples/{pk}": {
            "get": operation(
                "One prompt example",
                "Library",
                {200: ("The prompt example.", ref("PromptExample"))},
                (404,),
                parameters=[path_id(what="prompt example")],
                op_id="getPromptExample",
            ),
            "put": operation(
                "Replace a prompt example",
                "Library",
                {200: ("Saved.", ref("PromptExample"))},
                (404, 413),
                body=ref("PromptExampleInput"),
                parameters=[path_id(what="prompt example")],
                op_id="replacePromptExample",
            ),
            "patch": operation(
                "Change some fields of a prompt example",
                "Library",
                {200: ("Saved.", ref("PromptExample"))},
                (404, 413),
                body=ref("PromptExampleInput"),
                parameters=[path_id(what="prompt example")],
                op_id="updatePromptExample",
            ),
            "delete": operation(
                "Delete a prompt example",
                "Library",
                {204: ("Deleted.", None)},
                (404,),
                parameters=[path_id(what="prompt example")],
                op_id="deletePromptExample",
            ),
        },
        "/api/v1/posts/{pk}/generate": {
            "post": operation(
                "Queue an image for each section of a post (or each without an approved image)",
                "Generation",
                {
                    200: ("Nothing was queued (every section was skipped).", ref("PostGenerateResponse")),
                    202: ("Queued.", ref("PostGenerateResponse")),
                },
                (402, 404, 413, 503),
                body=ref("PostGenerateRequest"),
                body_required=False,
                parameters=[path_id(what="post"), IDEMPOTENCY_KEY],
                headers=("Idempotent-Replayed",),
                op_id="generateForPost",
            )
        },
        "/api/v1/posts/{pk}/sections": {
            "get": operation(
                "A post's sections as the review page shows them (removed ones last)",
                "Sections",
                {200: ("The sections.", ref("SectionList"))},
                (404,),
                parameters=[path_id(what="post")],
                op_id="listSections",
            )
        },
        "/api/v1/posts/{pk}/sections/{key}": {
            "get": operation(
                "One section: its prompt, decision, alt text and history",
                "Sections",
                {200: ("The section.", ref("Section"))},
                (404,),
                parameters=[path_id(what="post"), SECTION_KEY],
                op_id="getSection",
            ),
            "patch": operation(
                "Save the section's prompt override and/or its approved image's alt text",
                "Sections",
                {200: ("Saved; the section now.", ref("Section"))},
                (404, 409, 413),
                body=ref("SectionPatch"),
                parameters=[path_id(what="post"), SECTION_KEY],
                op_id="updateSection",
            ),
        },
        "/api/v1/posts/{pk}/sections/{key}/reject": {
            "post": operation(
                "Reject the section's images as a whole (a comment is required)",
                "Sections",
                {200: ("Rejected; the section now.", ref("SectionRejectResponse"))},
                (404, 409, 413),
                body=ref("CommentRequest"),
                parameters=[path_id(what="post"), SECTION_KEY],
                op_id="rejectSection",
            )
        },
        "/api/v1/posts/{pk}/sections/{key}/comments": {
            "post": operation(
                "Add a comment to the section's history",
                "Sections",
                {201: ("Added.", ref("CommentResponse"))},
                (404, 413),
                body=ref("CommentRequest"),
                parameters=[path_id(what="post"), SECTION_KEY],
                op_id="commentSection",
            )
        },
        "/api/v1/posts/{pk}/sections/{key}/upload": {
            "post": operation(
                "Upload an image as a candidate (and approve it now, with its alt text)",
                "Sections",
                {
                    200: ("The earlier upload with this Idempotency-Key.", ref("UploadResponse")),
                    201: ("Stored.", ref("UploadResponse")),
                },
                (404, 409, 413, 503),
                form=ref("UploadForm"),
                parameters=[path_id(what="post"), SECTION_KEY, IDEMPOTENCY_KEY],
                headers=("Location", "Idempotent-Replayed"),
                op_id="uploadToSection",
            )
        },
        "/api/v1/comfyui/status": {
            "get": operation(
                "The health of each provider that runs ComfyUI workflows",
                "Status",
                {200: ("Each provider's health.", ref("ComfyStatus"))},
                (),
                op_id="comfyuiStatus",
            )
        },
        "/api/v1/drafts/prompt": {
            "post": operation(
                "Draft a section's prompt with the writer (BLOGIMAGES_WRITER); nothing is saved",
                "Drafts",
                {200: ("The draft.", ref("DraftPromptResponse"))},
                (404, 413, 502, 503, 504),
                body=ref("DraftPromptRequest"),
                op_id="draftPrompt",
            )
        },
        "/api/v1/drafts/alt-text": {
            "post": operation(
                "Draft an image's alt text with the writer; nothing is saved",
                "Drafts",
                {200: ("The draft.", ref("DraftAltTextResponse"))},
                (404, 413, 502, 503, 504),
                body=ref("DraftAltTextRequest"),
                op_id="draftAltText",
            )
        },
        "/api/v1/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document",
                "tags": ["Status"],
                "security": [],
                "responses": {"200": {"description": "The OpenAPI 3.1 document.", "content": _json({})}},
            }
        },
        "/api/v1/webhooks/{alias}/{nonce}/{token}": {
            "post": {
                "operationId": "receiveWebhook",
                "summary": "Hosted image APIs report a finished job here (the URL's token and the "
                "provider's signature authenticate the call)",
                "tags": ["Webhooks"],
                "security": [],
                "parameters": [
                    {
                        "name": name,
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]+$"},
                    }
                    for name in ("alias", "nonce", "token")
                ],
                "requestBody": {"required": True, "content": {"application/json": {"schema": {}}}},
                "responses": {
                    str(status): {"description": text, "content": _json(ref("WebhookAnswer"))}
                    for status, text in (
                        (200, "Filed for the job that waits for it."),
                        (400, "The body is not JSON."),
                        (403, "The URL or the signature is not this site's."),
                        (404, "No such hosted provider."),
                        (503, "The queue's Redis is unavailable."),
                    )
                },
            }
        },
    }


def _preview_responses(paths: dict[str, Any]) -> None:
    preview = paths["/api/v1/images/results/{pk}/preview"]["get"]
    preview["responses"] = {
        "200": {
            "description": "The newest partial image (WebP, at most 512 px).",
            "headers": {"X-Preview-Count": {"description": "How many previews so far.", "schema": INTEGER}},
            "content": {"image/webp": {"schema": {"type": "string", "contentMediaType": "image/webp"}}},
        },
        **preview["responses"],
    }


def build_document(server_url: str = "/") -> dict[str, Any]:
    paths = build_paths()
    _preview_responses(paths)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "blogimages API",
            "version": VERSION,
            "description": "Generate, review and publish a blog's images. Staff only: log in to admin "
            "(send the X-CSRFToken header on unsafe methods) or send ``Authorization: Bearer <token>`` "
            '(BLOGIMAGES_API_TOKENS). Every error is JSON: ``{"error": sentence}``, and for bad input '
            'also ``{"errors": {field: [sentences]}}`` with status 400.',
        },
        "servers": [{"url": server_url}],
        "security": [{"bearerAuth": []}, {"sessionAuth": []}],
        "tags": [
            {"name": name}
            for name in ("Generation", "Results", "Candidates", "Sections", "Library", "Drafts", "Status", "Webhooks")
        ],  # fmt: skip
        "paths": paths,
        "components": {
            "schemas": deepcopy(SCHEMAS),
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "description": "BLOGIMAGES_API_TOKENS"},
                "sessionAuth": {"type": "apiKey", "in": "cookie", "name": "sessionid"},
            },
        },
    }


@require_GET
def openapi_document(request: HttpRequest) -> HttpResponse:
    """The document, public like any API description (it names no data); the server URL is
    where this site mounts blogimages' URLs."""
    from django.urls import reverse

    base = reverse("blogimages:api-openapi").removesuffix("api/v1/openapi.json")
    return json_response(build_document(request.build_absolute_uri(base).rstrip("/") or "/"))
