"""Settings of the soak (``bench/soak.py``): the example project with its faults.

The harness, its workers and its cron share them through the environment it sets:
``BLOGIMAGES_VAR_DIR`` (database and media in a temporary folder, or DATABASE_URL),
``REDIS_URL`` (the soak's own redis-server), ``SOAK_A1111_URL`` (the fake Automatic1111
server in the harness) and ``SOAK_FAULT_DIR`` (the storage fault switch and fault log).
Times are shortened so a soak of a few minutes sees every recovery path.
"""

import os

from project.settings import *  # noqa: F401,F403
from project.settings import BLOGIMAGES_PROVIDERS, LOGGING, MEDIA_ROOT, RQ_QUEUES, STORAGES

STORAGES = {**STORAGES, "default": {"BACKEND": "soak_storage.FaultyStorage", "OPTIONS": {"location": MEDIA_ROOT}}}

BLOGIMAGES_PROVIDERS = {
    **BLOGIMAGES_PROVIDERS,
    "a1111": {
        "BACKEND": "blogimages.providers.automatic1111.Automatic1111Provider",
        "OPTIONS": {
            "base_url": os.environ.get("SOAK_A1111_URL", "http://127.0.0.1:9"),
            "steps": 2,
            # Below SOAK_PROVIDER_STALL_S, so a stalled server is a timeout (transient).
            "timeout": float(os.environ.get("SOAK_PROVIDER_TIMEOUT_S", "4")),
            "poll_interval": 0.25,
        },
    },
}
BLOGIMAGES_DEFAULT_PROVIDER = "a1111"
BLOGIMAGES_DEFAULT_WIDTH = 64
BLOGIMAGES_DEFAULT_HEIGHT = 64
BLOGIMAGES_RETRY_BACKOFF = 0.2
BLOGIMAGES_JOB_TIMEOUT = 60
# A running result is stuck after this long without a heartbeat; the recovery bound the
# soak checks is this plus services.RECOVER_EVERY. Well above the running job's 10 s heartbeat.
BLOGIMAGES_STUCK_AFTER = int(os.environ.get("SOAK_STUCK_AFTER", "25"))
# Faults come every few seconds in a soak; a transient failure may meet several before
# the faults stop, and should still get its image afterwards.
BLOGIMAGES_MAX_REQUEUES = 20
RQ_QUEUES = {name: {**queue, "DEFAULT_TIMEOUT": 60} for name, queue in RQ_QUEUES.items()}
LOGGING = {**LOGGING, "loggers": {"blogimages": {"handlers": ["console"], "level": "WARNING"}}}
