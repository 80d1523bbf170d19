"""A site that mounts the admin but not ``blogimages.urls`` (check E042)."""

from django.contrib import admin
from django.urls import path

urlpatterns = [path("admin/", admin.site.urls)]
