"""Routing at scale: reserved slots (Redis and in-process), leases, model affinity, others' work, the breaker.

The router is pure logic over a clock and a store, so these tests drive it with a clock they
move by hand; the Redis store runs against the real Redis of the test settings.
"""

from __future__ import annotations

import threading

import pytest

from blogimages.comfyui.routing import MemoryStore, RedisStore, Router, ServerView, decide

URLS = [f"http://gpu{i}:8188" for i in range(4)]


class Clock:
    def __init__(self, now: float = 1_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "redis"])
def store(request):
    if request.param == "memory":
        yield MemoryStore()
        return
    import django_rq

    from blogimages.conf import app_settings

    store = RedisStore(django_rq.get_connection(app_settings.QUEUE), prefix="blogimages:{comfyui-test}:")
    store.clear(URLS)
    yield store
    store.clear(URLS)


def queue(store, clock, url: str, model: str, token: str = "t") -> str:
    """Another worker queues a prompt for ``model`` on ``url`` (its only candidate)."""
    choice, _ = store.reserve(
        [url],
        model,
        token=token,
        now=clock(),
        expires=clock() + 60,
        slots=3,
        tolerance=2,
        report_ttl=30,
        idle_after=2.0,
    )
    return choice.url if choice else ""


def router(store, clock=None, urls=URLS, **options) -> Router:
    return Router(urls, store, clock=clock or Clock(), seed=options.pop("seed", 0), **options)


def reserved(store, urls=URLS, now=1_000_000.0) -> dict[str, int]:
    return {url: view.reserved for url, view in store.snapshot(urls, now).items()}


def test_idle_servers_fill_first_and_no_server_gets_more_than_its_slots(store):
    r = router(store)  # default tolerance 1: affinity, but a server nobody has used yet is idle capacity
    assert sorted(r.reserve("m").url for _ in range(4)) == sorted(URLS)
    assert reserved(store) == dict.fromkeys(URLS, 1)
    while r.reserve("m") is not None:
        pass
    assert reserved(store) == dict.fromkeys(URLS, 2)


def test_without_affinity_work_spreads_one_per_server_before_any_gets_a_second(store):
    r = router(store, model_tolerance=0)
    assert sorted(r.reserve("m").url for _ in range(4)) == sorted(URLS)
    assert sorted(r.reserve("m").url for _ in range(4)) == sorted(URLS)
    assert r.reserve("m") is None  # every slot taken: the caller waits
    assert reserved(store) == dict.fromkeys(URLS, 2)


