"""Choosing a ComfyUI server for a job: slots reserved atomically, model affinity, no polling.

Each server has ``slots`` places for this app's prompts (three by default: one running, one
waiting in ComfyUI's own queue, so the server starts the next prompt the moment one ends
while its worker stores the last image). A worker *reserves* a slot before it posts a
prompt and releases it when the prompt has left the server. Reservations live in a
:class:`ReservationStore`: :class:`RedisStore` (the RQ queue's Redis, shared by every
worker, each operation one Lua script, so two workers can never take the same last slot)
or :class:`MemoryStore` (one process: tests, a single worker, the routing simulation).
A reservation is a lease: it expires ``lease`` seconds after it was taken or renewed, so a
worker that dies never holds a slot for long.

:class:`Router` holds the decision and nothing else: it takes a clock and a store, so the
same code runs in production and, with a simulated clock, in ``bench/bench_router_sim.py``.
Choosing costs one store call (the reservation; it answers with the state of every server,
which the router keeps for its next choice) and releasing costs one. No server is asked
for its ``/queue``: the state is what the jobs themselves saw, namely our reservations,
the model each server was last given, and the queue length a job read from the server's
``status`` messages when its prompt ended (work queued there by others, trusted for
``report_ttl`` seconds). A server that is down is found out by the job that tries it (a
refused connection costs milliseconds) and skipped by the circuit breaker kept in the same
store (``fail_threshold`` failures in a row skip it for ``skip_for`` seconds).

The rules, in order:

1. servers being skipped are left out unless every server is; so are those this job
   already tried;
2. only a server with a free slot can be reserved (none free: the caller waits);
3. the load of a server is our reservations there plus others' recent work; its *next
   model* is the model of the last prompt reserved there (the one it will have loaded
   once its queue has run, not the one running now);
4. a server whose next model is the job's is taken when its load is at most
   ``model_tolerance`` above the least loaded server's (a checkpoint switch costs seconds
   to tens of seconds; waiting behind a prompt or two usually costs less), unless an idle
   server that has not been given any model yet is free (it is capacity that would
   otherwise stay unused: the first jobs spread the models over the servers);
5. beyond the tolerance, a server that will have the job's model is still taken (while it
   has a free slot) rather than switching a server whose queue holds prompts for its own
   next model: that server would load twice, once for the job and once for the next
   prompt of its own model. Only an idle server (none of our prompts) is switched;
6. otherwise the least loaded server, preferring one with no model yet, then an idle one,
   then one whose model other servers also hold (so the only server with a model keeps
   it), then a per-process rotation of the list.

The store refuses a reservation when the chosen server's count of reservations has grown
further above the least reserved server's than the router saw (another worker moved
first) or when the server has since been skipped; the router then decides again with the
state the store sent back. A server chosen for its next model is swapped, in the same
call, for the least reserved server with that next model when that one now has fewer
reservations (other workers moved since the router's view) or the chosen one is refused:
what the router would choose next, without another round trip.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

KEY_PREFIX = "blogimages:{comfyui}:"  # one hash tag: every key in one Redis Cluster slot


@dataclass(frozen=True)
class ServerView:
    """What the store knows about one server."""

    reserved: int = 0  # live reservations (this app's prompts there or about to be)
    model: str = ""  # the model of the last prompt reserved there ("" unknown)
    others: int = 0  # prompts of others there when a job last looked
    reported_at: float = 0.0  # when ``others`` was seen
    failures: int = 0  # failures in a row
    skipped_until: float = 0.0  # circuit breaker: not tried before this time


Snapshot = dict[str, ServerView]


@dataclass(frozen=True)
class Reservation:
    url: str
    token: str
    expires: float
    load: int = 0  # the server's load when it was chosen (our prompts and others' ahead)
    affinity: bool = False  # chosen because its last model is the job's


class ReservationStore(Protocol):
    """Shared server state; every method is one atomic operation (one remote call)."""

    def snapshot(self, urls: Sequence[str], now: float) -> Snapshot: ...

    def reserve(
        self,
        urls: Sequence[str],
        target: str,
        *,
        token: str,
        now: float,
        expires: float,
        slots: int,
        slack: int,
        model: str,
    ) -> tuple[str, Snapshot]: ...  # the server reserved ("" refused) and the state

    def renew(self, url: str, token: str, expires: float, now: float) -> bool: ...

    def release(
        self, urls: Sequence[str], url: str, token: str, *, now: float, queue_remaining: int | None, ok: bool
    ) -> Snapshot: ...

    def fail(self, url: str, *, now: float, threshold: int, skip_for: float) -> ServerView: ...


class StoreUnavailable(Exception):
    """The reservation store (Redis) cannot be reached."""


# --- the decision -------------------------------------------------------------------------------------


class Router:
    """Picks and reserves a slot; pure logic over a clock and a :class:`ReservationStore`."""

    def __init__(
        self,
        urls: Sequence[str],
        store: ReservationStore,
        *,
        clock: Callable[[], float] = time.time,
        slots: int = 2,
        lease: float = 60.0,
        model_tolerance: int = 2,
        report_ttl: float = 30.0,
        fail_threshold: int = 3,
        skip_for: float = 60.0,
        seed: int | None = None,
    ):
        self.urls = list(urls)
        self.store = store
        self.clock = clock
        self.slots = max(1, int(slots))
        self.lease = float(lease)
        self.model_tolerance = max(0, int(model_tolerance))
        self.report_ttl = float(report_ttl)
        self.fail_threshold = max(1, int(fail_threshold))
        self.skip_for = float(skip_for)
        rng = random.Random(seed) if seed is not None else random.SystemRandom()
        offset = rng.randrange(len(self.urls)) if self.urls else 0
        self.order = {url: (index - offset) % len(self.urls) for index, url in enumerate(self.urls)}
        self.known: Snapshot | None = None  # the state the store last sent; None: ask before choosing
        self.calls = 0  # store calls made, for the simulation's figures
        self._lock = threading.Lock()

    # -- choosing --

    def reserve(self, model: str = "", *, exclude: Iterable[str] = ()) -> Reservation | None:
        """Reserve a slot for a job that needs ``model``; None when every slot is taken.

        Raises :class:`LookupError` when every server was excluded.
        """
        excluded = set(exclude)
        if not [url for url in self.urls if url not in excluded]:
            raise LookupError("every server was tried")
        fresh = False
        for _ in range(2 * len(self.urls) + 2):
            now = self.clock()
            if self.known is None:
                self._learn(self._call(self.store.snapshot, self.urls, now))
                fresh = True
            choice = self.pick(self.known, model, now, excluded)
            if choice is None:
                if fresh:
                    return None
                self.known = None  # what we knew may be old: look again before saying "all taken"
                continue
            # The store refuses when the imbalance grew past the slack: a view some milliseconds
            # old is then good enough, and a server chosen for being the least loaded still is.
            url, slack, load, affinity = choice
            token = uuid.uuid4().hex
            expires = now + self.lease
            taken, state = self._call(
                self.store.reserve,
                self.candidates(self.known, now, excluded),
                url,
                token=token,
                now=now,
                expires=expires,
                slots=self.slots,
                slack=slack,
                model=model,
            )
            self._learn(state)
            fresh = True
            if taken == url:
                return Reservation(url, token, expires, load=load, affinity=affinity)
            if taken:  # the store took another server that will have the job's model
                view = state[taken]
                return Reservation(taken, token, expires, load=self.load(view, now) - 1, affinity=True)
        return None

    def candidates(self, known: Snapshot, now: float, excluded: set[str]) -> list[str]:
        """Servers that may be chosen: not excluded, not skipped (unless all are)."""
        allowed = [url for url in self.urls if url not in excluded]
        live = [url for url in allowed if known.get(url, ServerView()).skipped_until <= now]
        return live or allowed

    def load(self, view: ServerView, now: float) -> int:
        others = view.others if now - view.reported_at <= self.report_ttl else 0
        return view.reserved + others

    def pick(self, known: Snapshot, model: str, now: float, excluded: set[str]) -> tuple[str, int, int, bool] | None:
        """``(url, slack, load, affinity)`` by the rules in the module docstring, or None if no slot is free."""
        candidates = self.candidates(known, now, excluded)
        views = {url: known.get(url, ServerView()) for url in candidates}
        free = [url for url in candidates if views[url].reserved < self.slots]
        if not free:
            return None
        loads = {url: self.load(views[url], now) for url in free}
        least = min(loads.values())
        least_reserved = min(view.reserved for view in views.values())
        holders: dict[str, int] = {}
        for view in views.values():
            holders[view.model] = holders.get(view.model, 0) + 1

        def chosen(url: str, affinity: bool) -> tuple[str, int, int, bool]:
            # The slack the store allows: the imbalance seen, or, for a server taken for its model,
            # the tolerance the rules accept anyway (the store then balances among such servers).
            seen = views[url].reserved - least_reserved
            slack = max(seen, self.model_tolerance) if affinity else seen
            return url, slack, loads[url], affinity

        if model:
            warm = sorted((url for url in free if views[url].model == model), key=lambda u: (loads[u], self.order[u]))
            fresh = [url for url in free if views[url].model == "" and loads[url] == least]
            if warm and loads[warm[0]] <= least + self.model_tolerance:
                if loads[warm[0]] == least or not fresh:
                    return chosen(warm[0], True)
            # Switching a server whose queue holds prompts for the model it has (or will have)
            # loaded makes it load twice: such a server is switched only when no server that
            # has the job's model has a free slot.
            if not fresh:
                quiet = [url for url in free if views[url].reserved == 0 and loads[url] == least]
                if warm and not quiet:
                    return chosen(warm[0], True)
        best = [url for url in free if loads[url] == least]
        url = min(
            best,
            key=lambda u: (
                views[u].model != "",
                views[u].reserved > 0,  # its queue holds prompts for its next model
                -holders.get(views[u].model, 0),
                self.order[u],
            ),
        )
        return chosen(url, False)

    # -- during and after the job --

    def renew(self, reservation: Reservation) -> Reservation:
        now = self.clock()
        expires = now + self.lease
        self._call(self.store.renew, reservation.url, reservation.token, expires, now)
        return replace(reservation, expires=expires)

    def release(self, reservation: Reservation, *, queue_remaining: int | None = None, ok: bool = True) -> None:
        """Free the slot; ``queue_remaining`` is the server's queue length the job saw when its prompt ended."""
        state = self._call(
            self.store.release,
            self.urls,
            reservation.url,
            reservation.token,
            now=self.clock(),
            queue_remaining=queue_remaining,
            ok=ok,
        )
        self._learn(state)

    def failed(self, url: str) -> ServerView:
        """One more failure in a row; the server is skipped from the ``fail_threshold``-th on."""
        view = self._call(self.store.fail, url, now=self.clock(), threshold=self.fail_threshold, skip_for=self.skip_for)
        if self.known is not None:
            self.known = {**self.known, url: replace(self.known.get(url, ServerView()), **_breaker(view))}
        return view

    def skipped_for(self, url: str) -> float:
        view = self._call(self.store.snapshot, [url], self.clock()).get(url, ServerView())
        return max(0.0, view.skipped_until - self.clock())

    def _learn(self, state: Snapshot) -> None:
        with self._lock:
            self.known = {**(self.known or {}), **state}

    def _call(self, fn, *args, **kwargs):
        self.calls += 1
        return fn(*args, **kwargs)


