"""An RQ worker stops promptly with the redis-py this project installs.

rq 3.0's ``Worker.unsubscribe()`` sends UNSUBSCRIBE, then calls the pub/sub thread's
``stop()`` and gives it a second to end. redis-py 8.2.0's ``stop()`` itself waits for the
thread, which, once it has read the unsubscribe reply, sleeps up to rq's 60 s waiting for a
new subscription: every worker's teardown (each ``--burst`` run, each restart) could hang a
minute. requirements.txt and pyproject.toml keep redis below 8.2 for that reason; this test
is what fails if the pin is loosened while rq and redis-py still disagree.
"""

from __future__ import annotations

import threading
import time


def test_a_workers_teardown_does_not_wait_for_its_pubsub_thread(rq_queue):
    from rq import SimpleWorker

    worker = SimpleWorker([rq_queue], connection=rq_queue.connection)
    worker.subscribe()
    # The state rq's teardown reaches whenever the thread reads the reply first.
    worker.pubsub.unsubscribe()
    deadline = time.monotonic() + 5
    while worker.pubsub.subscribed and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not worker.pubsub.subscribed, "the pub/sub thread never read the unsubscribe reply"
    time.sleep(0.2)  # and it has looped back to wait for a subscription

    teardown = threading.Thread(target=worker.unsubscribe, daemon=True)
    teardown.start()
    teardown.join(5)
    assert not teardown.is_alive(), "Worker.unsubscribe() blocked: PubSubWorkerThread.stop() waits for the thread"
