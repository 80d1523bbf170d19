"""System checks: misconfiguration is caught by ``manage.py check`` with a hint to copy."""

from __future__ import annotations

from django.apps import apps
from django.conf import settings
from django.core import checks
from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured

from .conf import app_settings


def check_settings(app_configs=None, **kwargs):
    errors: list[checks.CheckMessage] = []
    errors += _check_host_models()
    errors += _check_providers()
    errors += _check_queue()
    errors += _check_storage()
    errors += _check_openai_lifecycle()
    errors += _check_webhooks()
    errors += _check_c2pa()
    errors += _check_writer()
    errors += _check_comfyui_budgets()
    errors += _check_rq_dashboard()
    return errors


def _check_rq_dashboard():
    """W046: django-rq's dashboard, where any staff user can delete or requeue jobs, mounted
    without blogimages.rq_dashboard's permission guard."""
    from .rq_dashboard import PERMISSION, open_dashboards

    places = open_dashboards()
    if not places:
        return []
    return [
        checks.Warning(
            f"django-rq's job dashboard ({' and '.join(places)}) lets any staff user delete or requeue "
            f"blogimages' jobs; guard it so it needs the {PERMISSION!r} permission.",
            hint="from blogimages import rq_dashboard; rq_dashboard.guard_admin_site(admin.site); and "
            'path("admin/rq/", include(rq_dashboard.urlpatterns())) instead of include("django_rq.urls").',
            id="blogimages.W046",
        )
    ]


def _check_comfyui_budgets():
    """W045: a ComfyUI provider whose waits add up to more than BLOGIMAGES_JOB_TIMEOUT, so RQ
    would kill the job before the provider gives up and says why."""
    from .providers import providers

    found = []
    for alias, config in app_settings.PROVIDERS.items():
        if not str(config.get("BACKEND", "")).endswith("ComfyUIProvider"):
            continue
        try:
            provider = providers[alias]
        except Exception:  # noqa: BLE001, S112 - E011 reports a provider that cannot be built
            continue
        options = provider.options
        total = float(options["timeout"]) + provider.queue_timeout() + float(options["stop_timeout"])
        if total > app_settings.JOB_TIMEOUT:
            found.append(
                checks.Warning(
                    f"BLOGIMAGES_PROVIDERS[{alias!r}]: timeout ({options['timeout']:g} s) + queue_timeout "
                    f"({provider.queue_timeout():g} s) + stop_timeout ({options['stop_timeout']:g} s) is "
                    f"{total:g} s, more than BLOGIMAGES_JOB_TIMEOUT ({app_settings.JOB_TIMEOUT} s): RQ would "
                    "kill a job before the provider can stop its prompt and say why.",
                    hint="Lower the provider's waits or raise BLOGIMAGES_JOB_TIMEOUT; leave queue_timeout "
                    "unset to give the queue what is left.",
                    id="blogimages.W045",
                )
            )
    return found


def _check_writer():
    """E044: a BLOGIMAGES_WRITER (the text model that drafts prompts and alt text) that cannot be used."""
    from .writer import problems

    return [
        checks.Error(
            problem,
            hint='BLOGIMAGES_WRITER = {"BASE_URL": "https://api.openai.com/v1", "API_KEY": '
            'os.environ.get("OPENAI_API_KEY", ""), "MODEL": "gpt-4.1-mini", "TIMEOUT": 30} (or None: no drafts).',
            id="blogimages.E044",
        )
        for problem in problems(app_settings.WRITER)
    ]


def _check_webhooks():
    """E042: a BLOGIMAGES_WEBHOOK_BASE_URL that hosted APIs cannot call, or whose path
    this site does not serve (``blogimages.urls`` not included)."""
    from urllib.parse import urlsplit

    from django.urls import NoReverseMatch, reverse

    base = app_settings.WEBHOOK_BASE_URL
    if not base:
        return []
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        return [
            checks.Error(
                f"BLOGIMAGES_WEBHOOK_BASE_URL is {base!r}; hosted image APIs need this site's public "
                "address to call back.",
                hint='BLOGIMAGES_WEBHOOK_BASE_URL = "https://blog.example.com" (or leave it blank to only poll).',
                id="blogimages.E042",
            )
        ]
    try:
        reverse("blogimages:api-webhook", kwargs={"alias": "a", "nonce": "n", "token": "t"})
    except NoReverseMatch:
        return [
            checks.Error(
                "BLOGIMAGES_WEBHOOK_BASE_URL is set but blogimages' URLs are not included, so callbacks would get 404.",
                hint='urlpatterns += [path("", include("blogimages.urls"))]',
                id="blogimages.E042",
            )
        ]
    return []


