"""Telling an editor that the images they asked for are done.

A request (one click: a section's candidates, a playground comparison, a refine) makes a
*group* of results. When a worker finishes the last active result of a group,
:func:`results_finished` (called once, where a job's results finish: ``jobs``) sends

- the signal :data:`batch_finished` (``sender=ImageGenerationResult``, ``group``,
  ``results``), after the transaction commits, for hosts that want their own notice;
- with ``BLOGIMAGES_NOTIFY_EMAIL = True``, one e-mail to the user who made the request,
  if they have an address.

Each group is announced once, even when two workers finish its last two results at the
same moment: the first to claim ``blogimages:notified:<group>`` in Redis sends it. The
pages say the same in place ("4 of 4 candidates finished for section X", ``viewer.js``).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.dispatch import Signal

from .conf import app_settings
from .models import ACTIVE_STATUSES, ImageGenerationResult, ResultStatus

logger = logging.getLogger("blogimages.notifications")

#: Sent once per finished group, after commit: ``group`` (UUID) and ``results`` (its rows).
batch_finished = Signal()

#: How long a group's "announced" mark lives in Redis (a later re-queue does not announce again).
CLAIM_SECONDS = 7 * 24 * 3600


@dataclass(frozen=True)
class BatchSummary:
    group: uuid.UUID
    results: list[ImageGenerationResult]

    @property
    def total(self) -> int:
        return len(self.results)

    @property
    def succeeded(self) -> int:
        return sum(1 for r in self.results if r.status == ResultStatus.SUCCEEDED)

    @property
    def failed(self) -> int:
        return sum(1 for r in self.results if r.status == ResultStatus.FAILED)

    @property
    def where(self) -> str:
        """“section “Title”” or “the playground comparison”."""
        review = next((r.review for r in self.results if r.review_id), None)
        if review is None:
            return "your playground comparison"
        return f"section “{review.section_title or review.section_key}”"

    @property
    def sentence(self) -> str:
        text = f"{self.succeeded} of {self.total} candidates finished for {self.where}"
        if self.failed:
            text += f"; {self.failed} failed"
        return text + "."


def summary(group: uuid.UUID) -> BatchSummary | None:
    """The group's results, or ``None`` while any of them is still queued or running."""
    rows = list(
        ImageGenerationResult.objects.filter(group=group).select_related("review", "requested_by").order_by("id")
    )
    if not rows or any(r.status in ACTIVE_STATUSES for r in rows):
        return None
    return BatchSummary(group=group, results=rows)


def results_finished(results: Iterable[ImageGenerationResult]) -> None:
    """A job finished ``results`` (succeeded, failed or cancelled, or put back for a retry):
    announce each of their groups that has nothing left to do. One query per group when
    something listens; none when nobody does."""
    if not app_settings.NOTIFY_EMAIL and not batch_finished.has_listeners(ImageGenerationResult):
        return
    for group in dict.fromkeys(r.group for r in results):
        try:
            done = summary(group)
            if done is not None and _claim(group):
                transaction.on_commit(lambda done=done: _announce(done))
        except Exception:  # noqa: BLE001 - a notice must never cost a job its outcome
            logger.exception("Could not announce the end of request %s", group)


def _claim(group: uuid.UUID) -> bool:
    """True for the first caller only (Redis ``SET NX``); True as well if Redis cannot say."""
    try:
        from rq import get_current_job

        job = get_current_job()
        if job is not None:
            redis = job.connection
        else:
            import django_rq

            redis = django_rq.get_connection(app_settings.QUEUE)
        return bool(redis.set(f"blogimages:notified:{group}", "1", nx=True, ex=CLAIM_SECONDS))
    except Exception:  # noqa: BLE001 - better a rare second notice than none
        logger.warning("Could not mark request %s as announced; announcing anyway", group, exc_info=True)
        return True


def _announce(done: BatchSummary) -> None:
    try:
        batch_finished.send(sender=ImageGenerationResult, group=done.group, results=done.results)
    except Exception:  # noqa: BLE001
        logger.exception("A batch_finished receiver failed for request %s", done.group)
    if app_settings.NOTIFY_EMAIL:
        send_email(done)


def send_email(done: BatchSummary) -> bool:
    """One message to the requesting user (if they have an e-mail address); True if sent."""
    user = next((r.requested_by for r in done.results if r.requested_by_id), None)
    address = getattr(user, "email", "") if user is not None else ""
    if not address:
        return False
    lines = [done.sentence, ""]
    for r in done.results:
        line = f"#{r.pk} · {r.provider_used or r.provider}"
        if r.model:
            line += f" · {r.model}"
        line += f" · {r.get_status_display().lower()}"
        if r.status == ResultStatus.FAILED and r.error_message:
            line += f": {r.error_message[:200]}"
        lines.append(line)
    prompt = next((r.prompt for r in done.results if r.prompt), "")
    if prompt:
        lines += ["", f"Prompt: {prompt[:300]}"]
    try:
        send_mail(
            subject=done.sentence.rstrip("."),
            message="\n".join(lines),
            from_email=getattr(settings, "DEFAULT_FROM_EMAIL", None),
            recipient_list=[address],
        )
    except Exception:  # noqa: BLE001 - the mail server being down is no reason to fail anything
        logger.exception("Could not e-mail %s about request %s", address, done.group)
        return False
    return True
