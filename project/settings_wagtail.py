"""The example project as a Wagtail site: ``make demo-wagtail``.

The same blog project plus Wagtail, with blogimages reading sections from the
StreamField of ``wagtailblog.BlogPage``. Its database and embedded Redis live in
``var/wagtail/`` so ``make demo`` keeps its own.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("BLOGIMAGES_VAR_DIR", str(Path(__file__).resolve().parent.parent / "var" / "wagtail"))

from project.settings import *  # noqa: E402,F401,F403
from project.settings import DATABASES, INSTALLED_APPS  # noqa: E402

WAGTAIL_APPS = [
    "wagtail.embeds",
    "wagtail.sites",
    "wagtail.users",
    "wagtail.snippets",
    "wagtail.documents",
    "wagtail.images",
    "wagtail.search",
    "wagtail.admin",
    "wagtail",
    "modelcluster",
    "taggit",
]
INSTALLED_APPS = [*INSTALLED_APPS, *WAGTAIL_APPS, "blogimages.contrib.wagtail", "project.wagtailblog"]
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Wagtail's search index uses PostgreSQL's search fields; Django 6.1 checks that
    # django.contrib.postgres is installed for them (postgres.E005).
    INSTALLED_APPS.append("django.contrib.postgres")

ROOT_URLCONF = "project.urls_wagtail"
WAGTAIL_SITE_NAME = "blogimages Wagtail demo"
WAGTAILADMIN_BASE_URL = os.environ.get("WAGTAILADMIN_BASE_URL", "http://127.0.0.1:8000")
# Wagtail's editor posts whole StreamFields; the default 1000 fields is too few for long pages.
DATA_UPLOAD_MAX_NUMBER_FIELDS = 10_000

BLOGIMAGES_HOST_ADAPTER = "blogimages.contrib.wagtail.adapter.WagtailPageAdapter"
BLOGIMAGES_WAGTAIL_PAGES = {
    "wagtailblog.BlogPage": {
        "field": "body",
        "blocks": ["section"],
        "title": "heading",
        "text": ["text"],
        # "image": insert an image block after the section in a new draft on approve.
        "image_block": None,
    },
}
BLOGIMAGES_WAGTAIL_COLLECTION = "Generated images"
BLOGIMAGES_WAGTAIL_ON_UNAPPROVE = "keep"
