"""``make demo-wagtail``: the example project as a Wagtail site, stopped cleanly by Ctrl-C.

Starts (or reuses REDIS_URL's) Redis, migrates its own SQLite database in
``var/wagtail/`` (``make demo`` keeps ``var/``), loads the demo site (a blog page with
four sections, the admin user), then runs one RQ worker and the dev server until
interrupted.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from project.demo import HOST, PORT, run_demo  # noqa: E402


def main() -> int:
    os.environ["DJANGO_SETTINGS_MODULE"] = "project.settings_wagtail"
    var_dir = Path(os.environ.setdefault("BLOGIMAGES_VAR_DIR", str(ROOT / "var" / "wagtail")))
    os.environ.setdefault("WAGTAILADMIN_BASE_URL", f"http://{HOST}:{PORT}")
    return run_demo(
        [["migrate", "--noinput", "-v0"], ["wagtailblog_demo"]],
        f"\nblogimages Wagtail demo running.\n"
        f"  Wagtail admin:  http://{HOST}:{PORT}/admin/  (user admin, password blogimages-demo)\n"
        f"  Blog page:      http://{HOST}:{PORT}/cornish-coast/\n"
        f"  Django admin:   http://{HOST}:{PORT}/django-admin/\n"
        "Press Ctrl-C to stop.\n",
        var_dir,
    )


if __name__ == "__main__":
    sys.exit(main())