def _breaker(view: ServerView) -> dict[str, Any]:
    return {"failures": view.failures, "skipped_until": view.skipped_until}


# --- the in-process store ------------------------------------------------------------------------------


@dataclass
class _Server:
    leases: dict[str, float] = field(default_factory=dict)  # token -> expiry
    model: str = ""
    others: int = 0
    reported_at: float = 0.0
    failures: int = 0
    skipped_until: float = 0.0

    def purge(self, now: float) -> None:
        for token in [token for token, expiry in self.leases.items() if expiry <= now]:
            del self.leases[token]

    def view(self) -> ServerView:
        return ServerView(
            len(self.leases), self.model, self.others, self.reported_at, self.failures, self.skipped_until
        )


class MemoryStore:
    """Reservations in this process (one worker, tests, the simulation); same rules as :class:`RedisStore`."""

    def __init__(self):
        self.servers: dict[str, _Server] = {}
        self.lock = threading.Lock()

    def _get(self, url: str) -> _Server:
        return self.servers.setdefault(url, _Server())

    def _state(self, urls: Sequence[str], now: float) -> Snapshot:
        state = {}
        for url in urls:
            server = self._get(url)
            server.purge(now)
            state[url] = server.view()
        return state

    def snapshot(self, urls: Sequence[str], now: float) -> Snapshot:
        with self.lock:
            return self._state(urls, now)

    def reserve(self, urls, target, *, token, now, expires, slots, slack, model):
        with self.lock:
            state = self._state(list(dict.fromkeys([*urls, target])), now)
            least = min(state[url].reserved for url in urls) if urls else 0
            server = self._get(target)
            skipped = server.skipped_until > now and any(state[url].skipped_until <= now for url in urls)
            if model and server.model == model:
                # Chosen for its next model: the least reserved server with that next model now
                # (the chosen one on a tie), as other workers may have moved since the view.
                same = [
                    url
                    for url in urls
                    if url != target
                    and state[url].model == model
                    and state[url].reserved < slots
                    and state[url].skipped_until <= now
                ]
                count = len(server.leases)
                refused = count >= slots or count - least > slack or skipped
                if same:
                    best = min(same, key=lambda url: state[url].reserved)
                    if state[best].reserved < count or (refused and state[best].reserved - least <= slack):
                        target = best
                        server, skipped = self._get(target), False
            if len(server.leases) >= slots or len(server.leases) - least > slack or skipped:
                return "", state
            server.leases[token] = expires
            if model:
                server.model = model
            state[target] = server.view()
            return target, state

    def renew(self, url, token, expires, now):
        with self.lock:
            server = self._get(url)
            if token not in server.leases:
                return False
            server.leases[token] = expires
            return True

    def release(self, urls, url, token, *, now, queue_remaining, ok):
        with self.lock:
            server = self._get(url)
            server.leases.pop(token, None)
            server.purge(now)
            if queue_remaining is not None:
                server.others = max(0, int(queue_remaining) - len(server.leases))
                server.reported_at = now
            if ok:
                server.failures, server.skipped_until = 0, 0.0
            return self._state(urls, now)

    def fail(self, url, *, now, threshold, skip_for):
        with self.lock:
            server = self._get(url)
            server.failures += 1
            if server.failures >= threshold:
                server.skipped_until = now + skip_for
            return server.view()


