"""Routing at scale: reserved slots (Redis and in-process), leases, model affinity, others' work, the breaker.

The router is pure logic over a clock and a store, so these tests drive it with a clock they
move by hand; the Redis store runs against the real Redis of the test settings.
"""

from __future__ import annotations

import threading

import pytest

from blogimages.comfyui.routing import MemoryStore, RedisStore, Router

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
