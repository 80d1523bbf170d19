"""Several ComfyUI servers: pick a healthy one with the shortest queue, skip one that keeps failing.

Health is ``/system_stats`` answering within ``health_timeout`` (2 s by default, as the
old pipeline checked), re-checked at most every ``health_ttl`` seconds; the queue length
is ``/queue``'s running plus pending prompts, asked for every job. Servers are probed in
parallel, so a slow one costs at most the health timeout.

A server that fails ``fail_threshold`` times in a row (connection errors, timeouts, 5xx)
is skipped for ``skip_for`` seconds, then tried again (a circuit breaker). The count lives
in Django's cache (alias ``cache``) so that every worker process shares it when the cache
is shared (Redis, Memcached); with the default per-process LocMemCache each process
keeps its own count, which still works, only more slowly.
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ..exceptions import ProviderError, ProviderUnavailable
from .client import ComfyUIClient

logger = logging.getLogger("blogimages.comfyui")


@dataclass
class ServerState:
    url: str
    ok: bool
    queue: int | None = None  # running + pending prompts
    error: str = ""
    skipped_for: float = 0.0  # seconds left before a skipped server is tried again


class ServerPool:
    def __init__(
        self,
        urls: list[str],
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        health_timeout: float = 2.0,
        health_ttl: float = 30.0,
        fail_threshold: int = 3,
        skip_for: float = 60.0,
        cache_alias: str | None = "default",
    ):
        self.urls = [url.rstrip("/") for url in urls]
        self.health_timeout = health_timeout
        self.health_ttl = health_ttl
        self.fail_threshold = max(1, int(fail_threshold))
        self.skip_for = skip_for
        self.cache_alias = cache_alias
        self._clients = {
            url: ComfyUIClient(url, connect_timeout=connect_timeout, read_timeout=read_timeout) for url in self.urls
        }
        self._lock = threading.Lock()
        self._local: dict[str, dict[str, float]] = {}  # breaker state when no cache is usable
        self._healthy_at: dict[str, float] = {}
        self._executor: ThreadPoolExecutor | None = None
        # Ties go to the server this process used last (workers that finish together each
        # go back to their own idle server instead of racing for the same one), then to a
        # per-process rotation of the list.
        self._preferred: str | None = None
        self._offset = random.SystemRandom().randrange(len(self.urls)) if self.urls else 0

    def client(self, url: str) -> ComfyUIClient:
        url = url.rstrip("/")
        if url not in self._clients:  # a result's server that has since left the settings
            self._clients[url] = ComfyUIClient(url)
        return self._clients[url]

    # --- choosing -----------------------------------------------------------------------------

    def ranked(self) -> list[ServerState]:
        """Healthy servers, shortest queue first; raises ProviderUnavailable when there is none."""
        states = self._breaker_states()
        candidates = [url for url in self.urls if states[url]["until"] <= time.time()]
        if not candidates:
            candidates = list(self.urls)  # all skipped: better to try than to give up
        if len(self.urls) == 1:
            # Nothing to choose between; the submission itself tells whether the server is up.
            return [ServerState(self.urls[0], ok=True)]
        if self._preferred in candidates:
            # An idle server is as short as a queue gets: when the one this process used last
            # is idle, take it without asking the others (the common case in a busy batch).
            state = self.probe(self._preferred)
            if state.ok and state.queue == 0:
                return [state, *(ServerState(url, ok=True) for url in candidates if url != state.url)]
        probed = self.each(self.probe, candidates)
        healthy = [state for state in probed if state.ok]
        for state in probed:
            if not state.ok:
                self.record_failure(state.url, state.error)
        if not healthy:
            raise ProviderUnavailable(self._unavailable_message(probed, states))
        order = {url: (index - self._offset) % len(self.urls) for index, url in enumerate(self.urls)}
        healthy.sort(key=lambda s: (s.queue, s.url != self._preferred, order[s.url]))
        return healthy

    def probe(self, url: str) -> ServerState:
        client = self.client(url)
        try:
            if time.monotonic() - self._healthy_at.get(url, float("-inf")) > self.health_ttl:
                client.system_stats(timeout=self.health_timeout)
                self._healthy_at[url] = time.monotonic()
            queue = client.queue(timeout=self.health_timeout)
            length = len(queue.get("queue_running") or []) + len(queue.get("queue_pending") or [])
            return ServerState(url, ok=True, queue=length)
        except ProviderError as exc:
            self._healthy_at.pop(url, None)
            return ServerState(url, ok=False, error=str(exc))

    def used(self, url: str) -> None:
        """A prompt was accepted: the server works, and this process prefers it on ties."""
        self._preferred = url
        self.record_success(url)

    def each(self, fn, items: list[str]) -> list[Any]:
        """``[fn(url) for url in items]``, in parallel threads when there are several."""
        if len(items) == 1:
            return [fn(items[0])]
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=min(16, len(self.urls)), thread_name_prefix="comfyui")
        return list(self._executor.map(fn, items))

    def _unavailable_message(self, probed: list[ServerState], states: dict[str, dict[str, float]]) -> str:
        reasons = []
        for state in probed:
            reasons.append(state.error.rstrip("."))
        now = time.time()
        for url in self.urls:
            if url not in {state.url for state in probed} and states[url]["until"] > now:
                reasons.append(f"{url} is skipped for {states[url]['until'] - now:.0f} s after repeated failures")
        return "No ComfyUI server is available: " + "; ".join(reasons) + "."

    # --- the circuit breaker --------------------------------------------------------------------

    def skipped_for(self, url: str) -> float:
        return max(0.0, self._breaker_states([url])[url]["until"] - time.time())

    def record_failure(self, url: str, error: str = "") -> None:
        state = self._breaker_states([url])[url]
        failures = int(state["failures"]) + 1
        until = state["until"]
        if failures >= self.fail_threshold:
            until = time.time() + self.skip_for
            logger.warning(
                "ComfyUI at %s failed %s times in a row (%s); skipping it for %.0f s",
                url,
                failures,
                error,
                self.skip_for,
            )
        self._store(url, {"failures": failures, "until": until})

    def record_success(self, url: str) -> None:
        state = self._breaker_states([url])[url]
        if state["failures"] or state["until"]:
            self._store(url, None)

    def _key(self, url: str) -> str:
        return "blogimages:comfyui:breaker:" + hashlib.sha1(url.encode()).hexdigest()[:16]

    def _cache(self):
        if not self.cache_alias:
            return None
        try:
            from django.core.cache import caches

            return caches[self.cache_alias]
        except Exception:  # noqa: BLE001 - no cache configured: keep the state in this process
            return None

    def _breaker_states(self, urls: list[str] | None = None) -> dict[str, dict[str, float]]:
        urls = urls or self.urls
        empty = {"failures": 0, "until": 0.0}
        cache = self._cache()
        if cache is not None:
            try:
                found = cache.get_many([self._key(url) for url in urls])
                return {url: found.get(self._key(url)) or dict(empty) for url in urls}
            except Exception as exc:  # noqa: BLE001 - a cache outage must not stop generation
                logger.warning("Cannot read the ComfyUI breaker state from the cache: %s", exc)
        return {url: dict(self._local.get(url) or empty) for url in urls}

    def _store(self, url: str, state: dict[str, float] | None) -> None:
        if state is None:
            self._local.pop(url, None)
        else:
            self._local[url] = state
        cache = self._cache()
        if cache is None:
            return
        try:
            if state is None:
                cache.delete(self._key(url))
            else:
                cache.set(self._key(url), state, timeout=max(self.skip_for * 2, 300))
        except Exception as exc:  # noqa: BLE001
            logger.warning("Cannot write the ComfyUI breaker state to the cache: %s", exc)
