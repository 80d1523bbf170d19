"""What every ``blogimages_*`` command shares: the exit statuses the README's table promises.

0 done, 1 something failed, 2 bad arguments or configuration (nothing was done). Django
exits 1 for a failed system check and prints a traceback for ``ImproperlyConfigured``;
both are bad configuration here, so they exit 2 with their message.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, SystemCheckError

EXIT_FAILED = 1
EXIT_BAD_CONFIGURATION = 2


class BlogImagesCommand(BaseCommand):
    def execute(self, *args: Any, **options: Any) -> Any:
        try:
            return super().execute(*args, **options)
        except SystemCheckError as exc:
            exc.returncode = EXIT_BAD_CONFIGURATION
            raise
        except ImproperlyConfigured as exc:
            raise CommandError(f"Bad configuration: {exc}", returncode=EXIT_BAD_CONFIGURATION) from exc
