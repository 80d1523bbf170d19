"""The host adapter protocol, like Django's authentication backends: a small class the
core asks about the host's content, and nothing else of the host is imported.

A *post* is whatever object carries sections (a blog post row, a Wagtail page); blogimages
refers to it by content type and primary key, so no blogimages migration depends on a
host app. A *section* is a part of the post that gets one image, found again by a key
that is stable while the section exists (a row's primary key, a StreamField block's id).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.contrib.contenttypes.models import ContentType

if TYPE_CHECKING:  # pragma: no cover
    from ..models import ImageGenerationResult, SectionReview

#: What a user may do with a post's images; each maps to one of blogimages' permissions.
ACTIONS = ("view", "generate", "review", "upload")


@dataclass(frozen=True)
class Section:
    """One section of a post, as the adapter reads it now."""

    post: Any
    key: str
    title: str
    text: str  # plain text: no HTML tags, entities decoded
    position: int = 0
    #: The host's own object for the section (a model row, a StreamField block), for templates.
    obj: Any = None

    @property
    def pk(self) -> str:
        # Templates and older code say ``section.pk``; the key is the section's identity.
        return self.key


def post_reference(post: Any) -> tuple[ContentType, str]:
    """``(content type, primary key as text)``: how blogimages rows point at a post."""
    return ContentType.objects.get_for_model(post), str(post.pk)


class HostAdapter:
    """Everything blogimages needs to know about the host. Subclass and override."""

    #: Shown in admin and the README's troubleshooting; say which CMS the adapter serves.
    label = "host"

    # --- posts ----------------------------------------------------------------------------
    def post_for(self, obj: Any) -> Any:
        """The post behind ``obj`` (a page, an object the editor is looking at)."""
        return obj

    def get_post(self, content_type: ContentType, object_id: str) -> Any | None:
        """The post a stored reference points at, or ``None`` if it is gone."""
        model = content_type.model_class()
        if model is None:
            return None
        return self.post_for(model._default_manager.filter(pk=object_id).first())

    def find_post(self, object_id: str) -> Any | None:
        """The post with this id (or slug, where posts have one), for URLs and commands
        that name a post by id alone."""
        return None

    def posts(self) -> Iterable[Any]:
        """Every post that has sections, for site-wide commands (``--only-missing``)."""
        return []

    def post_title(self, post: Any) -> str:
        return str(post)

    def post_admin_url(self, post: Any) -> str:
        """Where an editor edits the post; blank if there is no such page."""
        return ""

    def post_public_url(self, post: Any) -> str:
        url = getattr(post, "get_absolute_url", None) or getattr(post, "get_url", None)
        return url() if callable(url) else ""

    # --- sections -------------------------------------------------------------------------
    def sections(self, post: Any) -> list[Section]:
        """The post's sections, in order."""
        raise NotImplementedError

    def section(self, post: Any, key: str) -> Section | None:
        """The section with ``key``, or ``None`` if the post no longer has it."""
        key = str(key)
        return next((section for section in self.sections(post) if section.key == key), None)

    def find_section(self, key: str) -> Section | None:
        """The section with this key in whichever post, where keys are unique site-wide
        (a row's primary key); ``None`` where a key needs its post to mean anything."""
        return None

    def section_for(self, obj: Any) -> Section | None:
        """The section behind a host object a template holds (a row, a block), if any."""
        return obj if isinstance(obj, Section) else None

    # --- permissions ----------------------------------------------------------------------
    def has_permission(self, user: Any, post: Any, action: str) -> bool:
        """Whether ``user`` may ``action`` (one of :data:`ACTIONS`) this post's images,
        as far as the host is concerned; blogimages' own permissions are checked too."""
        return True

    # --- the publish hook -----------------------------------------------------------------
    def image_approved(
        self,
        review: SectionReview,
        result: ImageGenerationResult,
        *,
        replaced: ImageGenerationResult | None = None,
        user: Any = None,
    ) -> None:
        """Called after commit when ``result`` became the section's approved image
        (``replaced``: the one it took over from). Must be idempotent."""

    def image_unapproved(self, review: SectionReview, result: ImageGenerationResult, *, user: Any = None) -> None:
        """Called after commit when ``result`` stopped being the section's approved image
        without a replacement (a rejection)."""

    def alt_text_changed(self, review: SectionReview, result: ImageGenerationResult) -> None:
        """Called after commit when the editor changed the approved image's alt text; a host
        that copied it into an image of its own (Wagtail's, filer's) updates the copy."""
