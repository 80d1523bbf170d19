"""The extra admin pages: a post's image review, the prompt playground and the status page.

Django admin wires them through ``get_urls()`` of the ModelAdmins in
:mod:`blogimages.admin` (wrapped in ``admin_site.admin_view``); the CMS integrations
(``blogimages.contrib.*``) render the same views in their own admin. Every change goes
through :mod:`blogimages.services`; these views only read rows in a constant number of
queries, check permissions server-side and turn service errors into one clear message.
"""

# The gallery and the image viewer (refine, send to a section): hosts route to these modules.
from . import gallery, viewer
from .common import (
    PERMISSIONS,
    Candidate,
    admin_tool_urls,
    can,
    error_text,
    render_info,
    report_generation,
    report_queue_errors,
    section_label,
    user_perms,
)
from .playground import (
    playground_cards,
    playground_models,
    playground_models_view,
    playground_page,
    playground_status,
    playground_status_view,
    playground_view,
)
from .review import OPERATIONS, Panel, PostReview, ReviewPage, load_panels
from .status import status_context, status_view

__all__ = [
    "OPERATIONS",
    "PERMISSIONS",
    "Candidate",
    "Panel",
    "PostReview",
    "ReviewPage",
    "admin_tool_urls",
    "can",
    "error_text",
    "load_panels",
    "playground_cards",
    "playground_models",
    "playground_models_view",
    "playground_page",
    "playground_status",
    "playground_status_view",
    "playground_view",
    "render_info",
    "report_generation",
    "report_queue_errors",
    "section_label",
    "status_context",
    "status_view",
    "user_perms",
    "gallery",
    "viewer",
]
