"""The host adapter: how blogimages reads posts and sections, and what happens when a
section leaves its post (sections as rows: the default adapter)."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command

from blogimages import services
from blogimages.admin_views import load_panels
from blogimages.hosts import HostAdapter, ModelSectionsAdapter, Section, get_host
from blogimages.models import ImageGenerationResult, ReviewEvent, SectionReview
from blogimages.text import plain_text


class RecordingAdapter(ModelSectionsAdapter):
    """The rows adapter, recording the publish hook's calls."""

    calls: list[tuple] = []

    def image_approved(self, review, result, *, replaced=None, user=None):
        self.calls.append(("approved", review.section_key, result.pk, replaced.pk if replaced else None))

    def image_unapproved(self, review, result, *, user=None):
        self.calls.append(("unapproved", review.section_key, result.pk))


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("<p>A harbour at <b>dawn</b></p>", "A harbour at dawn"),
        ("<p>One</p><p>Two&nbsp;&amp; three</p>", "One\nTwo & three"),
        ("Fish &amp; chips<br>by the sea", "Fish & chips\nby the sea"),
        ("plain   text\n\n\n\nagain", "plain text\n\nagain"),
        ("", ""),
        (None, ""),
    ],
)
def test_plain_text_never_keeps_markup(html, text):
    assert plain_text(html) == text


@pytest.mark.django_db
def test_rows_adapter_reads_sections_in_order_with_plain_text(make_post):
    post = make_post(sections=3)
    first = post.sections.get(position=0)
    first.body = "<p>A <em>lighthouse</em> &amp; a cliff</p>"
    first.save()
    sections = get_host().sections(post)
    assert [s.title for s in sections] == ["Section 1", "Section 2", "Section 3"]
    assert [s.key for s in sections] == [str(row.pk) for row in post.sections.all()]
    assert [s.position for s in sections] == [0, 1, 2]
    assert sections[0].text == "A lighthouse & a cliff"
    assert get_host().section(post, sections[1].key) == sections[1]
    assert get_host().section(post, "999999") is None and get_host().section(post, "not-a-key") is None
    assert get_host().find_post(post.slug) == post == get_host().find_post(str(post.pk))


@pytest.mark.django_db
def test_prompts_are_plain_text(make_post, rq_queue):
    post = make_post(sections=1)
    post.sections.update(body="<p>Boats <strong>at anchor</strong></p>")
    result = services.generate_for_post(post).results[0]
    assert result.prompt == "Boats at anchor" and "<" not in result.final_prompt


def test_host_adapter_setting_is_checked(settings):
    settings.BLOGIMAGES_HOST_ADAPTER = "blogimages.models.SectionReview"
    with pytest.raises(ImproperlyConfigured, match="not a subclass of blogimages.hosts.HostAdapter"):
        get_host()
    settings.BLOGIMAGES_HOST_ADAPTER = "nowhere.Adapter"
    with pytest.raises(ImproperlyConfigured, match="cannot be imported"):
        get_host()


def test_base_adapter_must_say_what_sections_are():
    with pytest.raises(NotImplementedError):
        HostAdapter().sections(object())


@pytest.mark.django_db(transaction=True)
def test_publish_hook_runs_after_commit_on_approve_replace_and_reject(make_post, rq_queue, run_worker, settings):
    settings.BLOGIMAGES_HOST_ADAPTER = f"{__name__}.RecordingAdapter"
    RecordingAdapter.calls = []
    post = make_post(sections=1)
    section = get_host().sections(post)[0]
    first, second = services.generate_for_section(section) + services.generate_for_section(section)
    run_worker()
    first.refresh_from_db()
    second.refresh_from_db()
    services.approve(first)
    services.approve(first)  # again: the hook must be idempotent, and is told so
    services.approve(second)
    services.reject(result=second, comment="Too dark")
    assert RecordingAdapter.calls == [
        ("approved", section.key, first.pk, None),
        ("approved", section.key, first.pk, None),
        ("approved", section.key, second.pk, first.pk),
        ("unapproved", section.key, second.pk),
    ]