# --- the shared store ----------------------------------------------------------------------------------

# KEYS: per server, its lease set then its hash, in the order of ARGV's url list.
# Returns, per server: reserved, model, others, reported_at, failures, skipped_until.
_STATE = """
local function keep(zkey, now)
  -- the lease set lives as long as its longest lease (a second more)
  local last = redis.call('ZRANGE', zkey, -1, -1, 'WITHSCORES')
  if last[2] then
    redis.call('PEXPIRE', zkey, math.floor((tonumber(last[2]) - now) * 1000) + 1000)
  end
end

local function state(now)
  local out = {}
  for i = 1, #KEYS, 2 do
    redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
    local h = redis.call('HMGET', KEYS[i + 1], 'model', 'others', 'reported_at', 'failures', 'skipped_until')
    table.insert(out, redis.call('ZCARD', KEYS[i]))
    table.insert(out, h[1] or '')
    table.insert(out, h[2] or '0')
    table.insert(out, h[3] or '0')
    table.insert(out, h[4] or '0')
    table.insert(out, h[5] or '0')
  end
  return out
end
"""

# ARGV: now, target index (1-based server), token, expires, slots, slack, model, then the
# 1-based indexes of the candidate servers (for the "least reserved" check and the fallback).
# Returns the index of the server reserved (0: refused) and the state.
_RESERVE = (
    _STATE
    + """
local now = tonumber(ARGV[1])
local out = state(now)
local target = tonumber(ARGV[2])
local slots, slack = tonumber(ARGV[5]), tonumber(ARGV[6])
local count = tonumber(out[(target - 1) * 6 + 1])
local least = count
-- a server being skipped is refused while a candidate is not (a router that chose without the state)
local skipped = tonumber(out[(target - 1) * 6 + 6]) > now
local live = false
for j = 8, #ARGV do
  local i = (tonumber(ARGV[j]) - 1) * 6
  local c = tonumber(out[i + 1])
  if c < least then least = c end
  if tonumber(out[i + 6]) <= now then live = true end
end
if ARGV[7] ~= '' and out[(target - 1) * 6 + 2] == ARGV[7] then
  -- chosen for its next model: the least reserved server with that next model now (the
  -- chosen one on a tie), as other workers may have moved since the router's view
  local best, fewest = nil, nil
  for j = 8, #ARGV do
    local t = tonumber(ARGV[j])
    local i = (t - 1) * 6
    local c = tonumber(out[i + 1])
    if t ~= target and out[i + 2] == ARGV[7] and c < slots and tonumber(out[i + 6]) <= now
        and (fewest == nil or c < fewest) then
      best, fewest = t, c
    end
  end
  local refused = count >= slots or count - least > slack or (skipped and live)
  if best and (fewest < count or (refused and fewest - least <= slack)) then
    target, count, skipped = best, fewest, false
  end
end
if count >= slots or count - least > slack or (skipped and live) then
  return {0, out}
end
local zkey, hkey = KEYS[(target - 1) * 2 + 1], KEYS[(target - 1) * 2 + 2]
redis.call('ZADD', zkey, ARGV[4], ARGV[3])
keep(zkey, now)
if ARGV[7] ~= '' then
  redis.call('HSET', hkey, 'model', ARGV[7])
  redis.call('EXPIRE', hkey, 604800)
  out[(target - 1) * 6 + 2] = ARGV[7]
end
out[(target - 1) * 6 + 1] = count + 1
return {target, out}
"""
)