def test_concurrent_workers_never_exceed_a_servers_slots(store):
    # 40 "workers" (each its own router, as each worker process has) reserve at once.
    clock = Clock()
    routers = [router(store, clock, seed=i) for i in range(40)]
    got, start = [], threading.Barrier(len(routers))

    def work(r: Router) -> None:
        start.wait()
        reservation = r.reserve(f"model-{id(r) % 3}")
        if reservation is not None:
            got.append(reservation.url)

    threads = [threading.Thread(target=work, args=(r,)) for r in routers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(got) == 8  # 4 servers x 2 slots
    assert reserved(store) == dict.fromkeys(URLS, 2)


def test_a_dead_workers_reservation_lapses_and_a_live_one_is_renewed(store):
    clock = Clock()
    r = router(store, clock, urls=URLS[:1], lease=60)
    kept, lost = r.reserve("m"), r.reserve("m")
    assert r.reserve("m") is None
    clock.now += 40
    kept = r.renew(kept)
    clock.now += 40  # 80 s after both were taken: the unrenewed one lapsed
    assert reserved(store, URLS[:1], clock.now) == {URLS[0]: 1}
    assert r.reserve("m") is not None
    r.release(kept)
    r.release(lost)  # releasing a lapsed reservation is harmless
    assert reserved(store, URLS[:1], clock.now) == {URLS[0]: 1}


def test_a_server_that_has_the_jobs_model_is_preferred_within_the_tolerance(store):
    clock = Clock()
    r = router(store, clock, urls=URLS[:2], model_tolerance=1)
    x = r.reserve("x.safetensors")
    y = r.reserve("y.safetensors")
    assert x.url != y.url and not x.affinity
    r.release(y)  # the y server is idle now, the x server runs one prompt
    again = r.reserve("x.safetensors")
    assert again.url == x.url and again.affinity and again.load == 1  # waits behind one rather than switching
    # Full (two slots): the job goes to the idle server even though it must switch models.
    assert r.reserve("x.safetensors").url == y.url


def test_affinity_gives_way_to_a_shorter_queue_beyond_the_tolerance(store):
    clock = Clock()
    r = router(store, clock, urls=URLS[:2], model_tolerance=0, slots=3)
    x = r.reserve("x")
    other = r.reserve("y")
    r.release(other)
    assert r.reserve("x").url == other.url  # tolerance 0: an idle server beats the warm one
    assert x.url != other.url


def test_affinity_falls_back_when_the_warm_server_is_skipped_or_already_failed(store):
    clock = Clock()
    r = router(store, clock, urls=URLS[:2], fail_threshold=1, skip_for=60)
    warm = r.reserve("x")
    r.release(warm)
    other = next(url for url in URLS[:2] if url != warm.url)
    # This job already tried the warm server (it refused the connection): the other one.
    assert r.reserve("x", exclude={warm.url}).url == other
    # The warm server is skipped by the breaker: the other one, for every router.
    r.failed(warm.url)
    fresh = router(store, clock, urls=URLS[:2], fail_threshold=1, skip_for=60)
    assert fresh.reserve("x").url == other
    assert fresh.skipped_for(warm.url) == pytest.approx(60)
    clock.now += 61  # then it is tried again, and a success clears the count
    back = fresh.reserve("x")
    assert back.url == warm.url
    fresh.release(back, ok=True)
    assert store.snapshot([warm.url], clock.now)[warm.url].failures == 0


def test_when_every_server_is_skipped_they_are_still_tried(store):
    clock = Clock()
    r = router(store, clock, urls=URLS[:2], fail_threshold=1)
    for url in URLS[:2]:
        r.failed(url)
    assert r.reserve("x") is not None
    with pytest.raises(LookupError):
        r.reserve("x", exclude=set(URLS[:2]))


def test_others_work_seen_by_a_job_counts_until_it_is_old(store):
    clock = Clock()
    r = router(store, clock, urls=URLS[:2], model_tolerance=0, report_ttl=30)
    first = r.reserve("")
    # When its prompt ended the job saw 4 prompts in that server's queue: someone else's work.
    r.release(first, queue_remaining=4)
    assert store.snapshot([first.url], clock.now)[first.url].others == 4
    other = next(url for url in URLS[:2] if url != first.url)
    assert [r.reserve("").url for _ in range(2)] == [other, other]  # 0 and 1 of ours beat 4 of theirs
    clock.now += 31
    assert r.reserve("").url == first.url  # the report is old: the server is tried again


def test_choosing_and_releasing_cost_one_store_call_each(store):
    clock = Clock()
    r = router(store, clock)
    for _ in range(20):  # the first choice of a process too: the store reads the state and chooses
        reservation = r.reserve("m")
        r.release(reservation, queue_remaining=1)
    assert r.calls == 40


def test_a_servers_next_model_is_the_last_queued_prompts(store):
    clock = Clock()
    r = router(store, clock, urls=URLS[:2], model_tolerance=2, slots=3)
    first = r.reserve("x")
    other = next(url for url in URLS[:2] if url != first.url)
    # Another worker queues a "y" prompt behind it: that server will have y loaded next, not x.
    assert queue(store, clock, first.url, "y") == first.url
    assert store.snapshot(URLS[:2], clock())[first.url].model == "y"
    again = r.reserve("x")
    assert not again.affinity and again.url == other  # no server will have x: the idle one


def test_a_server_queueing_prompts_for_its_model_is_not_switched_while_the_jobs_model_has_a_slot(store):
    clock = Clock()
    r = router(store, clock, urls=URLS[:2], model_tolerance=0, slots=3)
    x = r.reserve("x")
    y = r.reserve("y")
    assert r.reserve("x").url == x.url  # 2 x prompts there, 1 y prompt on the other
    # Beyond the tolerance, but switching the y server would make it load twice (y is queued there).
    third = r.reserve("x")
    assert third.url == x.url and third.affinity
    # The x server is full: now the job must switch a server.
    assert r.reserve("x").url == y.url


def test_in_a_saturated_fleet_a_job_waits_for_its_models_servers_rather_than_switching_a_busy_one(store):
    clock = Clock()
    r = router(store, clock, urls=URLS[:2], model_tolerance=0, slots=2)
    x, y = r.reserve("x"), r.reserve("y")
    assert r.reserve("x").url == x.url  # the x server is full; 3 prompts > 2 servers x (2 - 1): saturated
    assert r.reserve("x") is None  # the y server has a free slot, but a y prompt queued: wait
    assert r.calls == 4 and reserved(store, URLS[:2]) == {x.url: 2, y.url: 1}
    assert r.reserve("y").url == y.url  # its own model's server still takes a y job
    r.release(x)
    again = r.reserve("x")  # a slot of the x server came free: the waiting job takes it
    assert again.url == x.url and again.affinity
    # A model no server has must still be loaded somewhere: the least loaded server is switched.
    r.release(again)
    assert r.reserve("w").url == x.url


def test_in_a_saturated_fleet_an_idle_server_is_still_switched(store):
    clock = Clock()
    r = router(store, clock, urls=URLS[:3], model_tolerance=0, slots=2)
    x, y, z = r.reserve("x"), r.reserve("y"), r.reserve("z")
    assert r.reserve("x").url == x.url and r.reserve("y").url == y.url
    r.release(z)  # 4 prompts > 3 servers x (2 - 1): saturated, but the z server is idle: capacity
    switched = r.reserve("x")
    assert switched.url == z.url and not switched.affinity


def test_each_worker_chooses_on_the_current_state_in_one_call_even_its_first(store):
    clock = Clock()
    workers = [router(store, clock, urls=URLS[:2], model_tolerance=0, slots=3, seed=0) for _ in range(2)]
    got = [w.reserve("x") for w in workers]  # same rotation, same model: still two servers
    assert {g.url for g in got} == set(URLS[:2])
    assert [w.calls for w in workers] == [1, 1]
    assert queue(store, clock, got[0].url, "y") == got[0].url  # a third worker queues a y prompt there
    # The next x job sees it at once (no view of its own to be out of date): the other x server.
    again = workers[0].reserve("x")
    assert again.url == got[1].url and again.affinity and workers[0].calls == 2


def test_a_full_pool_answers_none_in_one_call(store):
    clock = Clock()
    r = router(store, clock, urls=URLS[:2], slots=1)
    assert r.reserve("x") and r.reserve("y")
    assert r.reserve("x") is None and r.calls == 3


@pytest.mark.parametrize(
    "slots, steps, reserving",
    [
        (3, (0.0, 0.5, 7.0, 40.0), 0.55),  # leases lapse, paces are learned, servers idle and switch
        (2, (0.0, 0.1, 0.5), 0.7),  # crowded: full servers, a saturated fleet, jobs told to wait
    ],
    ids=["spread", "crowded"],
)
def test_the_lua_script_and_the_python_rules_choose_alike(slots, steps, reserving):
    """``RedisStore``'s reserve script mirrors :func:`decide`: the same random operations, the same answers."""
    import random

    import django_rq

    from blogimages.conf import app_settings

    redis_store = RedisStore(django_rq.get_connection(app_settings.QUEUE), prefix="blogimages:{comfyui-parity}:")
    urls = [f"http://gpu{i}:8188" for i in range(6)]
    redis_store.clear(urls)
    try:
        rng, clock = random.Random(7), Clock()
        stores = {"memory": MemoryStore(), "redis": redis_store}
        routers = {
            name: [
                router(s, clock, urls=urls, slots=slots, model_tolerance=tolerance, fail_threshold=2, seed=seed)
                for seed, tolerance in ((0, 0), (1, 1), (2, 2), (3, 2))
            ]
            for name, s in stores.items()
        }
        held: dict[str, list] = {name: [] for name in stores}
        decisions = affinities = told_to_wait = 0
        for _ in range(600):
            op, pick = rng.random(), rng.randrange(4)
            model = rng.choice(["", "a", "b", "c"])
            exclude = set(rng.sample(urls, rng.choice([0, 0, 0, 1, 2])))
            seen = rng.choice([None, 0, 2, 5])
            index, ok = rng.randrange(1000), rng.random() < 0.8
            ran = rng.choice([None, 0.2, 1.5, 12.0])  # run times teach paces, which move free_at
            cost = rng.choice([0, 0, 1, 5, 20, 1000])  # costs break ties between as many prompts
            clock.now += rng.choice(steps)
            answers = {}
            for name in stores:
                if op < reserving:
                    got = routers[name][pick].reserve(model, exclude=exclude, cost=cost)
                    if got is not None:
                        held[name].append(got)
                    answers[name] = got and (got.url, got.load, got.affinity)
                    decisions += got is not None
                    affinities += bool(got and got.affinity)
                    if got is None and name == "memory":  # no choice although a slot was free: waiting (rule 5)
                        views = stores[name].snapshot([u for u in urls if u not in exclude], clock())
                        told_to_wait += any(v.reserved < slots and v.skipped_until <= clock() for v in views.values())
                elif op < 0.9 and held[name]:
                    got = held[name].pop(index % len(held[name]))
                    routers[name][pick].release(got, queue_remaining=seen, ok=ok, seconds=ran)
                    answers[name] = got.url
                elif op >= 0.9:
                    answers[name] = routers[name][pick].failed(urls[index % len(urls)]).failures
            assert answers.get("memory") == answers.get("redis")
            assert stores["memory"].snapshot(urls, clock()) == stores["redis"].snapshot(urls, clock())
        assert decisions > 150 and affinities > 30
        assert any(view.pace and view.free_at for view in stores["redis"].snapshot(urls, clock()).values())
        if slots == 2:
            assert told_to_wait > 10
    finally:
        redis_store.clear(urls)


def test_a_server_left_idle_is_switched_when_the_job_would_wait_behind_two_prompts(store):
    clock = Clock()
    r = router(store, clock, urls=URLS[:2], slots=4, model_tolerance=3, idle_switch_after=5)
    x = r.reserve("x")
    y = r.reserve("y")
    r.release(y)  # the y server is idle from now on
    assert r.reserve("x").url == x.url  # one prompt ahead: wait behind it rather than switch
    clock.now += 4
    behind_two = r.reserve("x")  # two ahead, but the y server has been idle only 4 s: y may come
    assert behind_two.url == x.url and behind_two.affinity
    r.release(behind_two)
    clock.now += 1  # idle 5 s while x prompts queue two deep: the idle server takes the job
    switched = r.reserve("x")
    assert switched.url == y.url and not switched.affinity and switched.load == 0


def test_the_idle_switch_rule_leaves_servers_without_a_model_first_and_needs_a_queue():
    a, b, c = URLS[:3]
    rules = {"slots": 3, "tolerance": 2, "report_ttl": 30.0, "idle_after": 2.0}
    state = {a: ServerView(2, "x"), b: ServerView(0, "y", idle_since=90.0), c: ServerView(0, "")}
    assert decide(state, [a, b, c], "x", 100.0, **rules).url == c  # a server with no model yet is free capacity
    assert decide(state, [a, b], "x", 100.0, **rules).url == b  # idle 10 s, x queues two deep: switch it
    assert decide(state, [a, b], "x", 91.0, **rules).url == a  # idle only 1 s: keep waiting for y
    one = {**state, a: ServerView(1, "x")}
    assert decide(one, [a, b], "x", 100.0, **rules).url == a  # one prompt ahead: not worth a load


def test_a_server_with_no_model_yet_is_taken_before_an_idle_one_is_switched(store):
    clock = Clock()
    a, b, c = URLS[:3]
    for token in ("1", "2"):
        assert queue(store, clock, a, "x", token) == a  # x queues two deep on a
    assert queue(store, clock, b, "y", "3") == b
    store.release(URLS[:3], b, "3", now=clock(), queue_remaining=None, ok=True)  # b is idle from now on
    clock.now += 10
    assert router(store, clock, urls=URLS[:3]).reserve("x").url == c  # c has no model yet: no load wasted
    assert router(store, clock, urls=[a, b]).reserve("x").url == b  # otherwise the idle y server is switched


def test_of_servers_with_as_many_prompts_the_one_with_the_least_queued_work_is_chosen(store):
    clock = Clock()
    r = router(store, clock, urls=URLS[:3], model_tolerance=2, slots=3)
    long_, short, other = (r.reserve("x", cost=cost) for cost in (2000, 100, 50))
    assert len({long_.url, short.url, other.url}) == 3  # servers with no model yet go first
    state = store.snapshot(URLS[:3], clock())
    assert state[long_.url].work == 2000 and state[short.url].work == 100
    # Every server runs one x prompt: the next x job goes where the queued work is least.
    assert r.reserve("x", cost=10).url == other.url
    assert store.snapshot(URLS[:3], clock())[other.url].work == 60
    assert r.reserve("x", cost=10).url == short.url  # 1, 2, 1 prompts: the least loaded with less work
    r.release(short)
    assert store.snapshot(URLS[:3], clock())[short.url].work == 10  # releasing takes its cost off


def test_a_token_carries_its_cost_and_old_tokens_cost_nothing():
    from blogimages.comfyui.routing import cost_of, make_token

    assert cost_of(make_token(12.6)) == 13 and cost_of(make_token(-5)) == 0
    assert cost_of("t") == 0 and cost_of("abc:") == 0 and cost_of("a:b:7") == 7


@pytest.mark.parametrize("learned", [True, False])
def test_with_a_learned_pace_two_short_prompts_ahead_beat_one_long_one(store, learned):
    clock = Clock()
    r = router(store, clock, urls=URLS[:2], slots=4, model_tolerance=2)
    first, second = r.reserve("x", cost=100), r.reserve("x", cost=100)
    assert {first.url, second.url} == set(URLS[:2])  # servers with no model yet go first
    seconds = 1.0 if learned else None  # each ran 1 s: 10,000 us per unit of cost
    r.release(first, seconds=seconds)
    r.release(second, seconds=seconds)
    state = store.snapshot(URLS[:2], clock())
    assert [view.pace for view in state.values()] == ([10_000, 10_000] if learned else [0, 0])
    long_ = r.reserve("x", cost=1000).url  # both idle
    (short,) = set(URLS[:2]) - {long_}
    assert r.reserve("x", cost=100).url == short  # the idle one
    assert r.reserve("x", cost=100).url == short  # one prompt on each: the least queued work
    if learned:  # one runs 10 s of work, the other two prompts of 1 s
        state = store.snapshot(URLS[:2], clock())
        assert [state[long_].free_at, state[short].free_at] == [1_000_010_000, 1_000_002_000]
    # One prompt ahead on one server, two on the other (within the tolerance): with a pace,
    # the server with the short prompts is free first; without one, the least loaded wins.
    nxt = r.reserve("x", cost=100)
    assert (nxt.url, nxt.load, nxt.affinity) == ((short, 2, True) if learned else (long_, 1, True))


def test_a_failed_or_unknown_run_teaches_no_pace_and_the_pace_is_a_running_mean(store):
    clock = Clock()
    r = router(store, clock, urls=URLS[:1], slots=4)
    r.release(r.reserve("x", cost=100), ok=False, seconds=3.0)  # a failure says nothing of its speed
    r.release(r.reserve("x", cost=100))  # nor does a run whose start was not seen
    r.release(r.reserve("x", cost=0), seconds=3.0)  # nor a prompt of no known cost
    assert store.snapshot(URLS[:1], clock())[URLS[0]].pace == 0
    r.release(r.reserve("x", cost=100), seconds=2.0)
    assert store.snapshot(URLS[:1], clock())[URLS[0]].pace == 20_000
    r.release(r.reserve("x", cost=100), seconds=1.0)
    assert store.snapshot(URLS[:1], clock())[URLS[0]].pace == 15_000  # (20,000 + 10,000) / 2
