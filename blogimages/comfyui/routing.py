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

:class:`Router` takes a clock and a store, so the same code runs in production and, with a
simulated clock, in ``bench/bench_router_sim.py``. The decision is :func:`decide`, a pure
function of the servers' state, and the *store* applies it: choosing and reserving are one
store call (for Redis, one Lua script that reads every server's state, applies the rules
below, mirrored in Lua, and reserves the server it chose), so every choice is made on the
current state, no worker keeps a view that can be out of date, and a job costs exactly two
store calls (reserve, release; renewals only for prompts longer than a third of the lease).
No server is asked for its ``/queue``: the state is what the jobs themselves saw, namely our reservations,
the model each server was last given, and the queue length a job read from the server's
``status`` messages when its prompt ended (work queued there by others, trusted for
``report_ttl`` seconds). A server that is down is found out by the job that tries it (a
refused connection costs milliseconds) and skipped by the circuit breaker kept in the same
store (``fail_threshold`` failures in a row skip it for ``skip_for`` seconds).

The rules, in order:

1. servers being skipped are left out unless every server is; so are those this job
   already tried;
2. only a server with a free slot can be reserved (none free: the caller waits, as it does in rule 5);
3. the load of a server is our reservations there plus others' recent work; its *next
   model* is the model of the last prompt reserved there (the one it will have loaded
   once its queue has run, not the one running now); its *work* is the sum of the costs
   of our prompts there (each job's estimate, e.g. steps x megapixels x batch size), so
   of two servers with as many prompts the one that will be free first wins;
4. a server whose next model is the job's is taken when its load is at most
   ``model_tolerance`` above the least loaded server's (of several, the one expected to run
   our prompts there soonest: each server's *pace*, its run time per unit of cost, is
   learned from the run times the jobs report when they release, and its *free at* time
   moves by each reserved prompt's cost times that pace; before any pace is known, the least
   loaded, then the one with the least work) (a checkpoint switch costs seconds
   to tens of seconds; waiting behind a prompt or two usually costs less), unless an idle
   server that has not been given any model yet is free (it is capacity that would
   otherwise stay unused: the first jobs spread the models over the servers).
   A server left idle (none of our prompts, no others' work) for ``idle_switch_after``
   seconds is switched, though, when the job would otherwise wait behind two prompts or
   more (``SWITCH_BEHIND``) on the server with its model: that GPU has been waiting for
   its model's jobs while another model's jobs queue, and one load shares the queue's work
   (the longest idle such server; a server with no model yet still goes first);
5. beyond the tolerance, a server that will have the job's model is still taken (while it
   has a free slot) rather than switching a server whose queue holds prompts for its own
   next model: that server would load twice, once for the job and once for the next
   prompt of its own model. Only an idle server (none of our prompts) is switched.
   When the servers with the job's model are all full and the fleet is *saturated* (more
   of our prompts than ``servers x (slots - 1)``; with the default three slots, more workers
   than the recommended two per server), the job waits for one of them (no choice, as with no free slot) rather than
   switching a server that has prompts queued: in a saturated fleet jobs wait anyway, and
   without this rule each freed slot would go to whichever job asked first, whatever its
   model, so that servers would load a checkpoint for nearly every prompt;
6. otherwise the least loaded server, preferring one with no model yet, then an idle one,
   then one whose model other servers also hold (so the only server with a model keeps
   it), then the least work, then a per-process rotation of the list (each worker sends
   its candidates in its own order, so ties spread over the servers).
"""

from __future__ import annotations

import hashlib
import math
import random
import re
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
    idle_since: float = 0.0  # when our last reservation there was released (0: never)
    work: int = 0  # the summed costs of the live reservations (see :func:`cost_of`)
    free_at: int = 0  # when it should have run our prompts there (ms since the epoch; 0: no pace yet)
    pace: int = 0  # its run time per unit of cost (microseconds), learned from finished prompts (0: none yet)


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
        model: str,
        *,
        token: str,
        now: float,
        expires: float,
        slots: int,
        tolerance: int,
        report_ttl: float,
        idle_after: float,
    ) -> tuple[Choice | None, Snapshot]: ...  # chooses by :func:`decide` over ``urls`` and reserves

    def renew(self, url: str, token: str, expires: float, now: float) -> bool: ...

    def release(
        self,
        urls: Sequence[str],
        url: str,
        token: str,
        *,
        now: float,
        queue_remaining: int | None,
        ok: bool,
        seconds: float | None = None,
    ) -> Snapshot: ...

    def fail(self, url: str, *, now: float, threshold: int, skip_for: float) -> ServerView: ...


class StoreUnavailable(Exception):
    """The reservation store (Redis) cannot be reached."""


def make_token(cost: float = 0) -> str:
    """A reservation's token: unique, and carrying the job's cost estimate (a whole number) after a colon,
    so that both stores can add up a server's queued work from its leases alone."""
    return f"{uuid.uuid4().hex}:{max(0, round(cost))}"


