"""blogimages inside Wagtail's admin: the review page, its actions, playground, status, library, menu."""

from __future__ import annotations

import functools
import io
import uuid

import pytest
from django.urls import reverse

from blogimages.models import ImageGenerationResult, ImagePromptExample, ImageStyle, ResultStatus, SectionReview
from tests.conftest import png_bytes, use_wagtail_host

PAGES = {"wagtailblog.BlogPage": {"field": "body", "blocks": ["section"], "title": "heading", "text": ["text"]}}
BI = "blogimages_wagtail"
ALL_BI_PERMS = ("generate_images", "review_images", "upload_images")


@pytest.fixture(autouse=True)
def wagtail_host(settings):
    """The Wagtail adapter and the Wagtail example site's URLs."""
    return use_wagtail_host(settings, PAGES)


@pytest.fixture
def make_page(db):
    """A published BlogPage with ``sections`` "section" blocks under the default site's root."""
    from wagtail.models import Site

    from project.wagtailblog.models import BlogPage

    def make(sections=4, *, title="A walk by the sea", slug=None):
        body = [
            ("section", {"heading": f"Section {i + 1}", "text": f"<p>A lighthouse on a cliff, view {i + 1}</p>"})
            for i in range(sections)
        ]
        page = BlogPage(title=title, slug=slug or f"walk-{uuid.uuid4().hex[:8]}", body=body)
        Site.objects.get(is_default_site=True).root_page.add_child(instance=page)
        page.save_revision().publish()
        page.refresh_from_db()
        return page

    return make


@pytest.fixture
def make_wagtail_editor(make_wagtail_editor):
    """tests/conftest.py's Wagtail editor, here no staff member (Wagtail's admin does not ask
    for it) and with all of blogimages' permissions unless told otherwise."""
    return functools.partial(make_wagtail_editor, perms=ALL_BI_PERMS, is_staff=False)


def sections_of(page):
    from blogimages.hosts import get_host

    return get_host().sections(page)


def denied(response) -> bool:
    """Wagtail's answer to PermissionDenied: back to the dashboard with "Sorry, you do not have
    permission" (a plain 403 for requests made with X-Requested-With)."""
    return response.status_code == 403 or (
        response.status_code == 302 and response["Location"] == reverse("wagtailadmin_home")
    )


def review_url(page, name="review", *args) -> str:
    return reverse(f"{BI}:{name}", args=[page.pk, *args])


# --- the review page ----------------------------------------------------------------------------


def test_review_page_renders_in_wagtail_chrome(client, make_page, make_wagtail_editor, make_result):
    page = make_page(sections=3)
    make_result(sections_of(page)[0])
    client.force_login(make_wagtail_editor())
    response = client.get(review_url(page))
    assert response.status_code == 200
    html = response.content.decode()
    assert [t.name for t in response.templates][:2] == [
        "blogimages_wagtail/admin/review.html",
        "wagtailadmin/generic/base.html",
    ]
    assert 'id="wagtail-sidebar"' in html  # Wagtail's own furniture
    assert "w-breadcrumbs" in html and page.title in html
    assert html.count('class="bi-panel ') == 3
    assert 'data-bi-live="review"' in html
    assert f'data-status-url="{review_url(page, "review_status")}"' in html
    assert f'data-section-url="{review_url(page, "review_section", "0")}"' in html
    assert "blogimages/live.js" in html and "blogimages_wagtail/wagtail.css" in html
    assert reverse("wagtailadmin_pages:edit", args=[page.pk]) in html
    assert "Generate for all sections" in html and "bi-approve" in html


def test_status_json_and_section_panel(client, make_page, make_wagtail_editor, make_result):
    page = make_page(sections=2)
    first = sections_of(page)[0]
    result = make_result(first)
    client.force_login(make_wagtail_editor())
    data = client.get(review_url(page, "review_status")).json()
    assert data == {
        "active": False,
        "results": [
            {
                "id": result.pk, "section": first.key, "status": "succeeded", "status_label": "Succeeded",
                "active": False, "progress": 100, "message": "", "version": data["results"][0]["version"],
            }
        ],
    }  # fmt: skip
    panel = client.get(review_url(page, "review_section", first.key))
    assert panel.status_code == 200
    html = panel.content.decode()
    assert html.lstrip().startswith(f'<section class="bi-panel bi-panel--pending" id="bi-section-{first.key}"')
    assert f'data-result="{result.pk}"' in html
    assert client.get(review_url(page, "review_section", "no-such-block")).status_code == 404


