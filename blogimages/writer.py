"""Drafts from a text model: a section's image prompt from the post around it, and alt text
from an image and the text around it. Optional, off unless ``BLOGIMAGES_WRITER`` is set.

The model sits behind an OpenAI-compatible chat completions API (OpenAI, or any server
that speaks it, by base URL)::

    BLOGIMAGES_WRITER = {
        "BASE_URL": "https://api.openai.com/v1",
        "API_KEY": os.environ.get("OPENAI_API_KEY", ""),
        "MODEL": "gpt-4.1-mini",          # writes prompts
        "VISION_MODEL": "gpt-4.1-mini",   # writes alt text from the image; default: MODEL
        "TIMEOUT": 30,                    # seconds
    }

A draft is only ever returned to the editor, who edits it and saves it (the section's
prompt override, the section's alt text): nothing here saves a draft, and nothing is
generated from a draft the editor has not seen. A failure is one sentence that starts
"Could not draft:", and the editor can still write by hand.
"""

from __future__ import annotations

import base64
import io
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from django.core.exceptions import ImproperlyConfigured

from .conf import app_settings
from .exceptions import BlogImagesError
from .hosts import Section, get_host
from .models import ImageGenerationResult, ImagePromptExample, PostImageSettings, SectionReview
from .remote import clip, connection_reason, json_body, retry_after
from .services import ALT_MAX, PROMPT_MAX, find_review, prompt_example_for

SETTING = "BLOGIMAGES_WRITER"
KEYS = ("BASE_URL", "API_KEY", "MODEL", "VISION_MODEL", "TIMEOUT")
DEFAULT_TIMEOUT = 30.0
CONNECT_TIMEOUT = 5.0

SECTION_TEXT_MAX = 3000  # characters of the section itself sent to the model
NEIGHBOUR_TEXT_MAX = 600  # characters of each neighbouring section
IMAGE_MAX_SIDE = 1024  # pixels: a vision model needs no more to describe an image

PROMPT_INSTRUCTIONS = (
    "You write prompts for an image generator that illustrates one section of a blog post. "
    "Describe one concrete picture: subject, setting, composition, light and mood. "
    "Follow the style guidance you are given, but do not repeat words the style template adds itself. "
    "No text, letters, logos or watermarks in the picture; no real people's names. "
    "Answer with the prompt only: one paragraph of at most 80 words, no quotes, no heading."
)
ALT_INSTRUCTIONS = (
    "You write alt text for an image on a blog, for readers who cannot see it. "
    "Say what the image shows that matters to the section it illustrates, in one or two plain sentences "
    f"of at most {ALT_MAX - 50} characters. Do not begin with 'Image of' or 'Picture of', and do not "
    "mention that it was generated. Answer with the alt text only, no quotes."
)


class DraftError(BlogImagesError):
    """A draft could not be made; the message is one sentence for the editor.

    ``status`` is what an HTTP answer passes on (502: the writer failed or answered
    nonsense, 503: it is rate limited or unreachable, 504: it did not answer in time).
    """

    def __init__(self, message: str, *, status: int = 502, retry_after: float | None = None):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class WriterNotConfigured(DraftError):
    def __init__(self) -> None:
        super().__init__(
            f"Drafting is not configured: set {SETTING} to an OpenAI-compatible chat completions API.", status=404
        )


@dataclass(frozen=True)
class Draft:
    """What the model wrote (cleaned up), and which model wrote it."""

    text: str
    model: str


@dataclass(frozen=True)
class WriterConfig:
    base_url: str
    api_key: str
    model: str
    vision_model: str
    timeout: float

    @property
    def where(self) -> str:
        """The server, for messages (never the key)."""
        return urlsplit(self.base_url).netloc or self.base_url


# --- settings --------------------------------------------------------------------------------------------


def enabled() -> bool:
    """Whether drafting is on (``BLOGIMAGES_WRITER`` is set)."""
    return bool(app_settings.WRITER)