def cost_of(token: str) -> int:
    """The cost a token carries (0 for a token without one)."""
    found = _COST.fullmatch(token)
    return int(found.group(1)) if found else 0


_COST = re.compile(r".*:([0-9]+)", re.DOTALL)  # the Lua scripts read it with ':(%d+)$'


# Times and paces are whole numbers (milliseconds, microseconds per unit of cost), computed with the
# same floating-point steps as the Lua scripts, so that both stores keep exactly the same state.
def millis(now: float) -> int:
    return math.floor(now * 1000)


def run_millis(cost: int, pace: int) -> int:
    """The expected run time (ms) of a prompt of ``cost`` on a server of ``pace``."""
    return math.floor(cost * pace / 1000)


def learned_pace(pace: int, cost: int, seconds: float) -> int:
    """The pace after a prompt of ``cost`` ran ``seconds``: the mean of the old pace and this one's."""
    sample = math.floor(seconds * 1000000 / cost + 0.5)
    return sample if pace == 0 else math.floor((pace + sample) / 2)


# --- the decision -------------------------------------------------------------------------------------

SWITCH_BEHIND = 2  # prompts ahead on the job's model's server that make an idle server worth switching


@dataclass(frozen=True)
class Choice:
    url: str
    load: int  # the server's load before this job (our prompts and others' ahead of it)
    affinity: bool  # chosen because its next model is the job's


def decide(
    state: Snapshot,
    urls: Sequence[str],
    model: str,
    now: float,
    *,
    slots: int,
    tolerance: int,
    report_ttl: float,
    idle_after: float,
) -> Choice | None:
    """The server a job for ``model`` goes to, by the rules in the module docstring; None if no slot is free.

    ``urls`` are the servers the job may use, in the order of preference of the worker's
    rotation (ties go to the first). :class:`MemoryStore` calls this function and
    :class:`RedisStore`'s reserve script is the same function in Lua (``_DECIDE``); a test
    runs both over the same random operations and compares every answer.
    """
    views = {url: state.get(url, ServerView()) for url in urls}
    live = [url for url in urls if views[url].skipped_until <= now]
    candidates = live or list(urls)
    order = {url: index for index, url in enumerate(candidates)}
    free = [url for url in candidates if views[url].reserved < slots]
    if not free:
        return None

    def load(view: ServerView) -> int:
        return view.reserved + (view.others if now - view.reported_at <= report_ttl else 0)

    loads = {url: load(views[url]) for url in free}
    least = min(loads.values())
    holders: dict[str, int] = {}
    for url in candidates:
        holders[views[url].model] = holders.get(views[url].model, 0) + 1
    if model:
        warm = min(
            (url for url in free if views[url].model == model),
            key=lambda u: (loads[u], views[u].work, order[u]),
            default=None,
        )
        fresh = any(views[url].model == "" and loads[url] == least for url in free)
        quiet = any(views[url].reserved == 0 and loads[url] == least for url in free)
        # A server left idle ``idle_after`` seconds while this job would wait behind a queue of
        # SWITCH_BEHIND prompts or more for its model: switching it shares that queue's work.
        if warm is not None and loads[warm] >= SWITCH_BEHIND and not fresh:
            idle = [
                url
                for url in free
                if loads[url] == 0 and views[url].model != model and now - views[url].idle_since >= idle_after
            ]
            if idle:
                url = min(idle, key=lambda u: (views[u].idle_since, order[u]))
                return Choice(url, 0, False)
        # Of the servers with the job's model within the tolerance, the one expected to be free
        # first (a short prompt or two ahead beats one long one); without a learned pace, the
        # least loaded one.
        near = [
            url
            for url in free
            if views[url].model == model and loads[url] <= least + tolerance and (loads[url] == least or not fresh)
        ]
        if near:
            now_ms = millis(now)
            url = min(near, key=lambda u: (max(0, views[u].free_at - now_ms), loads[u], views[u].work, order[u]))
            return Choice(url, loads[url], True)
        # Switching a server whose queue holds prompts for the model it has (or will have)
        # loaded makes it load twice: such a server is switched only when no server that
        # has the job's model has a free slot.
        if warm is not None and not fresh and not quiet:
            return Choice(warm, loads[warm], True)
        # Saturated (rule 5): the servers with the job's model are full; wait for one of them.
        saturated = sum(views[url].reserved for url in candidates) > len(candidates) * (slots - 1)
        held = any(views[url].model == model for url in candidates)
        if warm is None and held and saturated and not fresh and not quiet:
            return None
    url = min(
        (url for url in free if loads[url] == least),
        key=lambda u: (
            views[u].model != "",
            views[u].reserved > 0,  # its queue holds prompts for its next model
            -holders[views[u].model],
            views[u].work,  # as many prompts: the server whose prompts cost least is free first
            order[u],
        ),
    )
    return Choice(url, loads[url], False)


