"""Admin for the editors' library and the review workflow (fleshed out below)."""

from __future__ import annotations

from django.contrib import admin


class PostImagesAdminMixin:
    """Mix into the host's post ModelAdmin: the generate action and the review page."""
