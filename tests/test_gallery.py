"""The gallery: every result newest first, filters, keyset pages, a constant number of queries,
in Django admin, Wagtail's admin and django CMS's (Django admin) sideframe."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from blogimages.admin_views import gallery
from blogimages.hosts import get_host
from blogimages.models import ImageGenerationResult, ImageStyle, ResultStatus

pytestmark = pytest.mark.django_db

URL = "/admin/blogimages/imagegenerationresult/gallery/"
#: The library fixture's results, newest first.
ORDER = ["newest", "queued", "ink", "failed", "sketch", "undecided", "rejected", "approved"]


def shown(response) -> list[int]:
    """Result ids of the gallery's cards, in page order."""
    html = response.content.decode()
    grid = html.split("data-bi-gallery>", 1)[1].split("</nav>", 1)[0]
    return [int(i) for i in re.findall(r'<article class="bi-card bi-gallery__item[^"]*" id="bi-card-(\d+)"', grid)]


def playground_result(
    *, provider="placeholder", model="", status=ResultStatus.SUCCEEDED, user=None, style=None, at=None
):
    return ImageGenerationResult.objects.create(
        group=uuid.uuid4(),
        prompt="A lighthouse",
        final_prompt="A lighthouse",
        provider=provider,
        provider_used=provider if status == ResultStatus.SUCCEEDED else "",
        model=model,
        status=status,
        requested_by=user,
        style=style,
        created_at=at or timezone.now(),
    )


@pytest.fixture
def library(admin_user, make_editor, make_post, make_result, approve, reject):
    """Eight results across providers, models, styles, people and decisions, one minute apart."""
    other = make_editor("ann", perms=["generate_images"])
    ink = ImageStyle.objects.create(name="Ink", prompt_template="{prompt}, ink")
    start = timezone.now() - timedelta(hours=1)
    post = make_post(sections=3)
    sections = get_host().sections(post)
    rows = {}
    rows["approved"] = make_result(sections[0])
    rows["rejected"] = make_result(sections[1])
    rows["undecided"] = make_result(sections[2])
    for n, key in enumerate(["approved", "rejected", "undecided"]):
        ImageGenerationResult.objects.filter(pk=rows[key].pk).update(
            created_at=start + timedelta(minutes=n), requested_by=admin_user, model="sd35"
        )
    approve(rows["approved"], user=admin_user)
    reject(result=rows["rejected"], user=admin_user, comment="Too dark")
    rows["sketch"] = playground_result(provider="sketch", model="flux", user=other, at=start + timedelta(minutes=3))
    rows["failed"] = playground_result(status=ResultStatus.FAILED, user=other, at=start + timedelta(minutes=4))
    rows["ink"] = playground_result(style=ink, user=admin_user, at=start + timedelta(minutes=5))
    rows["queued"] = playground_result(status=ResultStatus.QUEUED, at=start + timedelta(minutes=6))
    rows["newest"] = playground_result(model="flux", at=start + timedelta(minutes=7))
    return rows, other, ink


@pytest.fixture(autouse=True)
def providers(settings):
    base = "blogimages.providers.placeholder.PlaceholderProvider"
    settings.BLOGIMAGES_PROVIDERS = {
        "placeholder": {"BACKEND": base, "OPTIONS": {"delay": 0.0}},
        "sketch": {"BACKEND": base, "OPTIONS": {"delay": 0.0}},
    }


