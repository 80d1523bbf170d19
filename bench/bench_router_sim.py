"""Routing at scale, simulated: one JSON line, ``router_sim_busy_fraction``.

The real :class:`blogimages.comfyui.routing.Router` (one instance per worker, as each worker
process has its own) over the in-process store, driven by a simulated clock: 64 ComfyUI
servers that run one prompt at a time in arrival order and take ``SWITCH_COST`` seconds
extra when a prompt's checkpoint differs from the last one they ran, 128 workers (two per
server, the recommended deployment), 10,000 jobs of mixed lengths (1 to 20 s) and four
checkpoints of unequal popularity, in random order. Each job reserves with a cost
estimate, as the provider's (steps x megapixels x batch size) is: its length, off by up to
``COST_ERROR`` either way at random, since an estimate never knows the GPU's time exactly.
Around each prompt a worker spends
what a real one does: posting (5 ms), reading the image (10 ms, then it releases the slot
with the queue length the server reported) and storing it (50 ms) before it takes the
next job. Nothing sleeps; one run takes about 8 s of CPU, the line's eleven about 90 s.

Figures: ``value`` is the servers' busy time (prompts and model loads) over 64 x the
makespan (from the first prompt's start to the last one's end); ``useful_fraction``
leaves the loads out, and ``makespan_ratio`` is the makespan over the ideal (every job's
length over 64 servers, no loads); ``idle_between_prompts`` and ``idle_at_end`` split the
idle time (a server waiting between two prompts; after its last one), and
``idle_own_model_queued`` is the part of the first that began while a prompt for the idle
server's model waited on another server (moving prompts could fill it; the rest waited
while only other models' prompts were queued, which only a checkpoint load could fill).
``router_calls_per_job`` counts every call to the reservation store (the Redis round trips
in production: reserve, release, renew, failures) per job. The line is
one job order; ``over_orders`` gives the mean and the least over five (the figures move by
about 0.01 from one order to the next, more than most routing changes do).
``three_workers_per_server`` runs the line's order with 192 workers, more than the slots
left spare (64 x (3 - 1)): jobs then wait for a slot, looking again as the provider does
(after 0.05 s, doubling up to 0.5 s), and each look is a store call.
"""

from __future__ import annotations

import heapq
import itertools
import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from blogimages.comfyui.routing import MemoryStore, Router  # noqa: E402

SERVERS = 64
WORKERS = 128
JOBS = 10_000
LENGTHS = [(1.0, 0.2), (2.0, 0.3), (4.0, 0.25), (8.0, 0.15), (20.0, 0.1)]  # seconds, share of jobs
MODELS = [("sdxl", 0.4), ("sd3.5_large", 0.3), ("flux1_dev", 0.2), ("sd3.5_large_turbo", 0.1)]
SWITCH_COST = 10.0
SLOTS, TOLERANCE, IDLE_SWITCH_AFTER = 3, 2, 2.0  # the provider's defaults
COST_ERROR = 0.3  # a job's cost estimate is its length x a random factor in [0.7, 1.3]
POST, VIEW, STORE = 0.005, 0.010, 0.050


class Sim:
    def __init__(self):
        self.now = 0.0
        self.events: list = []
        self.seq = itertools.count()

    def at(self, when: float, fn, *args) -> None:
        heapq.heappush(self.events, (when, next(self.seq), fn, args))

    def run(self) -> None:
        while self.events:
            self.now, _, fn, args = heapq.heappop(self.events)
            fn(*args)