def _check_host_models():
    from .hosts import ModelSectionsAdapter, get_host

    try:
        adapter = get_host()
    except ImproperlyConfigured as exc:
        return [
            checks.Error(
                str(exc),
                hint="Name a HostAdapter subclass, e.g. 'blogimages.hosts.ModelSectionsAdapter' (sections as rows) "
                "or 'blogimages.contrib.wagtail.adapter.WagtailPageAdapter'.",
                id="blogimages.E004",
            )
        ]
    if not isinstance(adapter, ModelSectionsAdapter):
        return []
    errors = []
    section_model = None
    for setting, example in (("POST_MODEL", "blog.Post"), ("SECTION_MODEL", "blog.Section")):
        value = getattr(app_settings, setting)
        try:
            model = apps.get_model(value)
        except (LookupError, ValueError, TypeError, AttributeError):
            errors.append(
                checks.Error(
                    f"BLOGIMAGES_{setting} = {value!r} does not name an installed model.",
                    hint=f"Set BLOGIMAGES_{setting} = '{example}' (app_label.ModelName of your model), "
                    "or set BLOGIMAGES_HOST_ADAPTER to the adapter of your CMS.",
                    id="blogimages.E001",
                )
            )
            continue
        if setting == "SECTION_MODEL":
            section_model = model
    if section_model is None:
        return errors
    fields = [("SECTION_POST_FIELD", True), ("SECTION_TEXT_FIELD", True), ("SECTION_TITLE_FIELD", False)]
    for setting, required in fields:
        name = getattr(app_settings, setting)
        if not name and not required:
            continue
        try:
            field = section_model._meta.get_field(name)
        except FieldDoesNotExist:
            errors.append(
                checks.Error(
                    f"BLOGIMAGES_{setting} = {name!r}: {section_model._meta.label} has no such field.",
                    hint=f"Fields of {section_model._meta.label}: "
                    + ", ".join(f.name for f in section_model._meta.get_fields() if f.concrete),
                    id="blogimages.E002",
                )
            )
            continue
        if setting == "SECTION_POST_FIELD" and (
            not field.is_relation or field.related_model._meta.label_lower != app_settings.POST_MODEL.lower()
        ):
            errors.append(
                checks.Error(
                    f"BLOGIMAGES_SECTION_POST_FIELD = {name!r} is not a foreign key to {app_settings.POST_MODEL}.",
                    hint="Name the section's foreign key to its post.",
                    id="blogimages.E003",
                )
            )
    return errors


def _check_providers():
    from .providers import providers

    errors = []
    configured = app_settings.PROVIDERS
    if not isinstance(configured, dict) or not configured:
        return [
            checks.Error(
                "BLOGIMAGES_PROVIDERS must be a non-empty dict of {alias: {'BACKEND': ..., 'OPTIONS': {...}}}.",
                hint="BLOGIMAGES_PROVIDERS = {'placeholder': {'BACKEND': "
                "'blogimages.providers.placeholder.PlaceholderProvider'}}",
                id="blogimages.E010",
            )
        ]
    for alias in configured:
        try:
            providers.create(alias)
        except ImproperlyConfigured as exc:
            errors.append(checks.Error(str(exc), hint="Fix this entry of BLOGIMAGES_PROVIDERS.", id="blogimages.E011"))
    if app_settings.DEFAULT_PROVIDER not in configured:
        errors.append(
            checks.Error(
                f"BLOGIMAGES_DEFAULT_PROVIDER = {app_settings.DEFAULT_PROVIDER!r} is not in BLOGIMAGES_PROVIDERS.",
                hint=f"Use one of: {', '.join(configured)}.",
                id="blogimages.E012",
            )
        )
    return errors


