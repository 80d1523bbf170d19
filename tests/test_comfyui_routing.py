"""Routing at scale: reserved slots (Redis and in-process), leases, model affinity, others' work, the breaker.

The router is pure logic over a clock and a store, so these tests drive it with a clock they
move by hand; the Redis store runs against the real Redis of the test settings.
"""

from __future__ import annotations

import threading

import pytest

from blogimages.comfyui.routing import MemoryStore, RedisStore, Router, ServerView

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


def test_a_router_with_an_old_view_does_not_stack_work_on_a_busy_server(store):
    clock = Clock()
    a, b = router(store, clock, urls=URLS[:2], model_tolerance=0), router(store, clock, urls=URLS[:2])
    a.known = store.snapshot(URLS[:2], clock())  # a believes both servers are idle
    first = b.reserve("").url  # b takes one of them meanwhile
    assert a.reserve("").url != first  # a is refused there and decides again with the state it is sent
    assert reserved(store, URLS[:2]) == dict.fromkeys(URLS[:2], 1)


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
    r.reserve("m")  # the first choice of a process reads the state once
    before = r.calls
    for _ in range(20):
        reservation = r.reserve("m")
        r.release(reservation, queue_remaining=1)
    assert r.calls - before == 40


def test_a_servers_next_model_is_the_last_queued_prompts(store):
    clock = Clock()
    r = router(store, clock, urls=URLS[:2], model_tolerance=2, slots=3)
    first = r.reserve("x")
    other = next(url for url in URLS[:2] if url != first.url)
    # Another worker queues a "y" prompt behind it: that server will have y loaded next, not x.
    taken, _ = store.reserve(
        URLS[:2], first.url, token="t", now=clock(), expires=clock() + 60, slots=3, slack=9, model="y"
    )
    assert taken == first.url and store.snapshot(URLS[:2], clock())[first.url].model == "y"
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


def test_when_the_chosen_server_fills_meanwhile_the_store_takes_another_with_the_jobs_model(store):
    clock = Clock()
    full, other, third = URLS[:3]

    def take(url: str, model: str, token: str) -> None:
        taken, _ = store.reserve(
            URLS[:3], url, token=token, now=clock(), expires=clock() + 60, slots=2, slack=9, model=model
        )
        assert taken == url

    for url, model in ((full, "x"), (other, "x"), (third, "y")):
        take(url, model, url)
    b = router(store, clock, urls=URLS[:3], slots=2, model_tolerance=2)
    # b's view is old: it believes the first x server has the free slot and the second is full.
    b.known = {full: ServerView(1, "x"), other: ServerView(2, "x"), third: ServerView(1, "y")}
    take(full, "x", "meanwhile")  # another worker takes the first x server's last slot
    got = b.reserve("x")
    assert got.url == other and got.affinity and got.load == 1  # the store gave it the other x server
    assert b.calls == 1  # in the same call
    assert reserved(store, URLS[:3]) == {full: 2, other: 2, third: 1}


def test_a_router_with_an_old_view_is_refused_a_server_that_has_since_been_skipped(store):
    clock = Clock()
    first, second = URLS[:2]
    taken, _ = store.reserve(URLS[:2], second, token="t", now=clock(), expires=clock() + 60, slots=3, slack=9, model="")
    assert taken == second
    a = router(store, clock, urls=URLS[:2], fail_threshold=1)
    a.known = store.snapshot(URLS[:2], clock())  # a sees the first server idle and not skipped
    router(store, clock, urls=URLS[:2], fail_threshold=1).failed(first)  # another worker finds it down
    assert a.reserve("").url == second


def test_two_workers_choosing_the_same_idle_server_for_different_models_do_not_stack_there(store):
    clock = Clock()
    a = router(store, clock, urls=URLS[:2], model_tolerance=2, slots=3)
    a.known = store.snapshot(URLS[:2], clock())  # both idle, neither has a model yet
    mine = a.pick(a.known, "y", clock(), set())[0]
    # Another worker took the same idle server for another model meanwhile.
    taken, _ = store.reserve(URLS[:2], mine, token="t", now=clock(), expires=clock() + 60, slots=3, slack=0, model="x")
    assert taken == mine
    # It was chosen as the least loaded, not for its model: a decides again (the tolerance is for affinity).
    assert a.reserve("y").url != mine
    assert reserved(store, URLS[:2]) == dict.fromkeys(URLS[:2], 1)


def test_a_server_chosen_for_its_model_is_swapped_for_a_less_reserved_one_with_that_model(store):
    clock = Clock()
    first, second = URLS[:2]

    def take(url: str, token: str) -> None:
        taken, _ = store.reserve(
            URLS[:2], url, token=token, now=clock(), expires=clock() + 60, slots=3, slack=9, model="x"
        )
        assert taken == url

    take(first, "a")
    take(second, "b")
    r = router(store, clock, urls=URLS[:2], model_tolerance=2, slots=3)
    r.known = {first: ServerView(0, "x"), second: ServerView(1, "x")}  # an old view: the first looks idle
    take(first, "c")  # meanwhile another worker queued a second prompt there
    got = r.reserve("x")
    assert got.url == second and got.affinity and r.calls == 1  # the less reserved x server, in one call
    assert reserved(store, URLS[:2]) == dict.fromkeys(URLS[:2], 2)