class Server:
    def __init__(self, sim: Sim, url: str, fleet: dict):
        self.sim, self.url, self.fleet = sim, url, fleet
        self.queue: list = []  # (job, on_done)
        self.running = None
        self.model = ""
        self.busy = self.loading = 0.0
        self.loads = 0
        self.first: float | None = None
        self.last = 0.0
        self.gaps = 0.0  # idle time between two prompts
        # Of those, the gaps that began while a prompt for this server's model waited in
        # another server's queue: the part that moving prompts between servers could fill.
        self.gaps_own_model_queued = 0.0
        self.own_model_queued = False

    def post(self, job, on_done) -> None:
        self.queue.append((job, on_done))
        if self.running is None:
            self._next()

    def _next(self) -> None:
        if not self.queue:
            self.running = None
            self.own_model_queued = any(
                model == self.model for server in self.fleet.values() for (_, model), _ in server.queue
            )
            return
        job, on_done = self.running = self.queue.pop(0)
        length, model = job
        load = SWITCH_COST if model != self.model else 0.0
        if load:
            self.loads += 1
            self.model = model
        self.busy += length + load
        self.loading += load
        if self.first is None:
            self.first = self.sim.now
        else:
            self.gaps += self.sim.now - self.last
            if self.own_model_queued:
                self.gaps_own_model_queued += self.sim.now - self.last
        self.sim.at(self.sim.now + length + load, self._done, on_done, length + load)

    def _done(self, on_done, ran: float) -> None:
        self.last = self.sim.now
        self._next()
        remaining = len(self.queue) + (1 if self.running else 0)
        on_done(remaining, ran)


ORDERS = (13, 1, 2, 3, 4)  # job orders: the first is the line's own figures, all five give the spread


def main() -> None:
    runs = [simulate(seed) for seed in ORDERS]
    single = [simulate(seed, models=MODELS[:1]) for seed in ORDERS]
    line = runs[0]
    mean = {key: sum(run[key] for run in runs) / len(runs) for key in ("value", "useful_fraction", "makespan_ratio")}
    line["over_orders"] = {
        "orders": len(runs),
        "value_mean": round(mean["value"], 4),
        "value_min": min(run["value"] for run in runs),
        "useful_fraction_mean": round(mean["useful_fraction"], 4),
        "makespan_ratio_mean": round(mean["makespan_ratio"], 4),
        "model_loads": [run["model_loads"] for run in runs],
        # Every job handed, in the same order, to the server that is free first, with exact
        # lengths, no loads and no time between prompts: what the end of the run costs anyway.
        "list_scheduling_bound_mean": round(sum(run["list_scheduling_bound"] for run in runs) / len(runs), 4),
        "idle_between_prompts_mean": round(sum(run["idle_between_prompts"] for run in runs) / len(runs), 4),
        "idle_at_end_mean": round(sum(run["idle_at_end"] for run in runs) / len(runs), 4),
        "idle_own_model_queued_mean": round(sum(run["idle_own_model_queued"] for run in runs) / len(runs), 4),
    }
    line["single_checkpoint"] = {  # the same runs with one checkpoint for every job (no loads after the first)
        "value_mean": round(sum(run["value"] for run in single) / len(single), 4),
        "makespan_ratio_mean": round(sum(run["makespan_ratio"] for run in single) / len(single), 4),
    }
    # More workers than the recommended two per server (three: as many as the slots): the
    # fleet is saturated and jobs wait for a slot on a server with their model (one order).
    crowded = simulate(ORDERS[0], workers=3 * SERVERS)
    line["three_workers_per_server"] = {
        key: crowded[key]
        for key in ("value", "useful_fraction", "makespan_ratio", "model_loads", "router_calls_per_job", "slot_waits")
    }
    print(json.dumps(line), flush=True)


