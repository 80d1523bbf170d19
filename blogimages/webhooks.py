"""Where hosted image APIs (FLUX by BFL, Replicate, fal.ai) call back when a job finishes.

``POST /api/v1/webhooks/<alias>/<nonce>/<token>``: the URL was made for one job by
:func:`blogimages.providers.hosted.webhook_url`, so the token (an HMAC of alias and
nonce under ``SECRET_KEY``) proves the URL came from this site; the service's own
signature, where it signs, is checked on top. What passes is filed in Redis for the job
waiting on that nonce, which picks it up within a tenth of a second, before its next poll.

Answers: 200 filed; 403 a bad token or signature (the service's retries will not help,
and nothing is filed); 400 a body that is not JSON; 404 an alias that is not a hosted
job provider; 503 Redis is down (the service retries, and polling goes on meanwhile).
Never 500: a callback from the internet must not be able to make this site error.
"""

from __future__ import annotations

import json
import logging

from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

logger = logging.getLogger("blogimages.webhooks")


def _answer(status: int, message: str) -> JsonResponse:
    return JsonResponse({"ok": status == 200, "detail": message}, status=status)


@csrf_exempt  # the caller is a service, not a browser: the token and signature authenticate it
@require_POST
def receive(request: HttpRequest, alias: str, nonce: str, token: str) -> HttpResponse:
    import redis

    from .providers import providers
    from .providers.hosted import AsyncJobProvider, WebhookRejected, file_webhook, valid_webhook_token

    if not valid_webhook_token(alias, nonce, token):
        logger.warning("Webhook for %s refused: the URL's token is not one this site made.", alias)
        return _answer(403, "This webhook URL was not made by this site.")
    try:
        provider = providers[alias] if alias in providers else None
    except ImproperlyConfigured:
        provider = None
    if not isinstance(provider, AsyncJobProvider):
        return _answer(404, f"No hosted job provider {alias!r} is configured.")
    body = request.body
    headers = {name.lower(): value for name, value in request.headers.items()}
    try:
        provider.verify_webhook(headers, body)
    except WebhookRejected as exc:
        logger.warning("Webhook for %s refused: %s", alias, exc)
        return _answer(403, str(exc))
    try:
        payload = json.loads(body)
    except ValueError:
        return _answer(400, "The body is not JSON.")
    try:
        file_webhook(alias, nonce, payload)
    except redis.RedisError as exc:
        logger.warning("Webhook for %s could not be filed: %s", alias, exc)
        return _answer(503, "The job queue's Redis is unavailable; try again.")
    return _answer(200, "filed")
