"""django-rq's dashboard included bare, as its own README shows it (check W046)."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/rq/", include("django_rq.urls")),
    path("admin/", admin.site.urls),
    path("", include("blogimages.urls")),
]