def test_unknown_or_unconfigured_page_is_404(client, admin_user, make_page, settings):
    from wagtail.models import Page

    client.force_login(admin_user)
    assert client.get(reverse(f"{BI}:review", args=[999999])).status_code == 404
    root = Page.objects.get(depth=2)  # Wagtail's welcome page: not a BlogPage
    assert client.get(reverse(f"{BI}:review", args=[root.pk])).status_code == 404
    page = make_page(sections=1)
    settings.BLOGIMAGES_WAGTAIL_PAGES = {}
    assert client.get(review_url(page)).status_code == 404


def test_login_required(client, make_page):
    page = make_page(sections=1)
    response = client.get(review_url(page))
    assert response.status_code == 302 and reverse("wagtailadmin_login") in response["Location"]


@pytest.mark.parametrize("name", ["review", "review_status"])
def test_editor_without_page_edit_permission_is_refused(client, make_page, make_wagtail_editor, name):
    page = make_page(sections=1)
    client.force_login(make_wagtail_editor("reader", page_perms=()))
    assert denied(client.get(review_url(page, name)))
    ajax = client.get(review_url(page, name), headers={"x-requested-with": "XMLHttpRequest"})
    assert ajax.status_code == 403


def test_generate_approve_and_publish_through_wagtail_urls(
    client, make_page, make_wagtail_editor, run_worker, django_capture_on_commit_callbacks
):
    from wagtail.images import get_image_model

    page = make_page(sections=2)
    sections = sections_of(page)
    client.force_login(make_wagtail_editor())
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(review_url(page), {"do": "generate-post", "provider": "placeholder"}, follow=True)
    assert response.redirect_chain[-1][0] == review_url(page)
    assert "Queued 2 images." in response.content.decode()  # Wagtail's messages list
    assert run_worker() == 2
    result = ImageGenerationResult.objects.get(review__section_key=sections[0].key)
    assert result.status == ResultStatus.SUCCEEDED
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            review_url(page), {"do": f"approve:{result.pk}", "section": sections[0].key, "publish_without_alt": "1"}
        )
    assert response.status_code == 302 and response["Location"].endswith(f"#bi-section-{sections[0].key}")
    result.refresh_from_db()
    assert result.is_approved
    image = get_image_model().objects.get()
    assert image.collection.name == "Generated images"
    assert "ai-generated" in [t.name for t in image.tags.all()]


def test_comment_and_reject_messages(client, make_page, make_wagtail_editor, make_result):
    page = make_page(sections=1)
    section = sections_of(page)[0]
    result = make_result(section)
    client.force_login(make_wagtail_editor())
    response = client.post(
        review_url(page), {"do": f"reject:{result.pk}", "section": section.key, "comment": "Too dark"}, follow=True
    )
    assert f"Rejected image #{result.pk}" in response.content.decode()
    assert SectionReview.objects.get().comment == "Too dark"


def test_upload_through_wagtail_urls(client, make_page, make_wagtail_editor):
    page = make_page(sections=1)
    section = sections_of(page)[0]
    client.force_login(make_wagtail_editor())
    upload = io.BytesIO(png_bytes(320, 200))
    upload.name = "harbour.png"
    response = client.post(review_url(page), {"do": "upload", "section": section.key, "file": upload}, follow=True)
    assert "Uploaded harbour.png" in response.content.decode()
    assert ImageGenerationResult.objects.get().source == "uploaded"


def test_missing_collection_permission_blocks_approve_and_upload(client, make_page, make_wagtail_editor, make_result):
    page = make_page(sections=1)
    section = sections_of(page)[0]
    result = make_result(section)
    client.force_login(make_wagtail_editor("nocollection", image_perms=()))
    # The page is visible and generating is allowed: only the image library is out of reach.
    html = client.get(review_url(page)).content.decode()
    assert "Generate for all sections" in html
    assert "bi-approve" not in html and 'value="upload"' not in html
    assert denied(client.post(review_url(page), {"do": f"approve:{result.pk}"}))
    upload = io.BytesIO(png_bytes())
    upload.name = "x.png"
    assert denied(client.post(review_url(page), {"do": "upload", "section": section.key, "file": upload}))
    result.refresh_from_db()
    assert not result.is_approved and ImageGenerationResult.objects.count() == 1