def simulate(seed: int, models=MODELS, workers: int = WORKERS) -> dict:
    """One run over the job order drawn from ``seed``: the figures of the JSON line."""
    rng = random.Random(seed)
    sim = Sim()
    urls = [f"http://gpu{i}:8188" for i in range(SERVERS)]
    servers: dict[str, Server] = {}
    servers.update((url, Server(sim, url, servers)) for url in urls)
    store = MemoryStore()
    jobs = [
        (rng.choices([v for v, _ in LENGTHS], [w for _, w in LENGTHS])[0], rng.choices(*zip(*models, strict=True))[0])
        for _ in range(JOBS)
    ]
    # What each job's reservation says it costs (milliseconds, as a whole number), drawn apart
    # from the jobs so that the job mix is the same with or without estimates.
    estimates = random.Random(31)
    costs = [round(length * 1000 * (1 + COST_ERROR * (2 * estimates.random() - 1))) for length, _ in jobs]
    pending = iter(zip(jobs, costs, strict=True))
    routers = [
        Router(
            urls,
            store,
            clock=lambda: sim.now,
            seed=index,
            slots=SLOTS,
            model_tolerance=TOLERANCE,
            idle_switch_after=IDLE_SWITCH_AFTER,
        )
        for index in range(workers)
    ]
    waits = {"slot": 0}
    done = {"jobs": 0}

    def take(worker: int) -> None:
        job = next(pending, None)
        if job is None:
            return
        choose(worker, job)

    def choose(worker: int, item, pause: float = 0.05) -> None:
        router = routers[worker]
        job, cost = item
        reservation = router.reserve(job[1], cost=cost)
        if reservation is None:  # no slot to take: look again shortly, backing off, as the provider does
            waits["slot"] += 1
            sim.at(sim.now + pause, choose, worker, item, min(0.5, pause * 2))
            return
        sim.at(
            sim.now + POST,
            servers[reservation.url].post,
            job,
            lambda seen, ran: finished(worker, reservation, seen, ran),
        )

    def finished(worker: int, reservation, seen: int, ran: float) -> None:
        def release() -> None:
            # The run time the worker saw (the load included, as a real server's would be) teaches the pace.
            routers[worker].release(reservation, queue_remaining=seen, seconds=ran)
            done["jobs"] += 1
            sim.at(sim.now + STORE, take, worker)

        sim.at(sim.now + VIEW, release)

    for worker in range(workers):
        sim.at(0.0, take, worker)
    sim.run()
    assert done["jobs"] == JOBS, done
    start = min(server.first for server in servers.values() if server.first is not None)
    end = max(server.last for server in servers.values())
    makespan = end - start
    busy = sum(server.busy for server in servers.values())
    loading = sum(server.loading for server in servers.values())
    work = sum(length for length, _ in jobs)
    calls = sum(router.calls for router in routers)
    return {
        "metric": "router_sim_busy_fraction",
        "value": round(busy / (SERVERS * makespan), 4),
        "goal": 0.97,
        "useful_fraction": round((busy - loading) / (SERVERS * makespan), 4),
        "router_calls_per_job": round(calls / JOBS, 3),
        "router_calls_goal": 2,
        "model_loads": sum(server.loads for server in servers.values()),
        "model_load_seconds": round(loading, 1),
        "makespan_s": round(makespan, 1),
        "ideal_makespan_s": round(work / SERVERS, 1),
        "makespan_ratio": round(makespan / (work / SERVERS), 4),
        "list_scheduling_bound": list_scheduling_bound([length for length, _ in jobs]),
        # Where the servers' idle time falls, as fractions of 64 x the makespan: between two
        # prompts (a server waiting for its model's next job), and after each server's last
        # prompt (the end of the run).
        "idle_between_prompts": round(sum(server.gaps for server in servers.values()) / (SERVERS * makespan), 4),
        "idle_at_end": round(sum(end - server.last for server in servers.values()) / (SERVERS * makespan), 4),
        # The part of idle_between_prompts that began while a prompt of the idle server's own
        # model waited on another server (the rest: only other models' prompts were waiting).
        "idle_own_model_queued": round(
            sum(server.gaps_own_model_queued for server in servers.values()) / (SERVERS * makespan), 4
        ),
        "slot_waits": waits["slot"],
        "servers": SERVERS,
        "workers": workers,
        "jobs": JOBS,
        "switch_cost_s": SWITCH_COST,
        "unit": "fraction of server time busy, simulated clock",
        "job_order_seed": seed,
    }


def list_scheduling_bound(lengths: list[float]) -> float:
    """The busy fraction of handing each job, in order, to the server free first (exact lengths, no loads)."""
    free = [0.0] * SERVERS
    for length in lengths:
        heapq.heapreplace(free, free[0] + length)
    return round(sum(lengths) / (SERVERS * max(free)), 4)


if __name__ == "__main__":
    main()
