"""The django CMS integration in Django admin (where django CMS's toolbar opens its pages):
the review page of a post or page, and the list of images published to django-filer."""

from __future__ import annotations

from django.contrib import admin
from django.urls import path
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from .models import PublishedImage
from .views import CMSReviewPage


@admin.register(PublishedImage)
class PublishedImageAdmin(admin.ModelAdmin):
    """Read-only: a link is made by an approval, and goes with its filer image."""

    list_display = ["image_link", "result_link", "section_key", "created_at"]
    list_select_related = ["image", "result"]
    search_fields = ["=post_id", "=section_key", "image__name", "image__original_filename"]
    readonly_fields = ["result", "image", "post_type", "post_id", "section_key", "created_at"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description=_("filer image"))
    def image_link(self, obj: PublishedImage) -> str:
        return format_html('<a href="{}">{}</a>', obj.image.get_admin_change_url(), obj.image.label)

    @admin.display(description=_("generation result"))
    def result_link(self, obj: PublishedImage) -> str:
        from django.urls import reverse

        url = reverse(f"{self.admin_site.name}:blogimages_imagegenerationresult_change", args=[obj.result_id])
        return format_html('<a href="{}">#{}</a>', url, obj.result_id)

    def get_urls(self):
        wrap = self.admin_site.admin_view
        review = CMSReviewPage(self)
        name = "blogimages_djangocms_review"
        urls = [
            path("review/<str:object_id>/status/", wrap(review.status_view), name=f"{name}_status"),
            path(
                "review/<str:object_id>/section/<str:section_key>/", wrap(review.section_view), name=f"{name}_section"
            ),
            path("review/<str:object_id>/", wrap(review.review_view), name=name),
        ]
        return urls + super().get_urls()
