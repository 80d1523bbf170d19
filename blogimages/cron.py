"""RQ cron configuration: ``python manage.py rqcron blogimages.cron``.

One scheduler process per deployment enqueues the recovery round every
``services.RECOVER_EVERY`` seconds; any worker on ``BLOGIMAGES_QUEUE`` runs it. Several
schedulers are harmless: a round that is not due (``SET NX`` in Redis) does nothing.
"""

from rq import cron

from .conf import app_settings
from .jobs import recover_results
from .services import RECOVER_EVERY

cron.register(
    recover_results,
    queue_name=app_settings.QUEUE,
    interval=RECOVER_EVERY,
    job_timeout=120,
    result_ttl=60,
    # An unrun round is worthless once the next is due: it expires from the queue.
    ttl=RECOVER_EVERY * 3,
    name="blogimages-recover",
)
