"""Notifications when a request's images are done: one e-mail (BLOGIMAGES_NOTIFY_EMAIL) to the
editor who asked, and the batch_finished signal, sent when a real worker finishes the last image."""

from __future__ import annotations

import pytest
from django.core import mail

from blogimages import notifications, services
from blogimages.hosts import get_host
from blogimages.models import ImageGenerationResult, ResultStatus

pytestmark = pytest.mark.django_db

BASE = "blogimages.providers.placeholder.PlaceholderProvider"


@pytest.fixture(autouse=True)
def setup(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.DEFAULT_FROM_EMAIL = "images@example.com"
    settings.BLOGIMAGES_NOTIFY_EMAIL = True
    settings.BLOGIMAGES_PROVIDERS = {
        "placeholder": {"BACKEND": BASE, "OPTIONS": {"delay": 0.0}},
        "sketch": {"BACKEND": BASE, "OPTIONS": {"delay": 0.0}},
        "broken": {"BACKEND": "tests.providers.FlakyProvider", "OPTIONS": {"fail_times": 99, "permanent": True}},
    }
    settings.BLOGIMAGES_DEFAULT_PROVIDER = "placeholder"


@pytest.fixture
def work(run_worker, django_capture_on_commit_callbacks):
    """Run the real worker (``max_jobs`` at most); what it commits runs its on-commit callbacks."""

    def run(max_jobs=None):
        with django_capture_on_commit_callbacks(execute=True):
            return run_worker(max_jobs)

    return run


@pytest.fixture
def queue(django_capture_on_commit_callbacks):
    def run(call, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return call(*args, **kwargs)

    return run


def test_one_email_when_the_last_candidate_of_a_section_finishes(admin_user, make_post, queue, work):
    post = make_post(sections=2)
    section = get_host().sections(post)[0]
    results = queue(services.generate_for_section, section, user=admin_user, candidates=3)
    assert work(max_jobs=2) == 2
    assert mail.outbox == []  # one of three still queued: nothing said yet
    assert work() == 1
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["admin@example.com"] and message.from_email == "images@example.com"
    assert message.subject == "3 of 3 candidates finished for section “Section 1”"
    for result in results:
        assert f"#{result.pk} · placeholder" in message.body
    assert "Prompt: A lighthouse on a cliff at dusk, view 1" in message.body
    # The other section's request is its own: nothing for it until it runs.
    queue(services.generate_for_section, get_host().sections(post)[1], user=admin_user)
    work()
    assert [m.subject for m in mail.outbox][1:] == ["1 of 1 candidates finished for section “Section 2”"]


def test_a_comparison_with_a_failure_says_so(admin_user, queue, work):
    spec = services.GenerationSpec(prompt="Fog over the harbour", providers=["placeholder", "broken"])
    results = queue(services.request_generation, spec, user=admin_user)
    work()
    assert [ImageGenerationResult.objects.get(pk=r.pk).status for r in results] == ["succeeded", "failed"]
    (message,) = mail.outbox
    assert message.subject == "1 of 2 candidates finished for your playground comparison; 1 failed"
    assert "failed: server busy" in message.body


def test_no_email_when_off_or_without_an_address(settings, admin_user, make_editor, queue, work):
    settings.BLOGIMAGES_NOTIFY_EMAIL = False
    queue(services.request_generation, services.GenerationSpec(prompt="A"), user=admin_user)
    work()
    assert mail.outbox == []
    settings.BLOGIMAGES_NOTIFY_EMAIL = True
    nameless = make_editor("quiet", perms=["generate_images"])
    nameless.email = ""
    nameless.save()
    queue(services.request_generation, services.GenerationSpec(prompt="B"), user=nameless)
    queue(services.request_generation, services.GenerationSpec(prompt="C"))  # nobody asked
    work()
    assert mail.outbox == []


def test_each_request_is_announced_once(admin_user, queue, work, django_capture_on_commit_callbacks):
    (result,) = queue(services.request_generation, services.GenerationSpec(prompt="Once"), user=admin_user)
    work()
    assert len(mail.outbox) == 1
    # A second worker finishing "the last one" too (a race), or a re-run: no second message.
    with django_capture_on_commit_callbacks(execute=True):
        notifications.results_finished([ImageGenerationResult.objects.get(pk=result.pk)])
    assert len(mail.outbox) == 1


def test_batch_finished_signal(settings, admin_user, queue, work):
    settings.BLOGIMAGES_NOTIFY_EMAIL = False
    heard = []

    def receiver(sender, group, results, **kwargs):
        heard.append((group, sorted(r.pk for r in results), {r.status for r in results}))

    notifications.batch_finished.connect(receiver)
    try:
        spec = services.GenerationSpec(prompt="Two", providers=["placeholder", "sketch"])
        results = queue(services.request_generation, spec, user=admin_user)
        work()
    finally:
        notifications.batch_finished.disconnect(receiver)
    assert heard == [(results[0].group, sorted(r.pk for r in results), {ResultStatus.SUCCEEDED})]
    assert mail.outbox == []