def problems(raw: Any) -> list[str]:
    """What is wrong with a ``BLOGIMAGES_WRITER`` value, one sentence each (system check E044)."""
    if raw in (None, {}):
        return []
    if not isinstance(raw, dict):
        return [f"{SETTING} must be a dict such as {{'BASE_URL': ..., 'MODEL': ...}}, not {type(raw).__name__}."]
    found = []
    for key in sorted(set(raw) - set(KEYS)):
        found.append(f"{SETTING} has an unknown key {key!r}; allowed: {', '.join(KEYS)}.")
    base = raw.get("BASE_URL")
    parts = urlsplit(base) if isinstance(base, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        found.append(f"{SETTING}['BASE_URL'] is {base!r}; give the API's base URL, the part before /chat/completions.")
    for key in ("MODEL", "VISION_MODEL"):
        value = raw.get(key)
        if (key == "MODEL" or value is not None) and not (isinstance(value, str) and value.strip()):
            found.append(f"{SETTING}[{key!r}] must name a model, not {value!r}.")
    key = raw.get("API_KEY", "")
    if not isinstance(key, str):
        found.append(f"{SETTING}['API_KEY'] must be a string (blank for a server that needs none).")
    timeout = raw.get("TIMEOUT", DEFAULT_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 600:
        found.append(f"{SETTING}['TIMEOUT'] must be a number of seconds from 0 to 600, not {timeout!r}.")
    return found


def config() -> WriterConfig:
    """The writer's settings, read now; :class:`WriterNotConfigured` when drafting is off."""
    raw = app_settings.WRITER
    if not raw:
        raise WriterNotConfigured()
    found = problems(raw)
    if found:
        raise ImproperlyConfigured(found[0])
    return WriterConfig(
        base_url=raw["BASE_URL"].rstrip("/"),
        api_key=raw.get("API_KEY", "") or "",
        model=raw["MODEL"].strip(),
        vision_model=(raw.get("VISION_MODEL") or raw["MODEL"]).strip(),
        timeout=float(raw.get("TIMEOUT", DEFAULT_TIMEOUT)),
    )


# --- the chat completions client ---------------------------------------------------------------------------


def complete(messages: list[dict[str, Any]], *, vision: bool = False) -> Draft:
    """Send ``messages`` to ``POST {BASE_URL}/chat/completions``; the answer's text, or DraftError."""
    cfg = config()
    model = cfg.vision_model if vision else cfg.model
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if cfg.api_key:
        headers["Authorization"] = f"Bearer {cfg.api_key}"
    body = {"model": model, "messages": messages}
    try:
        response = requests.post(
            cfg.base_url + "/chat/completions",
            json=body,
            headers=headers,
            timeout=(min(CONNECT_TIMEOUT, cfg.timeout), cfg.timeout),
        )
    except requests.Timeout as exc:
        raise DraftError(
            f"Could not draft: {model} at {cfg.where} did not answer within {cfg.timeout:g} seconds.", status=504
        ) from exc
    except requests.RequestException as exc:
        raise DraftError(
            f"Could not draft: {cfg.where} is not reachable ({connection_reason(exc)}).", status=503
        ) from exc
    data = json_body(response)
    if response.status_code != 200:
        raise _status_error(response, data, cfg, model)
    return Draft(text=_answer_text(data, cfg, model), model=str((data or {}).get("model") or model))


def _status_error(response: requests.Response, data: Any, cfg: WriterConfig, model: str) -> DraftError:
    error = data.get("error") if isinstance(data, dict) else None
    said = error.get("message") if isinstance(error, dict) else error if isinstance(error, str) else ""
    said = clip(said or response.reason or "", 200)
    detail = f"{response.status_code}: {said}" if said else str(response.status_code)
    if response.status_code == 429:
        wait = retry_after(response.headers)
        when = f"try again in {wait:g} seconds" if wait is not None else "try again later"
        return DraftError(
            f"Could not draft: {model} at {cfg.where} is rate limited ({detail}); {when}.",
            status=503,
            retry_after=wait,
        )
    if response.status_code >= 500:
        return DraftError(f"Could not draft: {model} at {cfg.where} failed ({detail}).", status=502)
    return DraftError(f"Could not draft: {model} at {cfg.where} refused the request ({detail}).", status=502)


def _answer_text(data: Any, cfg: WriterConfig, model: str) -> str:
    """``choices[0].message.content``: a string, or a list of text parts."""
    try:
        message = data["choices"][0]["message"]
        content = message["content"]
    except (KeyError, IndexError, TypeError):
        raise DraftError(
            f"Could not draft: {model} at {cfg.where} sent an answer that is not a chat completion.", status=502
        ) from None
    if isinstance(content, list):
        content = " ".join(
            str(part.get("text", "")) for part in content if isinstance(part, dict) and part.get("type") == "text"
        )
    if not isinstance(content, str) or not content.strip():
        refusal = message.get("refusal") if isinstance(message, dict) else None
        why = f"it declined: {clip(refusal, 200)}" if refusal else "its answer has no text"
        raise DraftError(f"Could not draft: {model} at {cfg.where} wrote nothing ({why}).", status=502)
    return content


def tidy(text: str, *, limit: int, label: str) -> str:
    """The model's answer as a draft: one paragraph, no label ("Prompt:"), no wrapping quotes,
    at most ``limit`` characters (cut at a word, so the editor sees where)."""
    text = " ".join(text.split())
    text = re.sub(rf"^(\*\*)?{label}(\*\*)?\s*:\s*", "", text, flags=re.IGNORECASE)
    for left, right in (('"', '"'), ("\u201c", "\u201d"), ("'", "'"), ("`", "`")):
        if len(text) > 1 and text.startswith(left) and text.endswith(right):
            text = text[1:-1].strip()
    if len(text) > limit:
        text = text[: limit - 1].rsplit(" ", 1)[0].rstrip(",;:") + "\u2026"
    return text


# --- drafting a prompt ---------------------------------------------------------------------------------


def _example_for(section: Section, review: SectionReview | None) -> ImagePromptExample | None:
    """The prompt example generation would use: the section's own, else the post's."""
    if review is not None:
        return prompt_example_for(review)
    post_settings = PostImageSettings.objects.for_post(section.post).select_related("prompt_example").first()
    return post_settings.prompt_example if post_settings else None


def style_guidance(example: ImagePromptExample | None) -> list[str]:
    """What the editors' library says about how the section's image should look."""
    if example is None:
        return []
    lines = []
    style, image_format, setting = example.style, example.image_format, example.setting
    if style is not None:
        lines.append(f"Style: {style.name}." + (f" {' '.join(style.description.split())}" if style.description else ""))
        if style.prompt_template.strip() != "{prompt}":
            lines.append(f"The style template wraps your prompt like this: {style.prompt_template}")
    if image_format is not None:
        shape = (
            "landscape"
            if image_format.width > image_format.height
            else "portrait"
            if image_format.height > image_format.width
            else "square"
        )
        lines.append(f"Format: {image_format.name}, {image_format.width}x{image_format.height} pixels ({shape}).")
    negative = ", ".join(
        n for n in (style.negative_prompt if style else "", setting.negative_prompt if setting else "") if n
    )
    if negative:
        lines.append(f"Avoid: {negative}.")
    if example.prompt.strip():
        lines.append(f"An example prompt in this publication's voice: {example.prompt.strip()}")
    if example.notes.strip():
        lines.append(f"Editors' notes: {' '.join(example.notes.split())}")
    return lines


def prompt_messages(section: Section) -> list[dict[str, Any]]:
    """The chat messages that ask for a section's prompt: the post's title, the section, its
    neighbours and the style's guidance."""
    host = get_host()
    post = section.post
    sections = host.sections(post)
    index = next((i for i, s in enumerate(sections) if s.key == section.key), None)
    previous = sections[index - 1] if index is not None and index > 0 else None
    following = sections[index + 1] if index is not None and index + 1 < len(sections) else None
    review = find_review(section)
    parts = [
        f"Post title: {host.post_title(post)}",
        f"Section to illustrate: {section.title}\n{clip(section.text, SECTION_TEXT_MAX)}",
    ]
    if previous is not None:
        parts.append(f"Previous section: {previous.title}\n{clip(previous.text, NEIGHBOUR_TEXT_MAX)}")
    if following is not None:
        parts.append(f"Next section: {following.title}\n{clip(following.text, NEIGHBOUR_TEXT_MAX)}")
    guidance = style_guidance(_example_for(section, review))
    if guidance:
        parts.append("Style guidance:\n" + "\n".join(guidance))
    parts.append("Write the image prompt for the section to illustrate.")
    return [
        {"role": "system", "content": PROMPT_INSTRUCTIONS},
        {"role": "user", "content": "\n\n".join(parts)},
    ]


def draft_prompt(section: Section) -> Draft:
    """A prompt for ``section`` drafted from its context; saved by no one until the editor does."""
    config()  # off: say so before reading the post
    draft = complete(prompt_messages(section))
    return Draft(text=tidy(draft.text, limit=PROMPT_MAX, label="prompt"), model=draft.model)


# --- drafting alt text -------------------------------------------------------------------------------


def image_data_url(data: bytes) -> str:
    """``data`` as a ``data:`` URL for a chat message's ``image_url`` part, at most
    IMAGE_MAX_SIDE pixels a side and re-encoded (no metadata goes to the model)."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        image.load()
        alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
        picture = image.convert("RGBA" if alpha else "RGB")
    picture.thumbnail((IMAGE_MAX_SIDE, IMAGE_MAX_SIDE))
    buffer = io.BytesIO()
    if alpha:
        picture.save(buffer, format="PNG", optimize=True)
        content_type = "image/png"
    else:
        picture.save(buffer, format="JPEG", quality=88)
        content_type = "image/jpeg"
    return f"data:{content_type};base64,{base64.b64encode(buffer.getvalue()).decode('ascii')}"


def alt_messages(data: bytes, *, post_title: str, section_title: str, section_text: str) -> list[dict[str, Any]]:
    context = [f"Post title: {post_title}" if post_title else "", f"Section: {section_title}" if section_title else ""]
    if section_text:
        context.append(f"Section text:\n{clip(section_text, SECTION_TEXT_MAX)}")
    context.append("Write the alt text for this image, which illustrates the section.")
    return [
        {"role": "system", "content": ALT_INSTRUCTIONS},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "\n\n".join(part for part in context if part)},
                {"type": "image_url", "image_url": {"url": image_data_url(data)}},
            ],
        },
    ]


def _draft_alt(data: bytes, *, post, section_title: str, section_text: str) -> Draft:
    title = get_host().post_title(post) if post is not None else ""
    messages = alt_messages(data, post_title=title, section_title=section_title, section_text=section_text)
    draft = complete(messages, vision=True)
    return Draft(text=tidy(draft.text, limit=ALT_MAX, label="alt text"), model=draft.model)


def draft_alt_text(result: ImageGenerationResult) -> Draft:
    """Alt text for a section's image, drafted from the image and the section around it."""
    from .hosts.publishing import read_image
    from .services import section_of

    config()
    if result.review_id is None or not result.image:
        raise DraftError("Could not draft: only a finished image of a section gets alt text.", status=400)
    review = result.review
    section = section_of(review)
    return _draft_alt(
        read_image(result),
        post=review.post,
        section_title=section.title if section else review.section_title,
        section_text=section.text if section else "",
    )


def draft_alt_text_for_upload(uploaded_file, section: Section) -> Draft:
    """Alt text for a file the editor is about to upload for ``section``; the file is vetted
    like an upload (UploadRejected) and not stored."""
    from .images import clean_upload

    config()
    data, _content_type = clean_upload(uploaded_file)
    return _draft_alt(data, post=section.post, section_title=section.title, section_text=section.text)


# --- saving what the editor confirmed ------------------------------------------------------------------