class Router:
    """Reserves a slot by :func:`decide`, in the store; pure logic over a clock and a :class:`ReservationStore`."""

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
        idle_switch_after: float = 2.0,
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
        self.idle_switch_after = float(idle_switch_after)
        rng = random.Random(seed) if seed is not None else random.SystemRandom()
        offset = rng.randrange(len(self.urls)) if self.urls else 0
        # This process's rotation of the list (ties go to the first, so workers spread): url -> rank.
        self.order = {url: (index - offset) % len(self.urls) for index, url in enumerate(self.urls)}
        self.calls = 0  # store calls made, for the simulation's figures

    # -- choosing --

    def reserve(self, model: str = "", *, exclude: Iterable[str] = (), cost: float = 0) -> Reservation | None:
        """Reserve a slot for a job that needs ``model``, in one store call; None when no slot can be taken
        now: every slot is taken or, in a saturated fleet, every slot on the servers with the job's model.

        ``cost`` is the job's estimated cost in any unit used consistently (the provider uses
        steps x megapixels x batch size); it breaks ties between servers with as many prompts.
        Raises :class:`LookupError` when every server was excluded.
        """
        excluded = set(exclude)
        urls = sorted((url for url in self.urls if url not in excluded), key=lambda url: self.order.get(url, 0))
        if not urls:
            raise LookupError("every server was tried")
        now = self.clock()
        token = make_token(cost)
        expires = now + self.lease
        choice, _ = self._call(
            self.store.reserve,
            urls,
            model,
            token=token,
            now=now,
            expires=expires,
            slots=self.slots,
            tolerance=self.model_tolerance,
            report_ttl=self.report_ttl,
            idle_after=self.idle_switch_after,
        )
        if choice is None:
            return None
        return Reservation(choice.url, token, expires, load=choice.load, affinity=choice.affinity)

    # -- during and after the job --

    def renew(self, reservation: Reservation) -> Reservation:
        now = self.clock()
        expires = now + self.lease
        self._call(self.store.renew, reservation.url, reservation.token, expires, now)
        return replace(reservation, expires=expires)

    def release(
        self,
        reservation: Reservation,
        *,
        queue_remaining: int | None = None,
        ok: bool = True,
        seconds: float | None = None,
    ) -> None:
        """Free the slot; ``queue_remaining`` is the server's queue length the job saw when its prompt ended,
        ``seconds`` how long the prompt ran there (from its start to its end), which teaches the server's pace."""
        self._call(
            self.store.release,
            self.urls,
            reservation.url,
            reservation.token,
            now=self.clock(),
            queue_remaining=queue_remaining,
            ok=ok,
            seconds=seconds,
        )

    def failed(self, url: str) -> ServerView:
        """One more failure in a row; the server is skipped from the ``fail_threshold``-th on."""
        return self._call(self.store.fail, url, now=self.clock(), threshold=self.fail_threshold, skip_for=self.skip_for)

    def skipped_for(self, url: str) -> float:
        view = self._call(self.store.snapshot, [url], self.clock()).get(url, ServerView())
        return max(0.0, view.skipped_until - self.clock())

    def _call(self, fn, *args, **kwargs):
        self.calls += 1
        return fn(*args, **kwargs)