# ARGV: now, target index, token, queue_remaining (-1: not seen), ok (1/0), ttl of the hash
_RELEASE = (
    _STATE
    + """
local now = tonumber(ARGV[1])
local target = tonumber(ARGV[2])
local zkey, hkey = KEYS[(target - 1) * 2 + 1], KEYS[(target - 1) * 2 + 2]
redis.call('ZREM', zkey, ARGV[3])
local seen = tonumber(ARGV[4])
if seen >= 0 then
  redis.call('ZREMRANGEBYSCORE', zkey, '-inf', now)
  local others = seen - redis.call('ZCARD', zkey)
  if others < 0 then others = 0 end
  redis.call('HSET', hkey, 'others', others, 'reported_at', ARGV[1])
end
if ARGV[5] == '1' then
  redis.call('HSET', hkey, 'failures', 0, 'skipped_until', 0)
end
if redis.call('EXISTS', hkey) == 1 then redis.call('EXPIRE', hkey, ARGV[6]) end
return state(now)
"""
)

# KEYS: the lease set. ARGV: token, expires, now.
_RENEW = (
    _STATE
    + """
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
  keep(KEYS[1], tonumber(ARGV[3]))
  return 1
end
return 0
"""
)

# KEYS: the hash. ARGV: now, threshold, skip_for, ttl.
_FAIL = """
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
local until_ = tonumber(redis.call('HGET', KEYS[1], 'skipped_until') or '0')
if failures >= tonumber(ARGV[2]) then
  until_ = tonumber(ARGV[1]) + tonumber(ARGV[3])
  redis.call('HSET', KEYS[1], 'skipped_until', tostring(until_))
end
redis.call('EXPIRE', KEYS[1], ARGV[4])
local h = redis.call('HMGET', KEYS[1], 'model', 'others', 'reported_at')
return {0, h[1] or '', h[2] or '0', h[3] or '0', failures, tostring(until_)}
"""