@pytest.mark.django_db
def test_a_failing_publish_hook_keeps_the_approval(
    make_post, rq_queue, run_worker, settings, caplog, django_capture_on_commit_callbacks
):
    class Broken(ModelSectionsAdapter):
        def image_approved(self, *args, **kwargs):
            raise RuntimeError("CMS down")

    settings.BLOGIMAGES_HOST_ADAPTER = f"{__name__}.BrokenAdapter"
    globals()["BrokenAdapter"] = Broken
    post = make_post(sections=1)
    with django_capture_on_commit_callbacks(execute=True):
        result = services.generate_for_post(post).results[0]
    run_worker()
    result.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=True):
        review = services.approve(result)
    review.refresh_from_db()
    assert review.status == "approved" and review.approved_result_id == result.pk
    assert "publish hook failed" in caplog.text


@pytest.mark.django_db
def test_a_removed_section_keeps_its_history_until_cleanup(
    make_post, rq_queue, run_worker, admin_user, client, django_capture_on_commit_callbacks
):
    post = make_post(sections=2)
    gone_row = post.sections.get(position=1)
    with django_capture_on_commit_callbacks(execute=True):
        results = services.generate_for_post(post, user=admin_user).results
    run_worker()
    for result in results:
        result.refresh_from_db()
    services.approve(results[1], user=admin_user)
    services.add_comment(gone_row, user=admin_user, text="Lovely")
    review = SectionReview.objects.get(section_key=str(gone_row.pk))
    files = [results[1].image.name, results[1].thumbnail.name]
    storage = results[1].image.storage
    assert all(storage.exists(name) for name in files)

    gone_row.delete()  # the editor deletes the section from the post

    review.refresh_from_db()
    assert review.status == "approved" and review.events.count() == 3  # generated, approved, commented
    panels = load_panels(post)
    assert [(p.title, p.removed) for p in panels] == [("Section 1", False), ("Section 2", True)]
    assert [c.result.pk for c in panels[1].candidates] == [results[1].pk]
    client.force_login(admin_user)
    page = client.get(f"/admin/blog/post/{post.pk}/images/").content.decode()
    assert "removed from the post" in page and "1 removed from the post" in page
    assert page.count('value="generate-section"') == 1  # only the section still in the post

    call_command("blogimages_cleanup", "--removed-sections")  # a dry run: nothing goes
    assert SectionReview.objects.filter(pk=review.pk).exists()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("blogimages_cleanup", "--removed-sections", "--delete")
    assert not SectionReview.objects.filter(pk=review.pk).exists()
    assert not ImageGenerationResult.objects.filter(pk=results[1].pk).exists()
    assert not ReviewEvent.objects.filter(review_id=review.pk).exists()
    assert not any(storage.exists(name) for name in files)
    assert ImageGenerationResult.objects.filter(pk=results[0].pk).exists()  # the other section keeps its own


@pytest.mark.django_db
def test_cleanup_refuses_a_section_that_is_still_in_its_post(make_post, rq_queue):
    post = make_post(sections=1)
    services.generate_for_post(post)
    review = SectionReview.objects.get()
    assert list(services.reviews_of_removed_sections()) == []
    with pytest.raises(services.InvalidTransition, match="still in its post"):
        services.delete_removed_section(review)


@pytest.mark.django_db
def test_a_deleted_post_leaves_its_reviews_for_cleanup(make_post, rq_queue):
    post = make_post(sections=2)
    services.generate_for_post(post)
    post.delete()
    assert SectionReview.objects.count() == 2
    assert {r.section_title for r in services.reviews_of_removed_sections()} == {"Section 1", "Section 2"}


def test_section_key_is_its_identity():
    section = Section(post=None, key="abc", title="T", text="x")
    assert section.pk == "abc"