def test_newest_first_with_every_filter(client, admin_user, library):
    rows, other, ink = library
    client.force_login(admin_user)
    order = ORDER
    response = client.get(URL)
    assert response.status_code == 200
    assert shown(response) == [rows[k].pk for k in order]
    html = response.content.decode()
    assert 'id="bi-viewer-template"' in html and "blogimages/viewer.js" in html  # images open in the viewer
    assert f'data-bi-view="{rows["newest"].pk}"' not in html  # no image file: nothing to view
    assert f'data-bi-view="{rows["approved"].pk}"' in html

    def ids(**params):
        return shown(client.get(URL, params))

    assert ids(provider="sketch") == [rows["sketch"].pk]
    assert ids(model="flux") == [rows["newest"].pk, rows["sketch"].pk]
    assert ids(style=ink.pk) == [rows["ink"].pk]
    assert ids(status="failed") == [rows["failed"].pk]
    assert ids(decision="approved") == [rows["approved"].pk]
    assert ids(decision="rejected") == [rows["rejected"].pk]
    assert ids(decision="undecided") == [rows[k].pk for k in order if k not in ("approved", "rejected")]
    assert ids(who=other.pk) == [rows["failed"].pk, rows["sketch"].pk]
    assert ids(who=other.pk, provider="sketch") == [rows["sketch"].pk]
    # Nonsense matches nothing and never errors.
    assert ids(style="x") == [] and ids(decision="maybe") == [] and ids(who="-1") == []
    assert "No image matches these filters." in client.get(URL, {"status": "nope"}).content.decode()
    # The filter lists: providers from settings, models, styles and requesters from the database.
    assert '<option value="flux">flux</option>' in html and '<option value="sd35">sd35</option>' in html
    assert f'<option value="{other.pk}">ann</option>' in html and f'<option value="{ink.pk}">Ink</option>' in html


def test_keyset_pages_never_skip_or_repeat(client, admin_user, library, monkeypatch):
    rows, _other, _ink = library
    monkeypatch.setattr(gallery, "PAGE_SIZE", 3)
    client.force_login(admin_user)
    first = client.get(URL)
    page1 = shown(first)
    assert len(page1) == 3
    older = re.search(r'href="\?([^"]+)" rel="next"', first.content.decode()).group(1).replace("&amp;", "&")
    assert "after=" in older and 'rel="prev"' not in first.content.decode()
    # An image made while the editor reads page one does not shift page two.
    playground_result()
    second = client.get(URL + "?" + older)
    page2 = shown(second)
    third_link = re.search(r'href="\?([^"]+)" rel="next"', second.content.decode()).group(1).replace("&amp;", "&")
    page3 = shown(client.get(URL + "?" + third_link))
    everything = [rows[k].pk for k in ORDER]
    assert page1 + page2 + page3 == everything
    assert 'rel="next"' not in client.get(URL + "?" + third_link).content.decode()
    # And back: "newer" from page two is page one.
    newer = re.search(r'href="\?([^"]+)" rel="prev"', second.content.decode()).group(1).replace("&amp;", "&")
    assert shown(client.get(URL + "?" + newer)) == page1
    # Filters travel with the page links.
    filtered = client.get(URL, {"decision": "undecided"}).content.decode()
    assert "decision=undecided" in re.search(r'href="\?([^"]+)" rel="next"', filtered).group(1)


def test_a_broken_page_link_shows_the_newest_with_a_sentence(client, admin_user, library):
    rows, _other, _ink = library
    client.force_login(admin_user)
    for bad in ("nonsense", "2026-13-45T99:00~1", "~", "2026-01-01T00:00:00~" + "9" * 40):
        response = client.get(URL, {"after": bad})
        assert response.status_code == 200
        assert "That page link is not valid any more" in response.content.decode()
        assert shown(response)[0] == rows["newest"].pk


def test_query_count_is_the_same_for_eight_images_or_forty(
    client, admin_user, library, make_post, make_result, django_assert_num_queries
):
    client.force_login(admin_user)
    client.get(URL)  # warm the content type and permission caches

    # session, user, the page's rows (cards joined in), the models, styles and requesters lists
    with django_assert_num_queries(6):
        assert len(shown(client.get(URL))) == 8
    post = make_post(sections=4, slug="more")
    for section in get_host().sections(post):
        for _ in range(8):
            make_result(section)
    for _ in range(8):
        playground_result(user=admin_user, model="m")
    with django_assert_num_queries(6):
        assert len(shown(client.get(URL))) == 48
    with django_assert_num_queries(6):
        client.get(URL, {"decision": "undecided", "who": admin_user.pk})