def _check_queue():
    queues = getattr(settings, "RQ_QUEUES", {})
    if app_settings.QUEUE not in queues:
        return [
            checks.Error(
                f"BLOGIMAGES_QUEUE = {app_settings.QUEUE!r} is not a key of RQ_QUEUES.",
                hint="RQ_QUEUES = {'default': {'URL': 'redis://127.0.0.1:6379/0?socket_connect_timeout=1"
                "&socket_timeout=5'}}",
                id="blogimages.E020",
            )
        ]
    config = queues[app_settings.QUEUE]
    url = str(config.get("URL", ""))
    kwargs = config.get("REDIS_CLIENT_KWARGS", {})
    if "socket_connect_timeout" not in url and "socket_connect_timeout" not in kwargs:
        return [
            checks.Warning(
                f"RQ_QUEUES[{app_settings.QUEUE!r}] sets no socket_connect_timeout: an unreachable Redis "
                "makes editors wait for redis-py's long default instead of getting an error.",
                hint="Append '?socket_connect_timeout=1&socket_timeout=5' to the queue's URL.",
                id="blogimages.W021",
            )
        ]
    return []


def _check_storage():
    if app_settings.STORAGE not in settings.STORAGES:
        return [
            checks.Error(
                f"BLOGIMAGES_STORAGE = {app_settings.STORAGE!r} is not a key of STORAGES.",
                hint=f"Use one of: {', '.join(settings.STORAGES)}.",
                id="blogimages.E030",
            )
        ]
    return _check_storage_location()


def _check_storage_location():
    # With MEDIA_ROOT unset, FileSystemStorage writes into the working directory. When that
    # directory is on sys.path (manage.py's folder always is), the worker's
    # ``<KEY_PREFIX>/images/...`` folders become a namespace package that shadows an
    # editable install of blogimages: "cannot import name ... from 'blogimages.images'".
    import os
    import sys

    from django.core.files.storage import FileSystemStorage, storages

    alias = app_settings.STORAGE
    config = settings.STORAGES[alias]
    try:
        storage = storages.create_storage(config)
    except (ImportError, ImproperlyConfigured, KeyError, TypeError):
        return []  # an unusable backend fails loudly on first use; nothing to say about its folder
    if not isinstance(storage, FileSystemStorage):
        return _check_storage_timeouts(storage, alias)
    setting = f"STORAGES[{alias!r}]['OPTIONS']['location']" if "location" in config.get("OPTIONS", {}) else "MEDIA_ROOT"
    raw = os.fspath(storage.base_location)
    location = os.path.realpath(storage.location)
    cwd = os.path.realpath(os.getcwd())
    on_path = {os.path.realpath(entry or cwd) for entry in sys.path if os.path.isdir(entry or cwd)}
    hint = (
        f"Set {setting} to an absolute folder outside your code and not on sys.path, "
        'e.g. MEDIA_ROOT = BASE_DIR / "media", and serve it at MEDIA_URL.'
    )
    where = f"{setting} = {raw!r}: storage {alias!r} (BLOGIMAGES_STORAGE)"
    if not raw or location == cwd:
        problem = f"writes images into the current working directory ({cwd})"
    elif location in on_path:
        problem = f"writes images into {location}, a folder on sys.path"
    elif not os.path.isabs(raw):
        return [
            checks.Warning(
                f"{where} is a relative path, so each process (web server, worker) writes images "
                f"relative to its own working directory (here {location}).",
                hint=hint,
                id="blogimages.W032",
            )
        ]
    else:
        return []
    return [
        checks.Error(
            f"{where} {problem}; the {app_settings.KEY_PREFIX!r} folder it creates there shadows "
            "Python packages of that name.",
            hint=hint,
            id="blogimages.E031",
        )
    ]


def _check_storage_timeouts(storage, alias: str):
    # botocore waits 60 s to connect and 60 s per read and retries, so a stalled S3 holds a
    # worker or an editor's upload for minutes; bounded timeouts make it a clear error.
    config = getattr(storage, "client_config", None)
    if config is None or not type(storage).__module__.startswith("storages.backends.s3"):
        return []
    connect, read = getattr(config, "connect_timeout", 60), getattr(config, "read_timeout", 60)
    if connect < 60 and read < 60 and getattr(config, "retries", None):
        return []
    return [
        checks.Warning(
            f"STORAGES[{alias!r}] (BLOGIMAGES_STORAGE) is S3 with botocore's default waits "
            f"({connect} s to connect, {read} s per read, retried): a stalled S3 holds a worker "
            "or an upload for minutes.",
            hint=(
                'Add "client_config": botocore.config.Config(connect_timeout=3, read_timeout=10, '
                'retries={"mode": "standard", "total_max_attempts": 2}) to its OPTIONS '
                '(with s3={"addressing_style": ...} if you set one).'
            ),
            id="blogimages.W033",
        )
    ]