class RedisStore:
    """Reservations and server state in Redis (the RQ queue's connection): shared by every worker."""

    STATE_TTL = 7 * 24 * 3600  # a server's hash (model, breaker) is forgotten a week after its last use

    def __init__(self, connection, prefix: str = KEY_PREFIX):
        self.redis = connection
        self.prefix = prefix
        self._scripts = {
            name: connection.register_script(text)
            for name, text in (("reserve", _RESERVE), ("release", _RELEASE), ("renew", _RENEW), ("fail", _FAIL))
        }
        self._state_script = connection.register_script(_STATE + "\nreturn state(tonumber(ARGV[1]))")

    def _keys(self, url: str) -> tuple[str, str]:
        digest = hashlib.sha1(url.encode()).hexdigest()[:16]
        return self.prefix + "slots:" + digest, self.prefix + "server:" + digest

    def _all_keys(self, urls: Sequence[str]) -> list[str]:
        return [key for url in urls for key in self._keys(url)]

    @staticmethod
    def _parse(urls: Sequence[str], flat: list) -> Snapshot:
        state = {}
        for index, url in enumerate(urls):
            reserved, model, others, reported_at, failures, until = flat[index * 6 : index * 6 + 6]
            state[url] = ServerView(
                int(reserved),
                _text(model),
                int(float(_text(others) or 0)),
                float(_text(reported_at) or 0),
                int(float(_text(failures) or 0)),
                float(_text(until) or 0),
            )
        return state

    def _run(self, name: str, keys: list[str], args: list[Any]):
        import redis

        script = self._scripts[name] if name != "state" else self._state_script
        try:
            return script(keys=keys, args=args)
        except redis.RedisError as exc:
            raise StoreUnavailable(f"Cannot reach Redis for the ComfyUI server reservations: {exc}") from exc

    def snapshot(self, urls, now):
        return self._parse(urls, self._run("state", self._all_keys(urls), [repr(now)]))

    def reserve(self, urls, target, *, token, now, expires, slots, slack, model):
        servers = list(dict.fromkeys([*urls, target]))
        index = {url: i + 1 for i, url in enumerate(servers)}
        args = [repr(now), index[target], token, repr(expires), slots, slack, model, *[index[url] for url in urls]]
        taken, flat = self._run("reserve", self._all_keys(servers), args)
        return (servers[int(taken) - 1] if int(taken) else ""), self._parse(servers, flat)

    def renew(self, url, token, expires, now):
        return bool(self._run("renew", [self._keys(url)[0]], [token, repr(expires), repr(now)]))

    def release(self, urls, url, token, *, now, queue_remaining, ok):
        servers = list(dict.fromkeys([*urls, url]))
        index = servers.index(url) + 1
        seen = -1 if queue_remaining is None else int(queue_remaining)
        flat = self._run(
            "release", self._all_keys(servers), [repr(now), index, token, seen, 1 if ok else 0, self.STATE_TTL]
        )
        return self._parse(servers, flat)

    def fail(self, url, *, now, threshold, skip_for):
        hkey = self._keys(url)[1]
        flat = self._run("fail", [hkey], [repr(now), threshold, repr(skip_for), self.STATE_TTL])
        return self._parse([url], [0, *flat[1:]])[url]

    def clear(self, urls: Sequence[str]) -> None:
        """Forget everything about ``urls`` (tests)."""
        self.redis.delete(*self._all_keys(urls))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value if value is not None else "")