def test_missing_blogimages_permission_blocks_generate(client, make_page, make_wagtail_editor):
    page = make_page(sections=1)
    client.force_login(make_wagtail_editor("reviewer", perms=("review_images",)))
    html = client.get(review_url(page)).content.decode()
    assert "Generate for all sections" not in html
    assert denied(client.post(review_url(page), {"do": "generate-post"}))
    assert not ImageGenerationResult.objects.exists()


def test_result_and_review_links_stay_in_wagtail(client, admin_user, make_page, make_result):
    page = make_page(sections=1)
    result = make_result(sections_of(page)[0])
    client.force_login(admin_user)
    response = client.get(reverse(f"{BI}:result", args=[result.pk]))
    assert response.status_code == 200 and "Image #" in response.content.decode()
    assert reverse(f"{BI}:results") + f"{result.pk}/change/" == reverse(f"{BI}:result", args=[result.pk])
    review = SectionReview.objects.get()
    response = client.get(reverse(f"{BI}:reviews") + f"{review.pk}/change/")
    assert response.status_code == 302
    assert response["Location"] == reverse("blogimages_section_reviews:edit", args=[review.pk])
    response = client.post(response["Location"], {"prompt_override": "A red boat", "alt_text": "Boat"})
    assert response.status_code == 302 and response["Location"] == review_url(page)
    review.refresh_from_db()
    assert (review.prompt_override, review.alt_text) == ("A red boat", "Boat")
    # Review rows are neither added nor deleted by hand.
    assert denied(client.get(reverse("blogimages_section_reviews:delete", args=[review.pk])))
    assert SectionReview.objects.filter(pk=review.pk).exists()


# --- the "Images" entry of a page ------------------------------------------------------------------


def test_page_editor_offers_images(client, make_page, make_wagtail_editor):
    page = make_page(sections=1)
    client.force_login(make_wagtail_editor())
    html = client.get(reverse("wagtailadmin_pages:edit", args=[page.pk])).content.decode()
    assert html.count(f'href="{review_url(page)}"') >= 2  # header "…" menu and the action menu
    assert 'data-blogimages-review="header"' in html


def test_no_images_entry_without_page_permission_or_configuration(client, make_page, make_wagtail_editor):
    from wagtail.models import Page

    page = make_page(sections=1)
    # Publishing alone is not editing: no "Images" (and the page editor refuses too).
    client.force_login(make_wagtail_editor("publisher", page_perms=("publish_page",)))
    html = client.get(reverse("wagtailadmin_explore", args=[page.get_parent().pk])).content.decode()
    assert review_url(page) not in html
    # A page that is not configured in BLOGIMAGES_WAGTAIL_PAGES has no entry either.
    client.force_login(make_wagtail_editor("editor2"))
    welcome = Page.objects.get(depth=2)
    html = client.get(reverse("wagtailadmin_pages:edit", args=[welcome.pk])).content.decode()
    assert "data-blogimages-review" not in html


def test_editor_without_blogimages_permissions_sees_images_read_only(client, make_page, make_wagtail_editor):
    page = make_page(sections=1)
    client.force_login(make_wagtail_editor("plain-editor", perms=()))
    assert review_url(page) in client.get(reverse("wagtailadmin_pages:edit", args=[page.pk])).content.decode()
    html = client.get(review_url(page)).content.decode()
    assert "Generate for all sections" not in html and 'value="upload"' not in html
    assert 'value="comment"' in html


def test_page_listing_more_buttons(client, admin_user, make_page):
    page = make_page(sections=1)
    client.force_login(admin_user)
    html = client.get(reverse("wagtailadmin_explore", args=[page.get_parent().pk])).content.decode()
    assert 'data-blogimages-review="listing"' in html and review_url(page) in html


# --- playground and status -------------------------------------------------------------------------


def test_playground_and_status_are_wagtail_views(client, admin_user):
    client.force_login(admin_user)
    response = client.get(reverse(f"{BI}:playground"))
    assert response.status_code == 200
    assert response.templates[0].name == "blogimages_wagtail/admin/playground.html"
    assert 'id="wagtail-sidebar"' in response.content.decode() and "Compose" in response.content.decode()
    response = client.get(reverse(f"{BI}:status"))
    assert response.status_code == 200
    assert response.templates[0].name == "blogimages_wagtail/admin/status.html"
    assert "Job queues" in response.content.decode()
    assert client.get(reverse(f"{BI}:playground_status")).json() == {"active": False, "results": []}
    models = client.get(reverse(f"{BI}:playground_models"), {"provider": "placeholder"}).json()
    assert "placeholder" in models["models"] or "placeholder" in models["errors"]
    # The local ComfyUI is started and stopped with manage.py blogimages_comfyui, not from a page.
    assert client.post(reverse(f"{BI}:status") + "comfyui/", {"op": "start"}).status_code == 404


