"""Django's deprecation warnings raised from this project's code fail the tests, on every
Django version the suite runs on (5.2 LTS and 6.1): their class names change per release,
so the filters are made from what ``django.utils.deprecation`` defines."""

from __future__ import annotations


def pytest_configure(config):
    from django.utils import deprecation

    for name, value in vars(deprecation).items():
        if name.startswith("RemovedIn") and isinstance(value, type) and issubclass(value, Warning):
            # Only where the warning points at our code (Django's stacklevel names the caller);
            # third-party packages' own deprecations are theirs to fix.
            config.addinivalue_line(
                "filterwarnings", f"error::django.utils.deprecation.{name}:(blogimages|project|tests)\\b"
            )