def _check_openai_lifecycle():
    """W040: a provider's default model that OpenAI shuts down soon or already did; E041: a
    BLOGIMAGES_OPENAI_MODEL_REPLACEMENTS entry that leads nowhere. Image settings and prompt
    examples are the database check's (:func:`check_openai_model_uses`).

    Only cached shutdown dates and the capability table are used: checks make no network calls.
    """
    from .providers import providers
    from .providers.lifecycle import SETTING
    from .status import aliases_where

    aliases = aliases_where(kind="openai")
    if not aliases:
        return []
    errors = []
    replacements = app_settings.OPENAI_MODEL_REPLACEMENTS
    if not isinstance(replacements, dict):
        return [
            checks.Error(
                f"{SETTING} must be a dict of {{retired model: successor}}, not {type(replacements).__name__}.",
                hint=f'{SETTING} = {{"gpt-image-1.5": "gpt-image-2.6-flare"}}',
                id="blogimages.E041",
            )
        ]
    built = []
    for alias in aliases:
        try:
            built.append(providers[alias])
        except ImproperlyConfigured:
            continue  # E011 says why
    for model, successor in replacements.items():
        known = [lc for lc in (p.lifecycle(str(successor)) for p in built) if lc is not None]
        if built and not known:
            problem = "is not a model the OpenAI provider knows"
        elif any(lc.retired() for lc in known):
            problem = f"is itself retired (on {known[0].shutdown})"
        else:
            continue
        errors.append(
            checks.Error(
                f"{SETTING} sends {model!r} to {successor!r}, which {problem}.",
                hint="Name a current model, e.g. 'gpt-image-2.6-flare', or add it under the provider's "
                "OPTIONS['models'].",
                id="blogimages.E041",
            )
        )
    return errors + _retirement_warnings(aliases, uses={}, defaults=True)


def check_openai_model_uses(app_configs=None, databases=None, **kwargs):
    """W040 for image settings and prompt examples that name a model OpenAI shuts down soon
    or already did. A database check (``Tags.database``): Django runs it for
    ``manage.py check --database default`` and ``migrate``, not for a plain ``check``."""
    from django.db import DatabaseError

    from .providers.lifecycle import model_uses
    from .status import aliases_where

    aliases = aliases_where(kind="openai")
    if not aliases or not databases or not isinstance(app_settings.OPENAI_MODEL_REPLACEMENTS, dict):
        return []
    try:
        uses = model_uses()
    except DatabaseError:
        return []  # not migrated yet, so no settings to read
    return _retirement_warnings(aliases, uses=uses, defaults=False)


def _retirement_warnings(aliases, *, uses, defaults):
    from .providers.lifecycle import SETTING, retirement_warnings

    return [
        checks.Warning(
            warning.sentence(),
            hint=f"Change those settings to a current model, or map the old one: "
            f"{SETTING} = {{{warning.lifecycle.model!r}: '<successor>'}}. "
            f"BLOGIMAGES_OPENAI_RETIREMENT_WARNING_DAYS sets how early this warns.",
            id="blogimages.W040",
        )
        for warning in retirement_warnings(aliases, uses=uses, defaults=defaults)
    ]


def _check_c2pa():
    """E043: BLOGIMAGES_C2PA names files that are not there, or c2pa-python is not installed."""
    from .provenance import c2pa_problems

    return [
        checks.Error(
            problem,
            hint='BLOGIMAGES_C2PA = {"CERTIFICATE": "/etc/blog/c2pa-chain.pem", '
            '"PRIVATE_KEY": "/etc/blog/c2pa-key.pem", "ALGORITHM": "es256", "TSA_URL": ""} '
            'with pip install "blogimages[c2pa]", or None to sign nothing.',
            id="blogimages.E043",
        )
        for problem in c2pa_problems()
    ]
