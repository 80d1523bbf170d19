"""The review panel's "Edit prompt and alt text" in Wagtail goes back to the review page at the
section, like Django admin and django CMS (``?next=``, checked to point into this site)."""

from __future__ import annotations

import re
from html import unescape
from urllib.parse import quote

from django.urls import reverse

from blogimages.hosts import get_host
from blogimages.models import SectionReview

BI = "blogimages_wagtail"


def test_edit_prompt_goes_back_to_the_section(client, admin_user, make_page, make_result):
    page = make_page(sections=2)
    section = get_host().sections(page)[1]
    make_result(section)
    review = SectionReview.objects.get()
    client.force_login(admin_user)
    review_url = reverse(f"{BI}:review", args=[page.pk])
    # The panel's link carries the review page at the section.
    html = client.get(review_url).content.decode()
    link = unescape(re.search(rf'href="([^"]*/{review.pk}/change/\?next=[^"]*)"', html).group(1))
    response = client.get(link)
    edit_url = reverse("blogimages_section_reviews:edit", args=[review.pk])
    target = f"{review_url}#bi-section-{section.key}"
    assert response.status_code == 302 and response["Location"] == f"{edit_url}?next={quote(target, safe='')}"
    # The edit form posts back with next, and saving lands on the section.
    form = client.get(response["Location"]).content.decode()
    assert f'action="{edit_url}?next=' in unescape(form)
    response = client.post(response["Location"], {"prompt_override": "A red boat", "alt_text": "Boat"})
    assert response.status_code == 302 and response["Location"] == target
    review.refresh_from_db()
    assert (review.prompt_override, review.alt_text) == ("A red boat", "Boat")


def test_a_foreign_next_is_ignored(client, admin_user, make_page, make_result):
    page = make_page(sections=1)
    make_result(get_host().sections(page)[0])
    review = SectionReview.objects.get()
    client.force_login(admin_user)
    response = client.get(reverse(f"{BI}:reviews") + f"{review.pk}/change/?next=https://evil.example/x")
    edit_url = reverse("blogimages_section_reviews:edit", args=[review.pk])
    assert response.status_code == 302 and response["Location"] == edit_url
    response = client.post(f"{edit_url}?next=//evil.example/x", {"prompt_override": "A boat", "alt_text": "Boat"})
    assert response.status_code == 302 and response["Location"] == reverse(f"{BI}:review", args=[page.pk])
