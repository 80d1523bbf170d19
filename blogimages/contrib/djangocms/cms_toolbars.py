"""The "Images" menu of django CMS's toolbar on a post or page that has sections: the review
page, the prompt playground and the status page in the sideframe, and "Generate for all
sections" in one click. django CMS imports this module itself (``cms_toolbars`` discovery).
"""

from __future__ import annotations

from cms.constants import REFRESH_PAGE
from cms.toolbar_base import CMSToolbar
from cms.toolbar_pool import toolbar_pool
from django.urls import NoReverseMatch
from django.utils.translation import gettext_lazy as _

from ... import services
from ...hosts import get_host
from .conf import djangocms_settings

MENU_ID = "blogimages"
#: Django permissions that show the playground and status page (as in Django admin).
TOOL_PERMISSIONS = ("blogimages.view_imagegenerationresult", "blogimages.change_imagegenerationresult")


@toolbar_pool.register
class BlogImagesToolbar(CMSToolbar):
    def post(self):
        """The post behind the toolbar's object (a post's or a page's content), if it has sections."""
        obj = self.toolbar.get_object()
        if obj is None and getattr(self.request, "current_page", None) is not None:
            obj = self.request.current_page
        if obj is None:
            return None
        if djangocms_settings.config_for_content(type(obj)) is None and not djangocms_settings.configs_for_grouper(
            type(obj)
        ):
            return None
        from .adapter import DjangoCMSAdapter

        host = get_host()
        if not isinstance(host, DjangoCMSAdapter):
            return None
        return host.post_for(obj)

    def populate(self):
        user = self.request.user
        if not (user.is_authenticated and user.is_staff):
            return
        post = self.post()
        if post is None or not services.can(user, "view", post):
            return
        from .views import review_url, tool_urls

        try:
            review = review_url(post)
            tools = tool_urls()
        except NoReverseMatch:  # the admin is not mounted
            return
        menu = self.toolbar.get_or_create_menu(MENU_ID, _("Images"))
        menu.add_sideframe_item(_("Review images"), url=review, on_close=REFRESH_PAGE)
        if services.can(user, "generate", post):
            menu.add_ajax_item(
                _("Generate for all sections"),
                action=review,
                data={"do": "generate-post"},
                question=_("Queue an image for every section of this post?"),
                on_success=REFRESH_PAGE,
            )
            menu.add_ajax_item(
                _("Generate for sections without an approved image"),
                action=review,
                data={"do": "generate-missing"},
                on_success=REFRESH_PAGE,
            )
        if any(user.has_perm(perm) for perm in TOOL_PERMISSIONS):
            menu.add_break("blogimages-tools")
            menu.add_sideframe_item(_("Prompt playground"), url=tools["playground"])
            menu.add_sideframe_item(_("Gallery"), url=tools["gallery"])
            menu.add_sideframe_item(_("Image generation status"), url=tools["status_page"])
