"""Prompt examples: list, create, read, update and delete."""

from __future__ import annotations

from typing import Any

from django import forms
from django.http import HttpRequest, HttpResponse
from django.urls import reverse

from ..models import ImagePromptExample
from .framework import ApiError, Errors, endpoint, invalid, is_int, json_response, paginate, read_body, unknown_fields


class PromptExampleForm(forms.ModelForm):
    class Meta:
        model = ImagePromptExample
        fields = ["name", "prompt", "style", "image_format", "setting", "provider", "model", "notes"]

    # The provider alias is checked by ImagePromptExample.clean() (blogimages.limits), as in admin.


# JSON name -> model field name. "format" matches the generate endpoint.
EXAMPLE_FIELDS = {
    "name": "name", "prompt": "prompt", "style": "style", "format": "image_format", "setting": "setting",
    "provider": "provider", "model": "model", "notes": "notes",
}  # fmt: skip
EXAMPLE_FOREIGN_KEYS = {"style", "format", "setting"}
READ_ONLY_FIELDS = ("id", "url", "created_by", "created_at", "updated_at")


def example_json(request: HttpRequest, example: ImagePromptExample) -> dict[str, Any]:
    return {
        "id": example.pk,
        "url": request.build_absolute_uri(reverse("blogimages:api-prompt-example", args=[example.pk])),
        "name": example.name,
        "prompt": example.prompt,
        "style": example.style_id,
        "format": example.image_format_id,
        "setting": example.setting_id,
        "provider": example.provider,
        "model": example.model,
        "notes": example.notes,
        "created_by": example.created_by.get_username() if example.created_by else None,
        "created_at": example.created_at,
        "updated_at": example.updated_at,
    }


def _save_example(request: HttpRequest, data: dict[str, Any], instance: ImagePromptExample | None, partial: bool):
    errors: Errors = {}
    unknown_fields(data, set(EXAMPLE_FIELDS) | set(READ_ONLY_FIELDS), errors)
    for read_only in READ_ONLY_FIELDS:
        errors.pop(read_only, None)
        data.pop(read_only, None)
    current = example_json(request, instance) if (instance is not None and partial) else {}
    form_data = {}
    for key, field in EXAMPLE_FIELDS.items():
        value = data[key] if key in data else current.get(key)
        if key in EXAMPLE_FOREIGN_KEYS:
            if value is not None and not is_int(value):
                errors[key] = [f"Give the {key}'s id as a whole number or null, not {value!r}."]
        elif value is not None and not isinstance(value, str):
            errors[key] = [f"{key} must be a string, not {value!r}."]
        form_data[field] = "" if value is None or key in errors else value
    # The form runs even after a type error so that one answer names every bad field.
    form = PromptExampleForm(data=form_data, instance=instance)
    if not form.is_valid() or errors:
        reverse_names = {field: key for key, field in EXAMPLE_FIELDS.items()}
        for field, messages in form.errors.items():
            errors.setdefault(reverse_names.get(field, field), [str(m) for m in messages])
        raise invalid(errors)
    example = form.save(commit=False)
    if instance is None:
        example.created_by = request.user
    example.save()
    return example


@endpoint({
    "GET": ("blogimages.view_imagepromptexample",),
    "POST": ("blogimages.add_imagepromptexample",),
})  # fmt: skip
def prompt_examples(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        example = _save_example(request, read_body(request), None, partial=False)
        body = example_json(request, example)
        response = json_response(body, status=201)
        response["Location"] = body["url"]
        return response
    errors: Errors = {}
    unknown_fields(request.GET, {"page", "page_size"}, errors)
    items, meta = paginate(request, ImagePromptExample.objects.select_related("created_by"), errors)
    return json_response({**meta, "results": [example_json(request, e) for e in items]})


@endpoint({
    "GET": ("blogimages.view_imagepromptexample",),
    "PUT": ("blogimages.change_imagepromptexample",),
    "PATCH": ("blogimages.change_imagepromptexample",),
    "DELETE": ("blogimages.delete_imagepromptexample",),
})  # fmt: skip
def prompt_example(request: HttpRequest, pk: int) -> HttpResponse:
    example = ImagePromptExample.objects.select_related("created_by").filter(pk=pk).first()
    if example is None:
        raise ApiError(404, f"No prompt example with id {pk}.")
    if request.method == "DELETE":
        example.delete()
        return HttpResponse(status=204)
    if request.method in ("PUT", "PATCH"):
        example = _save_example(request, read_body(request), example, partial=request.method == "PATCH")
    return json_response(example_json(request, example))
