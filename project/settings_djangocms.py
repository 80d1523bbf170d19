"""The example project as a django CMS 5.1 site with djangocms-stories: ``make demo-djangocms``.

The same project plus django CMS, djangocms-versioning, djangocms-text, djangocms-stories
and django-filer, with blogimages reading sections from the text plugins of a post's (or
a page's) "content" placeholder. Its database and embedded Redis live in
``var/djangocms/`` so ``make demo`` keeps its own.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("BLOGIMAGES_VAR_DIR", str(Path(__file__).resolve().parent.parent / "var" / "djangocms"))

from project.settings import *  # noqa: E402,F401,F403
from project.settings import DEBUG, INSTALLED_APPS, MIDDLEWARE, TEMPLATES  # noqa: E402

CMS_APPS = [
    "django.contrib.sites",
    "cms",
    "menus",
    "treebeard",
    "sekizai",
    "djangocms_text",
    "djangocms_versioning",
    "filer",
    "easy_thumbnails",
    "parler",
    "meta",
    "sortedm2m",
    "taggit",
    "djangocms_stories",
]
# The example app first: its templates override djangocms-stories' base template.
INSTALLED_APPS = [*INSTALLED_APPS, "project.cmsblog", *CMS_APPS, "blogimages.contrib.djangocms"]

MIDDLEWARE = [
    # First, so a newly published apphook page answers without a restart.
    "cms.middleware.utils.ApphookReloadMiddleware",
    *MIDDLEWARE[:3],
    "django.middleware.locale.LocaleMiddleware",
    *MIDDLEWARE[3:],
    "cms.middleware.user.CurrentUserMiddleware",
    "cms.middleware.page.CurrentPageMiddleware",
    "cms.middleware.toolbar.ToolbarMiddleware",
    "cms.middleware.language.LanguageCookieMiddleware",
]
TEMPLATES = [
    {
        **TEMPLATES[0],
        "OPTIONS": {
            **TEMPLATES[0]["OPTIONS"],
            "context_processors": [
                *TEMPLATES[0]["OPTIONS"]["context_processors"],
                "sekizai.context_processors.sekizai",
                "cms.context_processors.cms_settings",
            ],
        },
    }
]
ROOT_URLCONF = "project.urls_djangocms"
SITE_ID = 1
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English")]
CMS_CONFIRM_VERSION4 = True
CMS_TEMPLATES = [("cmsblog/page.html", "Page")]
# The toolbar opens admin pages (the review page among them) in a same-origin iframe.
X_FRAME_OPTIONS = "SAMEORIGIN"
META_SITE_PROTOCOL = "http" if DEBUG else "https"
META_USE_SITES = True
THUMBNAIL_PROCESSORS = (
    "easy_thumbnails.processors.colorspace",
    "easy_thumbnails.processors.autocrop",
    "filer.thumbnail_processors.scale_and_crop_with_subject_location",
    "easy_thumbnails.processors.filters",
)
THUMBNAIL_HIGH_RESOLUTION = True
# The CMS posts whole plugin trees; the default 1000 fields is too few for long posts.
DATA_UPLOAD_MAX_NUMBER_FIELDS = 10_000

BLOGIMAGES_HOST_ADAPTER = "blogimages.contrib.djangocms.adapter.DjangoCMSAdapter"
# Which content models have sections, and in which placeholder (these are the defaults).
BLOGIMAGES_DJANGOCMS_CONTENT = {
    "djangocms_stories.PostContent": {"placeholder": "content"},
    "cms.PageContent": {"placeholder": "content"},
}
BLOGIMAGES_DJANGOCMS_FILER_FOLDER = "Generated images"
BLOGIMAGES_DJANGOCMS_INSERT_PLUGIN = True
# django CMS 5.1's PageManager trips treebeard 5's forward-compatibility warning on every
# command; django CMS pins treebeard<6, so it is noise here.
SILENCED_SYSTEM_CHECKS = [
    "treebeard.E001",
    # django CMS's sideframe and toolbar frame its own pages: SAMEORIGIN, not DENY (above).
    "security.W019",
]