# --- the in-process store ------------------------------------------------------------------------------


@dataclass
class _Server:
    leases: dict[str, float] = field(default_factory=dict)  # token -> expiry
    model: str = ""
    others: int = 0
    reported_at: float = 0.0
    failures: int = 0
    skipped_until: float = 0.0
    idle_since: float = 0.0
    free_at: int = 0
    pace: int = 0

    def purge(self, now: float) -> None:
        for token in [token for token, expiry in self.leases.items() if expiry <= now]:
            del self.leases[token]

    def view(self) -> ServerView:
        return ServerView(
            len(self.leases),
            self.model,
            self.others,
            self.reported_at,
            self.failures,
            self.skipped_until,
            self.idle_since,
            sum(cost_of(token) for token in self.leases),
            self.free_at,
            self.pace,
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

    def reserve(self, urls, model, *, token, now, expires, slots, tolerance, report_ttl, idle_after):
        with self.lock:
            state = self._state(urls, now)
            choice = decide(
                state, urls, model, now, slots=slots, tolerance=tolerance, report_ttl=report_ttl, idle_after=idle_after
            )
            if choice is None:
                return None, state
            server = self._get(choice.url)
            server.leases[token] = expires
            if server.pace:
                server.free_at = max(millis(now), server.free_at) + run_millis(cost_of(token), server.pace)
            if model:
                server.model = model
            state[choice.url] = server.view()
            return choice, state

    def renew(self, url, token, expires, now):
        with self.lock:
            server = self._get(url)
            if token not in server.leases:
                return False
            server.leases[token] = expires
            return True

    def release(self, urls, url, token, *, now, queue_remaining, ok, seconds=None):
        with self.lock:
            server = self._get(url)
            cost = cost_of(token)
            if ok and seconds is not None and seconds >= 0 and cost > 0:
                server.pace = learned_pace(server.pace, cost, seconds)
            server.leases.pop(token, None)
            server.purge(now)
            if server.pace:  # the next of our prompts there starts now
                server.free_at = millis(now) + run_millis(sum(cost_of(t) for t in server.leases), server.pace)
            if not server.leases:
                server.idle_since = now
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
# Returns, per server: reserved, model, others, reported_at, failures, skipped_until, idle_since, work,
# free_at, pace.
_STATE = """
local function keep(zkey, now)
  -- the lease set lives as long as its longest lease (a second more)
  local last = redis.call('ZRANGE', zkey, -1, -1, 'WITHSCORES')
  if last[2] then
    redis.call('PEXPIRE', zkey, math.floor((tonumber(last[2]) - now) * 1000) + 1000)
  end
end

local function cost(token)
  return tonumber(string.match(token, ':(%d+)$')) or 0
end

-- whether key a sorts before key b (tables of numbers, compared in order, as Python's tuples)
local function less(a, b)
  for j = 1, #a do
    if a[j] ~= b[j] then return a[j] < b[j] end
  end
  return false
end

local function state(now)
  local out = {}
  for i = 1, #KEYS, 2 do
    redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
    local h = redis.call('HMGET', KEYS[i + 1], 'model', 'others', 'reported_at', 'failures', 'skipped_until',
      'idle_since', 'free_at', 'pace')
    local members, work = redis.call('ZRANGE', KEYS[i], 0, -1), 0
    for _, token in ipairs(members) do
      work = work + cost(token)
    end
    table.insert(out, #members)
    table.insert(out, h[1] or '')
    table.insert(out, h[2] or '0')
    table.insert(out, h[3] or '0')
    table.insert(out, h[4] or '0')
    table.insert(out, h[5] or '0')
    table.insert(out, h[6] or '0')
    table.insert(out, work)
    table.insert(out, tonumber(h[7] or '0'))
    table.insert(out, tonumber(h[8] or '0'))
  end
  return out
end
"""

# KEYS: the candidate servers in the worker's order of preference (as for _STATE).
# ARGV: now, token, expires, slots, tolerance, report_ttl, model, idle_after, SWITCH_BEHIND.
# Chooses by the rules of ``decide`` (the same function, in Lua) and reserves there.
# Returns the index of the server reserved (0: no free slot), its load before the job,
# 1 if chosen for its model, and the state.
_RESERVE = (
    _STATE
    + """
local now = tonumber(ARGV[1])
local slots, tolerance, ttl, model = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7]
local idle_after, behind = tonumber(ARGV[8]), tonumber(ARGV[9])
local out = state(now)
local n = #KEYS / 2
local cand = {}
for i = 1, n do
  if tonumber(out[(i - 1) * 10 + 6]) <= now then table.insert(cand, i) end
end
if #cand == 0 then
  for i = 1, n do table.insert(cand, i) end
end
local now_ms = math.floor(now * 1000)
local reserved, mdl, load, holders, since, work, free_at, pace = {}, {}, {}, {}, {}, {}, {}, {}
local free, least, total, held = {}, nil, 0, false
for _, i in ipairs(cand) do
  local b = (i - 1) * 10
  reserved[i] = tonumber(out[b + 1])
  mdl[i] = out[b + 2]
  since[i] = tonumber(out[b + 7])
  work[i] = tonumber(out[b + 8])
  free_at[i] = tonumber(out[b + 9])
  pace[i] = tonumber(out[b + 10])
  load[i] = reserved[i]
  if now - tonumber(out[b + 4]) <= ttl then load[i] = load[i] + tonumber(out[b + 3]) end
  holders[mdl[i]] = (holders[mdl[i]] or 0) + 1
  total = total + reserved[i]
  if model ~= '' and mdl[i] == model then held = true end
  if reserved[i] < slots then
    table.insert(free, i)
    if least == nil or load[i] < least then least = load[i] end
  end
end
if #free == 0 then return {0, 0, 0, out} end

local function take(i, affinity)
  local zkey, hkey = KEYS[(i - 1) * 2 + 1], KEYS[(i - 1) * 2 + 2]
  redis.call('ZADD', zkey, ARGV[3], ARGV[2])
  keep(zkey, now)
  if model ~= '' then
    redis.call('HSET', hkey, 'model', model)
    redis.call('EXPIRE', hkey, 604800)
    out[(i - 1) * 10 + 2] = model
  end
  if pace[i] > 0 then
    local at = math.max(now_ms, free_at[i]) + math.floor(cost(ARGV[2]) * pace[i] / 1000)
    redis.call('HSET', hkey, 'free_at', string.format('%.0f', at))
    redis.call('EXPIRE', hkey, 604800)
    out[(i - 1) * 10 + 9] = at
  end
  out[(i - 1) * 10 + 1] = reserved[i] + 1
  out[(i - 1) * 10 + 8] = work[i] + cost(ARGV[2])
  return {i, load[i], affinity, out}
end

if model ~= '' then
  local warm, fresh, quiet = nil, false, false
  for _, i in ipairs(free) do  -- in order of preference: the first of the least loaded wins
    if mdl[i] == model and (warm == nil or load[i] < load[warm]
        or (load[i] == load[warm] and work[i] < work[warm])) then
      warm = i
    end
    if mdl[i] == '' and load[i] == least then fresh = true end
    if reserved[i] == 0 and load[i] == least then quiet = true end
  end
  if warm and load[warm] >= behind and not fresh then
    -- an idle server left idle idle_after seconds: the longest idle one
    local idle = nil
    for _, i in ipairs(free) do
      if load[i] == 0 and mdl[i] ~= model and now - since[i] >= idle_after
          and (idle == nil or since[i] < since[idle]) then
        idle = i
      end
    end
    if idle then return take(idle, 0) end
  end
  -- of the servers with the job's model within the tolerance, the one expected to be free first
  local near, nkey = nil, nil
  for _, i in ipairs(free) do
    if mdl[i] == model and load[i] <= least + tolerance and (load[i] == least or not fresh) then
      local k = {math.max(0, free_at[i] - now_ms), load[i], work[i]}
      if near == nil or less(k, nkey) then near, nkey = i, k end
    end
  end
  if near then return take(near, 1) end
  if warm and not fresh and not quiet then return take(warm, 1) end
  -- saturated: the servers with the job's model are full; wait for one of them
  if warm == nil and held and total > #cand * (slots - 1) and not fresh and not quiet then
    return {0, 0, 0, out}
  end
end
-- the least loaded: no model yet, then an idle one, then a model other servers also hold,
-- then the least work
local best, key = nil, nil
for _, i in ipairs(free) do
  if load[i] == least then
    local k = {(mdl[i] ~= '') and 1 or 0, (reserved[i] > 0) and 1 or 0, -holders[mdl[i]], work[i]}
    if best == nil or less(k, key) then best, key = i, k end
  end
end
return take(best, 0)
"""
)

# ARGV: now, target index, token, queue_remaining (-1: not seen), ok (1/0), ttl of the hash,
# the prompt's run time in seconds (-1: not known)
_RELEASE = (
    _STATE
    + """
local now = tonumber(ARGV[1])
local target = tonumber(ARGV[2])
local zkey, hkey = KEYS[(target - 1) * 2 + 1], KEYS[(target - 1) * 2 + 2]
local pace, seconds, spent = tonumber(redis.call('HGET', hkey, 'pace') or '0'), tonumber(ARGV[7]), cost(ARGV[3])
if ARGV[5] == '1' and seconds >= 0 and spent > 0 then
  local sample = math.floor(seconds * 1000000 / spent + 0.5)
  if pace == 0 then pace = sample else pace = math.floor((pace + sample) / 2) end
  redis.call('HSET', hkey, 'pace', string.format('%.0f', pace))
end
redis.call('ZREM', zkey, ARGV[3])
redis.call('ZREMRANGEBYSCORE', zkey, '-inf', now)
if pace > 0 then  -- the next of our prompts there starts now
  local queued = 0
  for _, token in ipairs(redis.call('ZRANGE', zkey, 0, -1)) do queued = queued + cost(token) end
  redis.call('HSET', hkey, 'free_at', string.format('%.0f', math.floor(now * 1000) + math.floor(queued * pace / 1000)))
end
if redis.call('ZCARD', zkey) == 0 then
  redis.call('HSET', hkey, 'idle_since', ARGV[1])
end
local seen = tonumber(ARGV[4])
if seen >= 0 then
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
local exact = string.format('%.17g', until_)  -- tostring keeps only 14 digits
if failures >= tonumber(ARGV[2]) then
  until_ = tonumber(ARGV[1]) + tonumber(ARGV[3])
  exact = string.format('%.17g', until_)
  redis.call('HSET', KEYS[1], 'skipped_until', exact)
end
redis.call('EXPIRE', KEYS[1], ARGV[4])
local h = redis.call('HMGET', KEYS[1], 'model', 'others', 'reported_at', 'idle_since', 'free_at', 'pace')
return {0, h[1] or '', h[2] or '0', h[3] or '0', failures, exact, h[4] or '0', 0, h[5] or '0', h[6] or '0'}
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
            reserved, model, others, reported_at, failures, until, since, work, free_at, pace = flat[
                index * 10 : index * 10 + 10
            ]
            state[url] = ServerView(
                int(reserved),
                _text(model),
                int(float(_text(others) or 0)),
                float(_text(reported_at) or 0),
                int(float(_text(failures) or 0)),
                float(_text(until) or 0),
                float(_text(since) or 0),
                int(work),
                int(_text(free_at) or 0),
                int(_text(pace) or 0),
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

    def reserve(self, urls, model, *, token, now, expires, slots, tolerance, report_ttl, idle_after):
        urls = list(urls)
        args = [
            repr(now),
            token,
            repr(expires),
            slots,
            tolerance,
            repr(float(report_ttl)),
            model,
            repr(float(idle_after)),
            SWITCH_BEHIND,
        ]
        index, load, affinity, flat = self._run("reserve", self._all_keys(urls), args)
        state = self._parse(urls, flat)
        if not int(index):
            return None, state
        return Choice(urls[int(index) - 1], int(load), bool(int(affinity))), state

    def renew(self, url, token, expires, now):
        return bool(self._run("renew", [self._keys(url)[0]], [token, repr(expires), repr(now)]))

    def release(self, urls, url, token, *, now, queue_remaining, ok, seconds=None):
        servers = list(dict.fromkeys([*urls, url]))
        index = servers.index(url) + 1
        seen = -1 if queue_remaining is None else int(queue_remaining)
        ran = -1.0 if seconds is None else float(seconds)  # -1: the run time is not known
        flat = self._run(
            "release",
            self._all_keys(servers),
            [repr(now), index, token, seen, 1 if ok else 0, self.STATE_TTL, repr(ran)],
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
