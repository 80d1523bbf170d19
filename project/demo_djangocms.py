"""``make demo-djangocms``: the example project as a django CMS 5.1 site with djangocms-stories,
stopped cleanly by Ctrl-C.

Starts (or reuses REDIS_URL's) Redis, migrates its own SQLite database in
``var/djangocms/`` (``make demo`` keeps ``var/``), loads the demo site (a home page, a blog
page with the stories apphook, a post of four text sections, the admin user), then runs one
RQ worker and the dev server until interrupted.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from project.demo import HOST, PORT, run_demo  # noqa: E402


def main() -> int:
    os.environ["DJANGO_SETTINGS_MODULE"] = "project.settings_djangocms"
    var_dir = Path(os.environ.setdefault("BLOGIMAGES_VAR_DIR", str(ROOT / "var" / "djangocms")))
    return run_demo(
        [["migrate", "--noinput", "-v0"], ["cmsblog_demo"]],
        f"\nblogimages django CMS demo running.\n"
        f"  Log in:     http://{HOST}:{PORT}/admin/  (user admin, password blogimages-demo)\n"
        f"  Blog post:  http://{HOST}:{PORT}/blog/cornish-coast/  (toolbar: Images › Review images)\n"
        "Press Ctrl-C to stop.\n",
        var_dir,
    )


if __name__ == "__main__":
    sys.exit(main())
