"""Public URLs of blogimages (the JSON API). Include with ``path("", include("blogimages.urls"))``."""

from django.urls import path  # noqa: F401

app_name = "blogimages"
urlpatterns: list = []
