"""Forms of the editors' workspace: the prompt playground and the admin actions' extra steps."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from . import limits
from .models import ImageFormat, ImageGenerationResult, ImagePromptExample, ImageSetting, ImageStyle
from .prompts import resolve_params

# Playground fields that become ``GenerationSpec.overrides`` when filled in.
OVERRIDE_FIELDS = ("width", "height", "steps", "guidance_scale", "sampler", "scheduler", "seed", "negative_prompt")


class PlaygroundForm(forms.Form):
    prompt = forms.CharField(
        label=_("Prompt"),
        max_length=limits.PROMPT_MAX,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": _("A lighthouse on a cliff at dusk")}),
    )
    style = forms.ModelChoiceField(ImageStyle.objects.all(), label=_("Style"), required=False)
    image_format = forms.ModelChoiceField(ImageFormat.objects.all(), label=_("Format"), required=False)
    setting = forms.ModelChoiceField(ImageSetting.objects.all(), label=_("Setting"), required=False)
    providers = forms.MultipleChoiceField(
        label=_("Providers"),
        widget=forms.CheckboxSelectMultiple,
        help_text=_("Pick several to compare them side by side."),
    )
    model = forms.CharField(
        label=_("Model"),
        max_length=200,
        required=False,
        help_text=_("Blank for the setting's or the provider's default model."),
    )
    # Advanced: blank means "whatever the style, format and setting give".
    # Bounds from blogimages.limits. Any size in range: the provider rounds it and says so.
    seed = forms.IntegerField(label=_("Seed"), required=False, **limits.bounds("seed"))
    width = forms.IntegerField(label=_("Width"), required=False, **limits.bounds("width"))
    height = forms.IntegerField(label=_("Height"), required=False, **limits.bounds("height"))
    steps = forms.IntegerField(label=_("Steps"), required=False, **limits.bounds("steps"))
    guidance_scale = forms.FloatField(label=_("Guidance"), required=False, **limits.bounds("guidance_scale"))
    sampler = forms.CharField(label=_("Sampler"), max_length=64, required=False)
    scheduler = forms.CharField(label=_("Scheduler"), max_length=64, required=False)
    negative_prompt = forms.CharField(
        label=_("Negative prompt"), required=False, widget=forms.Textarea(attrs={"rows": 2})
    )
    # Only for "Save as prompt example".
    example_name = forms.CharField(label=_("Example name"), max_length=160, required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        from .providers import providers

        self.fields["providers"].choices = [(alias, alias) for alias in providers.aliases]

    def overrides(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {name: data[name] for name in OVERRIDE_FIELDS if data.get(name) not in (None, "")}

    def clean_example_name(self) -> str:
        name = self.cleaned_data["example_name"].strip()
        if name and ImagePromptExample.objects.filter(name=name).exists():
            raise forms.ValidationError(_("A prompt example named “%(name)s” already exists.") % {"name": name})
        return name


def initial_from_result(result: ImageGenerationResult, providers: list[str] | None = None) -> dict[str, Any]:
    """Playground form values that reproduce ``result`` ("use these settings again").

    The advanced fields are filled only where the stored snapshot differs from what the
    style, format and setting would give today, so the form stays readable while the
    request stays exact. The seed is always the one that was used.
    """
    params = result.params or {}
    try:
        today = resolve_params(style=result.style, image_format=result.image_format, setting=result.setting)
    except forms.ValidationError:
        today = {}
    asked_model = params.get("model") or ""
    initial: dict[str, Any] = {
        "prompt": result.prompt,
        "style": result.style_id,
        "image_format": result.image_format_id,
        "setting": result.setting_id,
        "providers": providers or [result.provider],
        "model": asked_model if asked_model != today.get("model", "") else "",
        "seed": result.seed,
    }
    for name in OVERRIDE_FIELDS:
        if name == "seed":
            continue
        value = params.get(name)
        if value not in (None, "") and value != today.get(name):
            initial[name] = value
    return initial


def initial_from_example(example: ImagePromptExample) -> dict[str, Any]:
    return {
        "prompt": example.prompt,
        "style": example.style_id,
        "image_format": example.image_format_id,
        "setting": example.setting_id,
        "providers": [example.provider] if example.provider else None,
        "model": example.model,
    }


class CommentForm(forms.Form):
    """The extra step of the reject and comment admin actions."""

    comment = forms.CharField(label=_("Comment"), widget=forms.Textarea(attrs={"rows": 3, "cols": 60}))

    def __init__(self, *args: Any, required_message: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if required_message:
            self.fields["comment"].error_messages["required"] = required_message
