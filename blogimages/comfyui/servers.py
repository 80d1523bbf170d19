"""Several ComfyUI servers: a reserved slot per prompt, model affinity, failing servers skipped.

The decision is :class:`~blogimages.comfyui.routing.Router`'s (see that module for the
rules). This module gives it its store and clock and keeps one HTTP client per server:

* ``reservations="redis"`` (the default): the RQ queue's Redis
  (``django_rq.get_connection(BLOGIMAGES_QUEUE)``), so every worker on every machine sees
  the same slots, models and skipped servers;
* ``reservations="local"``: this process only (a single worker, or tests).

Nothing asks a server for ``/queue`` to choose: choosing is one Redis call and releasing is
one. A server that is down is found by the job that tries it (the refused connection or
the 5xx counts as a failure) and skipped after ``fail_threshold`` failures in a row for
``skip_for`` seconds; the first job after that tries it again (health checked lazily).
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..exceptions import TransientProviderError
from .client import ComfyUIClient
from .routing import MemoryStore, RedisStore, Reservation, Router, StoreUnavailable

logger = logging.getLogger("blogimages.comfyui")

STORES = ("redis", "local")


class ServerPool:
    def __init__(
        self,
        urls: list[str],
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        fail_threshold: int = 3,
        skip_for: float = 60.0,
        reservations: str = "redis",
        slots: int = 2,
        lease: float = 60.0,
        model_tolerance: int = 2,
        report_ttl: float = 30.0,
        idle_switch_after: float = 2.0,
    ):
        self.urls = [url.rstrip("/") for url in urls]
        self.reservations = reservations
        self.router_options = {
            "slots": slots,
            "lease": lease,
            "model_tolerance": model_tolerance,
            "report_ttl": report_ttl,
            "idle_switch_after": idle_switch_after,
            "fail_threshold": fail_threshold,
            "skip_for": skip_for,
        }
        self._clients = {
            url: ComfyUIClient(url, connect_timeout=connect_timeout, read_timeout=read_timeout) for url in self.urls
        }
        self._lock = threading.Lock()
        self._router: Router | None = None
        self._executor: ThreadPoolExecutor | None = None

    def client(self, url: str) -> ComfyUIClient:
        url = url.rstrip("/")
        if url not in self._clients:  # a result's server that has since left the settings
            self._clients[url] = ComfyUIClient(url)
        return self._clients[url]

    @property
    def router(self) -> Router:
        """Built on first use, so the queue's Redis is looked up when a job runs, not at import."""
        with self._lock:
            if self._router is None:
                if self.reservations == "local":
                    store = MemoryStore()
                else:
                    import django_rq

                    from ..conf import app_settings

                    store = RedisStore(django_rq.get_connection(app_settings.QUEUE))
                self._router = Router(self.urls, store, clock=time.time, **self.router_options)
            return self._router

    # --- choosing -----------------------------------------------------------------------------

    def reserve(
        self, model: str = "", *, exclude: set[str] | frozenset[str] = frozenset(), cost: float = 0
    ) -> Reservation | None:
        """A reserved slot (None: none can be taken now); LookupError once every server was tried.

        ``cost``: the job's estimated cost (see :meth:`Router.reserve`)."""
        try:
            return self.router.reserve(model, exclude=exclude, cost=cost)
        except StoreUnavailable as exc:
            raise TransientProviderError(str(exc)) from exc

    def renew(self, reservation: Reservation) -> Reservation:
        try:
            return self.router.renew(reservation)
        except StoreUnavailable as exc:
            logger.warning("Could not renew the reservation of %s: %s", reservation.url, exc)
            return reservation

    def release(
        self,
        reservation: Reservation,
        *,
        queue_remaining: int | None = None,
        ok: bool = True,
        seconds: float | None = None,
    ) -> None:
        """Free the slot; ``seconds`` is the prompt's run time there (see :meth:`Router.release`)."""
        try:
            self.router.release(reservation, queue_remaining=queue_remaining, ok=ok, seconds=seconds)
        except StoreUnavailable as exc:  # the lease runs out on its own
            logger.warning("Could not release the reservation of %s: %s", reservation.url, exc)

    def each(self, fn, items: list[str]) -> list[Any]:
        """``[fn(url) for url in items]``, in parallel threads when there are several."""
        if len(items) == 1:
            return [fn(items[0])]
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=min(16, len(self.urls)), thread_name_prefix="comfyui")
        return list(self._executor.map(fn, items))

    # --- the circuit breaker --------------------------------------------------------------------

    def skipped_for(self, url: str) -> float:
        try:
            return self.router.skipped_for(url)
        except StoreUnavailable:
            return 0.0

    def record_failure(self, url: str, error: str = "") -> None:
        try:
            view = self.router.failed(url)
        except StoreUnavailable as exc:
            logger.warning("Could not record a failure of ComfyUI at %s: %s", url, exc)
            return
        if view.failures == self.router.fail_threshold:
            logger.warning(
                "ComfyUI at %s failed %s times in a row (%s); skipping it for %.0f s",
                url,
                view.failures,
                error,
                self.router.skip_for,
            )
