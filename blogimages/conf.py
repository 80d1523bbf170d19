"""blogimages' settings, each read at call time so ``override_settings`` works.

Every setting is ``BLOGIMAGES_<NAME>`` in the host's settings module; the property here
holds its default and documents it. ``app_settings.NAME`` is the only way code reads
them. The README's settings reference lists the same names (a test keeps them in step).
"""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings

PLACEHOLDER_PROVIDER = {
    "BACKEND": "blogimages.providers.placeholder.PlaceholderProvider",
    "OPTIONS": {},
}


def _env_flag(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


class AppSettings:
    prefix = "BLOGIMAGES_"

    def _setting(self, name: str, default: Any) -> Any:
        return getattr(settings, self.prefix + name, default)

    # --- the host -------------------------------------------------------------------
    @property
    def HOST_ADAPTER(self) -> str:
        """Dotted path of the :class:`blogimages.hosts.HostAdapter` that reads the host's posts and sections."""
        return self._setting("HOST_ADAPTER", "blogimages.hosts.ModelSectionsAdapter")

    @property
    def POST_MODEL(self) -> str | None:
        """``app_label.ModelName`` of the host's post model (the default adapter's posts)."""
        return self._setting("POST_MODEL", None)

    @property
    def SECTION_MODEL(self) -> str | None:
        """``app_label.ModelName`` of the host's section model (the default adapter's sections)."""
        return self._setting("SECTION_MODEL", None)

    @property
    def SECTION_POST_FIELD(self) -> str:
        """Name of the foreign key from a section to its post (default adapter)."""
        return self._setting("SECTION_POST_FIELD", "post")

    @property
    def SECTION_TEXT_FIELD(self) -> str:
        """Name of the section field whose text becomes the default prompt (default adapter)."""
        return self._setting("SECTION_TEXT_FIELD", "body")

    @property
    def SECTION_TITLE_FIELD(self) -> str | None:
        """Name of the section's title field, shown in admin; ``None`` if there is none (default adapter)."""
        return self._setting("SECTION_TITLE_FIELD", "title")

    # --- providers -----------------------------------------------------------------
    @property
    def PROVIDERS(self) -> dict[str, dict[str, Any]]:
        """Provider aliases, configured like ``STORAGES``: ``{alias: {"BACKEND", "OPTIONS"}}``."""
        return self._setting("PROVIDERS", {"placeholder": PLACEHOLDER_PROVIDER})

    @property
    def DEFAULT_PROVIDER(self) -> str:
        """Alias used when a request names no provider."""
        return self._setting("DEFAULT_PROVIDER", "placeholder")

    @property
    def ENABLE_CLOUD_APIS(self) -> bool:
        """Whether paid cloud providers may join ``auto`` fallback (env ``ENABLE_CLOUD_APIS``)."""
        return self._setting("ENABLE_CLOUD_APIS", _env_flag("ENABLE_CLOUD_APIS"))

    @property
    def WEBHOOK_BASE_URL(self) -> str:
        """This site's public address (``https://blog.example.com``) for hosted image APIs to call back
        when a job finishes (env ``BLOGIMAGES_WEBHOOK_BASE_URL``); blank: jobs are only polled."""
        return self._setting("WEBHOOK_BASE_URL", os.environ.get("BLOGIMAGES_WEBHOOK_BASE_URL", ""))

    # --- generation defaults ---------------------------------------------------------
    @property
    def DEFAULT_WIDTH(self) -> int:
        """Width used when neither the setting, the format nor the request gives one."""
        return self._setting("DEFAULT_WIDTH", 1024)

    @property
    def DEFAULT_HEIGHT(self) -> int:
        """Height used when neither the setting, the format nor the request gives one."""
        return self._setting("DEFAULT_HEIGHT", 1024)

    # --- queue -------------------------------------------------------------------------
    @property
    def QUEUE(self) -> str:
        """The django-rq queue (a key of ``RQ_QUEUES``) that generation jobs go to."""
        return self._setting("QUEUE", "default")

    @property
    def JOB_TIMEOUT(self) -> int:
        """Seconds a worker may spend on one generation job before RQ kills it."""
        return self._setting("JOB_TIMEOUT", 900)

    @property
    def MAX_ATTEMPTS(self) -> int:
        """How many times a transient provider error is tried before the result fails."""
        return self._setting("MAX_ATTEMPTS", 3)

    @property
    def RETRY_BACKOFF(self) -> float:
        """First retry delay in seconds; it doubles on each further attempt."""
        return self._setting("RETRY_BACKOFF", 2.0)

    @property
    def MAX_REQUEUES(self) -> int:
        """How many times ``blogimages_requeue`` sends a transient failure to the queue again
        before it marks the result failed for good (error kind permanent)."""
        return self._setting("MAX_REQUEUES", 3)

    @property
    def MAX_CANDIDATES(self) -> int:
        """The most candidates one request may ask for (``candidates``): a ComfyUI workflow
        that maps ``batch_size`` makes them in one prompt, other providers in one job each."""
        return self._setting("MAX_CANDIDATES", 8)

    @property
    def NOTIFY_EMAIL(self) -> bool:
        """Whether the editor who asked for images gets one e-mail when the last image of the
        request finishes (``blogimages.notifications``; Django's e-mail settings send it)."""
        return bool(self._setting("NOTIFY_EMAIL", False))

    @property
    def STUCK_AFTER(self) -> int:
        """Seconds without a heartbeat after which a running result counts as stuck. A running
        job beats every 10 seconds whatever its provider does, so only a dead worker goes
        this long; with the recovery round every 10 seconds, a killed job is queued again
        within STUCK_AFTER + 10 seconds."""
        return self._setting("STUCK_AFTER", 45)

    # --- storage -------------------------------------------------------------------------
    @property
    def STORAGE(self) -> str:
        """Alias in ``STORAGES`` that images are written to."""
        return self._setting("STORAGE", "default")

    @property
    def KEY_PREFIX(self) -> str:
        """Folder (key prefix) under which images are stored."""
        return self._setting("KEY_PREFIX", "blogimages")

    # --- uploads ---------------------------------------------------------------------------
    @property
    def UPLOAD_MAX_BYTES(self) -> int:
        """Largest upload accepted, in bytes."""
        return self._setting("UPLOAD_MAX_BYTES", 20 * 1024 * 1024)

    @property
    def UPLOAD_MAX_PIXELS(self) -> int:
        """Largest upload accepted, in pixels (width x height), against decompression bombs."""
        return self._setting("UPLOAD_MAX_PIXELS", 40_000_000)

    @property
    def UPLOAD_FORMATS(self) -> tuple[str, ...]:
        """Pillow format names an upload may have."""
        return tuple(self._setting("UPLOAD_FORMATS", ("PNG", "JPEG", "WEBP", "GIF")))

    # --- public rendering ------------------------------------------------------------------
    @property
    def RENDITION_WIDTHS(self) -> tuple[int, ...]:
        """Widths of the resized copies made for an approved image's ``srcset``."""
        return tuple(self._setting("RENDITION_WIDTHS", (480, 960, 1600)))

    # --- operators -------------------------------------------------------------------------
    @property
    def COMFYUI_PUBLIC_URL(self) -> str:
        """ComfyUI's web UI as editors' browsers reach it, linked from the status page (env ``COMFYUI_PUBLIC_URL``)."""
        return self._setting("COMFYUI_PUBLIC_URL", os.environ.get("COMFYUI_PUBLIC_URL", ""))

    @property
    def COMFYUI_START_COMMAND(self) -> str:
        """Shell command that starts a local ComfyUI (env ``COMFYUI_START_COMMAND``); blank disables the button."""
        return self._setting("COMFYUI_START_COMMAND", os.environ.get("COMFYUI_START_COMMAND", ""))

    @property
    def COMFYUI_WORKDIR(self) -> str:
        """Folder the start command runs in, e.g. the ComfyUI checkout (env ``COMFYUI_DIR``)."""
        return self._setting("COMFYUI_WORKDIR", os.environ.get("COMFYUI_DIR", ""))

    # --- JSON API ------------------------------------------------------------------------------
    @property
    def API_TOKENS(self) -> dict[str, str]:
        """``{token: username}`` for scripts calling the JSON API with ``Authorization: Bearer``."""
        return self._setting("API_TOKENS", {})

    # --- drafts from a text model -----------------------------------------------------------------
    @property
    def WRITER(self) -> dict[str, Any] | None:
        """An OpenAI-compatible chat completions API that drafts section prompts and alt text for
        editors to check: ``{"BASE_URL", "API_KEY", "MODEL", "VISION_MODEL", "TIMEOUT"}``
        (see :mod:`blogimages.writer`); ``None`` (the default) turns drafting off."""
        return self._setting("WRITER", None)

    # --- cost ------------------------------------------------------------------------------------
    @property
    def PRICES(self) -> dict[str, dict[str, dict[str, Any]]]:
        """Prices merged over the built-in table (:mod:`blogimages.costs`): ``{provider kind or alias:
        {model or "*": {"image" | "megapixel" | "tokens" | "second" ...}}}``, in US dollars."""
        return self._setting("PRICES", {})

    @property
    def BUDGETS(self) -> dict[str, Any]:
        """Monthly budgets in US dollars: ``{"SITE_MONTHLY": "200.00", "USER_MONTHLY": "20.00",
        "USERS": {"alice": "50.00"}}``, each optional; none: nothing is refused for cost."""
        return self._setting("BUDGETS", {})

    # --- OpenAI model lifecycle -------------------------------------------------------------------
    @property
    def OPENAI_MODEL_REPLACEMENTS(self) -> dict[str, str]:
        """``{retired model: successor}``: from a model's shutdown date on, its requests are sent to the
        successor (recorded on each result) instead of being refused, e.g. ``{"gpt-image-1.5": "gpt-image-2.6-flare"}``.
        """
        return self._setting("OPENAI_MODEL_REPLACEMENTS", {})

    @property
    def OPENAI_RETIREMENT_WARNING_DAYS(self) -> int:
        """Days before an OpenAI model's shutdown date that checks, the status page and ``blogimages_status`` warn."""
        return int(self._setting("OPENAI_RETIREMENT_WARNING_DAYS", 30))

    # --- provenance and disclosure -------------------------------------------------
    @property
    def CREDIT_LINE(self) -> str:
        """IPTC Credit Line (XMP ``photoshop:Credit``) written into every file of an AI-generated image; "" for none."""
        return str(self._setting("CREDIT_LINE", "Image generated with AI"))

    @property
    def AI_LABEL(self) -> str:
        """Visible caption ``{% blogimage %}`` puts under AI-generated images; "" (the default) for none."""
        return str(self._setting("AI_LABEL", ""))

    @property
    def C2PA(self) -> dict[str, str] | None:
        """Sign published AI-generated files with a C2PA manifest: ``{"CERTIFICATE": PEM chain path,
        "PRIVATE_KEY": PEM key path, "ALGORITHM": "es256", "TSA_URL": ""}``; ``None`` (default) signs nothing."""
        return self._setting("C2PA", None)


app_settings = AppSettings()