def test_playground_generates_and_saves_an_example(client, admin_user, run_worker, django_capture_on_commit_callbacks):
    client.force_login(admin_user)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse(f"{BI}:playground"), {"action": "generate", "prompt": "A harbour", "providers": ["placeholder"]}
        )
    assert response.status_code == 302
    group = ImageGenerationResult.objects.get().group
    assert response["Location"] == reverse(f"{BI}:playground") + f"?group={group}"
    assert run_worker() == 1
    status = client.get(reverse(f"{BI}:playground_status"), {"group": str(group)}).json()
    assert status["results"][0]["status"] == "succeeded"
    assert reverse(f"{BI}:playground") + "?from=" in status["results"][0]["html"]
    response = client.post(
        reverse(f"{BI}:playground"),
        {"action": "save", "prompt": "A harbour", "providers": ["placeholder"], "example_name": "Harbour"},
        follow=True,
    )
    example = ImagePromptExample.objects.get(name="Harbour")
    assert reverse("blogimages_prompt_examples:edit", args=[example.pk]) in response.content.decode()


def test_playground_and_status_need_a_permission(client, make_wagtail_editor):
    client.force_login(make_wagtail_editor("nobody", perms=()))
    for name in ("playground", "playground_status", "playground_models", "status"):
        assert denied(client.get(reverse(f"{BI}:{name}"))), name
    client.force_login(make_wagtail_editor("generator", perms=("generate_images",)))
    assert client.get(reverse(f"{BI}:playground")).status_code == 200


# --- the library and the menu ----------------------------------------------------------------------

LIBRARY = {
    "blogimages_styles": {"name": "Watercolour", "prompt_template": "{prompt}, watercolour", "loras": "[]"},
    "blogimages_formats": {"name": "Wide", "width": "768", "height": "432"},
    "blogimages_settings": {"name": "Fast", "provider": "placeholder", "steps": "4", "extra_settings": "{}"},
    "blogimages_prompt_examples": {"name": "Harbour", "prompt": "A harbour at dawn", "provider": "placeholder"},
}


@pytest.mark.parametrize("viewset", list(LIBRARY))
def test_library_viewsets_list_create_edit(client, admin_user, viewset):
    client.force_login(admin_user)
    index = client.get(reverse(f"{viewset}:index"))
    assert index.status_code == 200
    assert client.get(reverse(f"{viewset}:add")).status_code == 200
    response = client.post(reverse(f"{viewset}:add"), LIBRARY[viewset])
    assert response.status_code == 302, response.context["form"].errors if response.context else response
    model = index.context["view"].model
    obj = model.objects.get(name=LIBRARY[viewset]["name"])
    assert client.get(reverse(f"{viewset}:edit", args=[obj.pk])).status_code == 200
    listing = client.get(reverse(f"{viewset}:index"), {"q": obj.name})
    assert obj.name in listing.content.decode()
    if viewset == "blogimages_prompt_examples":
        assert obj.created_by == admin_user


def test_library_needs_model_permissions(client, make_wagtail_editor):
    client.force_login(make_wagtail_editor("nolibrary"))
    assert denied(client.get(reverse("blogimages_styles:index")))
    assert not ImageStyle.objects.exists()


def test_menu_item_group(client, admin_user, make_wagtail_editor):
    import json

    client.force_login(admin_user)
    html = client.get(reverse("wagtailadmin_home")).content.decode()
    assert "Image generation" in html
    for target in (
        reverse(f"{BI}:playground"),
        reverse(f"{BI}:status"),
        reverse("blogimages_styles:index"),
        reverse("blogimages_formats:index"),
        reverse("blogimages_settings:index"),
        reverse("blogimages_prompt_examples:index"),
    ):
        assert json.dumps(target)[1:-1] in html, target
    # An editor with no blogimages permission and no library permission sees no such menu.
    client.force_login(make_wagtail_editor("plain", perms=()))
    assert "Image generation" not in client.get(reverse("wagtailadmin_home")).content.decode()