def test_who_may_see_it(client, make_editor, library):
    nobody = make_editor("nobody")
    nobody.user_permissions.clear()
    client.force_login(nobody)
    assert client.get(URL).status_code == 403
    viewer = make_editor("viewer")  # view permission on results
    client.force_login(viewer)
    response = client.get(URL)
    assert response.status_code == 200
    assert "Refine…" not in response.content.decode()  # may look, may not generate


def test_reachable_from_the_results_list_and_the_playground(client, admin_user):
    client.force_login(admin_user)
    changelist = client.get("/admin/blogimages/imagegenerationresult/").content.decode()
    assert f'href="{URL}"' in changelist
    playground = client.get("/admin/blogimages/imagegenerationresult/playground/").content.decode()
    assert f'href="{URL}"' in playground


def test_wagtail_gallery_and_menu(client, settings, make_wagtail_editor, make_post, make_result):
    from django.urls import reverse

    from tests.conftest import use_wagtail_host

    use_wagtail_host(
        settings,
        {"wagtailblog.BlogPage": {"field": "body", "blocks": ["section"], "title": "heading", "text": ["text"]}},
    )
    editor = make_wagtail_editor(perms=("generate_images",), is_staff=False)
    first = playground_result(user=editor)
    client.force_login(editor)
    url = reverse("blogimages_wagtail:gallery")
    response = client.get(url)
    assert response.status_code == 200
    html = response.content.decode()
    assert f'id="bi-card-{first.pk}"' in html and 'id="bi-viewer-template"' in html
    assert "wagtailadmin" in html or "w-" in html  # Wagtail's chrome
    assert url in client.get(reverse("wagtailadmin_home")).content.decode()  # the menu (the sidebar's JSON)
    # The viewer's endpoints live under the results URL the templates know.
    assert (
        reverse("blogimages_wagtail:viewer_refine", args=[1])
        == reverse("blogimages_wagtail:results") + "viewer/1/refine/"
    )


def test_wagtail_review_page_has_the_viewer_and_its_endpoints(client, settings, make_wagtail_editor, make_result):
    import json

    from django.urls import reverse
    from wagtail.models import Site

    from project.wagtailblog.models import BlogPage
    from tests import test_wagtail_admin as wagtail_tests
    from tests.conftest import use_wagtail_host

    use_wagtail_host(settings, wagtail_tests.PAGES)
    body = [("section", {"heading": "Harbour", "text": "<p>Boats at dawn</p>"})]
    page = BlogPage(title="Harbour", slug="harbour-viewer", body=body)
    Site.objects.get(is_default_site=True).root_page.add_child(instance=page)
    page.save_revision().publish()
    page.refresh_from_db()
    (section,) = get_host().sections(page)
    result = make_result(section)
    editor = make_wagtail_editor(perms=("generate_images", "review_images"), is_staff=False)
    client.force_login(editor)
    html = client.get(reverse("blogimages_wagtail:review", args=[page.pk])).content.decode()
    assert 'id="bi-viewer-template"' in html and 'data-results-url="/admin/blogimages/results/"' in html
    # The card's viewer tools: filled by viewer.js from the page's template (the page stays light).
    assert 'id="bi-tools-template"' in html and 'data-bi-open data-bi-mode="refine"' in html
    assert re.search(rf'id="bi-card-{result.pk}"[\s\S]*?data-bi-fill="uvr"', html)
    options = client.get(reverse("blogimages_wagtail:viewer_options", args=[result.pk]))
    assert options.status_code == 200 and "operations" in json.loads(options.content)
    refused = client.post(reverse("blogimages_wagtail:viewer_refine", args=[result.pk]), {"operation": "refine"})
    assert refused.status_code == 400 and json.loads(refused.content)["error"]
