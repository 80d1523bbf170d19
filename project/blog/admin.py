from django.contrib import admin

from blogimages.admin import PostImagesAdminMixin

from .models import Post, Section


class SectionInline(admin.StackedInline):
    model = Section
    extra = 0


@admin.register(Post)
class PostAdmin(PostImagesAdminMixin, admin.ModelAdmin):
    list_display = ["title", "slug", "published", "created_at"]
    prepopulated_fields = {"slug": ["title"]}
    search_fields = ["title"]
    inlines = [SectionInline]


@admin.register(Section)
class SectionAdmin(admin.ModelAdmin):
    list_display = ["heading", "post", "position"]
    list_select_related = ["post"]
