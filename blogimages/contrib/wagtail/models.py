"""The link from a blogimages result to the Wagtail image it became."""

from __future__ import annotations

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from wagtail.images import get_image_model_string


class PublishedImageQuerySet(models.QuerySet):
    def for_page(self, page):
        return self.filter(page_id=page.pk)

    def approved(self):
        """Links whose result is its section's approved image now."""
        return self.filter(result__approved_for__isnull=False)


class PublishedImage(models.Model):
    """One blogimages result, published as one Wagtail image.

    ``result`` is unique, so approving the same result again (a double click, a retried
    hook, a re-approval after a rejection with ``ON_UNAPPROVE = "keep"``) finds this row
    and never makes a second Wagtail image. Deleting the Wagtail image in Wagtail's
    admin deletes the link too; the next approval of the result makes a fresh one.
    """

    result = models.OneToOneField(
        "blogimages.ImageGenerationResult",
        models.CASCADE,
        related_name="wagtail_image_link",
        verbose_name=_("generation result"),
    )
    image = models.OneToOneField(
        get_image_model_string(),
        models.CASCADE,
        related_name="blogimages_source",
        verbose_name=_("Wagtail image"),
    )
    # Which section of which page it was approved for; SET_NULL keeps the record of a
    # deleted page's images (the Wagtail images themselves stay in the library).
    page = models.ForeignKey(
        "wagtailcore.Page", models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("page")
    )
    section_key = models.CharField(_("section key"), max_length=128, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)

    objects = PublishedImageQuerySet.as_manager()

    class Meta:
        verbose_name = _("published Wagtail image")
        indexes = [models.Index(fields=["page", "section_key"], name="blogimages_wt_page_section")]

    def __str__(self) -> str:
        return f"Result #{self.result_id} as Wagtail image #{self.image_id}"
