"""What only the Redis backend does: several processes share one Redis, and Redis can go away.

Each RedisJobStore below stands for one app process: it shares nothing with the others but the
Redis server (its own connections, its own wake-up subscription, its own memory).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator

import pytest

from draftline.store import StorageError, open_store
from draftline.store.redis import RedisJobStore
from tests.redis_server import RedisServer, require_redis_server

pytestmark = pytest.mark.anyio


@pytest.fixture
async def two_processes(redis_server: RedisServer) -> AsyncIterator[tuple[RedisJobStore, ...]]:
    url = redis_server.fresh_url()
    stores = (open_store(url), open_store(url))
    yield stores
    for store in stores:
        await store.close()


async def test_two_processes_never_hand_out_the_same_event_id(two_processes):
    a, b = two_processes
    job = await a.create("Tides")
    copy = await b.get(job.id)  # each process holds its own copy of the job, as runners do

    async def publish(store, held, who: str, n: int):
        return await store.publish(held, f"{who}:{n}", "update", "{}")

    events = await asyncio.gather(*(publish(a, job, "a", n) for n in range(50)),
                                  *(publish(b, copy, "b", n) for n in range(50)))  # fmt: skip
    assert sorted(e.seq for e in events) == list(range(1, 101))
    assert (await a.get(job.id)).last_seq == (await b.get(job.id)).last_seq == 100
    assert [e.seq for e in await b.events_after(job.id, 0)] == list(range(1, 101))
    # Compaction holds across processes too: one event per key, the latest.
    again = await b.publish(copy, "a:0", "update", '{"again": true}')
    assert again.seq == 101
    stored = await a.events_after(job.id, 0)
    assert len(stored) == 100 and stored[-1] == again


async def test_a_viewer_in_one_process_wakes_on_an_event_published_in_another(two_processes):
    a, b = two_processes
    job = await a.create("Tides")
    waiting = asyncio.create_task(b.wait_for_events(job.id, 0))
    await asyncio.sleep(0.1)
    assert not waiting.done()
    await a.publish(job, "job", "update", job.event_data("job"))
    await asyncio.wait_for(waiting, 2)
    assert [e.key for e in await b.events_after(job.id, 0)] == ["job"]


async def test_a_viewer_in_one_process_wakes_when_another_deletes_the_job(two_processes):
    a, b = two_processes
    job = await a.create("Tides")
    await a.publish(job, "job", "update", job.event_data("job"))
    waiting = asyncio.create_task(b.wait_for_events(job.id, 1))
    await asyncio.sleep(0.1)
    assert await a.delete(job.id)
    await asyncio.wait_for(waiting, 2)
    assert await b.get(job.id) is None


async def test_no_wake_up_is_lost_between_looking_and_sleeping(two_processes):
    """Publish at once, again and again, while the viewer in the other process is between
    looking for events and sleeping: every time, it wakes."""
    a, b = two_processes
    job = await a.create("Tides")
    for n in range(100):
        waiting = asyncio.create_task(b.wait_for_events(job.id, n))
        for _ in range(n % 5):  # let the viewer get a little further each time
            await asyncio.sleep(0)
        await a.publish(job, "job", "update", "{}")
        await asyncio.wait_for(waiting, 2)


async def test_viewers_of_a_running_job_wake_without_asking_redis(two_processes):
    """Fifty viewers in B follow a job A publishes to: the events reach them through B's
    wake-up channel, so Redis serves about one command per event, not one per viewer."""
    a, b = two_processes
    job = await a.create("Tides")
    job.status = "running"
    await a.publish(job, "job", "update", job.event_data("job"))
    seen: list[list[int]] = [[] for _ in range(50)]

    async def view(got: list[int]) -> None:
        cursor = 0
        while cursor < 41:
            await b.wait_for_events(job.id, cursor)
            events = await b.events_after(job.id, cursor)
            got += [e.seq for e in events]
            cursor = events[-1].seq

    viewers = [asyncio.create_task(view(got)) for got in seen]
    await asyncio.sleep(0.3)  # every viewer is waiting, and B holds the job's log
    before = await _calls(a)
    for n in range(40):
        await a.publish(job, f"section:{n % 5}", "update", "{}")
        await asyncio.sleep(0.005)
    await asyncio.wait_for(asyncio.gather(*viewers), 5)
    calls = await _calls(a) - before
    assert all(got[-1] == 41 and got == sorted(set(got)) for got in seen)
    assert calls["evalsha"] == 40  # the publishing scripts
    # What a viewer asks when it wakes: events, whether there are any, whether the job runs.
    assert sum(calls[name] for name in ("zrange", "zcount", "hexists", "exec")) == 0, calls
    # The log is B's, in memory, and agrees with Redis: the same events, compacted by key.
    assert await b.events_after(job.id, 0) == await a.events_after(job.id, 0)


async def test_an_event_discarded_while_a_log_loads_leaves_no_stale_log(two_processes):
    """The channel announces a discarded event (a bare id) while B is reading the job's log
    into memory: B keeps no log, which could hold the discarded event, and reads Redis."""
    a, b = two_processes
    job = await a.create("Tides")
    job.status = "running"
    await a.publish(job, "job", "update", job.event_data("job"))
    await a.publish(job, "old", "update", "{}")
    watching = asyncio.create_task(b.wait_for_events(job.id, 5))  # starts B's subscription
    while b.bus.epoch is None:
        await asyncio.sleep(0.01)
    b._logs.clear()
    loading = asyncio.create_task(b.events_after(job.id, 0))
    while job.id not in b._heard_while_loading:  # B's read is on its way to Redis
        await asyncio.sleep(0)
    b._heard(job.id, "")  # a discard's announcement, before B's read returns
    assert [e.key for e in await loading] == ["job", "old"]  # as read
    assert job.id not in b._logs  # it may not know of the discard: it is not kept
    await a.discard_event(job.id, "old")
    assert [e.key for e in await b.events_after(job.id, 0)] == ["job"]
    watching.cancel()


async def _calls(store: RedisJobStore) -> Counter[str]:
    """How often Redis ran each command so far (those scripts run included)."""
    stats = await store._redis.info("commandstats")
    return Counter({name.removeprefix("cmdstat_"): row["calls"] for name, row in stats.items()})


async def test_a_running_job_is_live_in_every_process(two_processes):
    a, b = two_processes
    job = await a.create("Tides")
    job.status = "running"
    await a.publish(job, "job", "update", job.event_data("job"))
    assert await b.is_live(job.id)
    job.status = "done"
    await a.publish(job, "done", "done", job.event_data("done"))
    assert not await b.is_live(job.id)


async def test_redis_going_away_is_a_storage_error_until_it_comes_back(tmp_path):
    """Stopped, Redis makes every call fail soon with StorageError (routes answer 503), while a
    viewer here still gets the job's final event; started again, the same store works."""
    require_redis_server()
    server = RedisServer(tmp_path).start()
    store, other = open_store(server.url()), open_store(server.url())
    try:
        job = await store.create("Tides")
        await store.publish(job, "job", "update", job.event_data("job"))
        viewer = asyncio.create_task(store.wait_for_events(job.id, 1))
        await asyncio.sleep(0.1)
        server.stop()

        started = time.monotonic()
        with pytest.raises(StorageError, match="cannot reach its Redis store"):
            await store.check_writable()
        assert time.monotonic() - started < 3
        job.status = "failed"
        with pytest.raises(StorageError, match="cannot reach its Redis store"):
            await store.publish(job, "done", "done", job.event_data("done"))
        await asyncio.wait_for(viewer, 2)  # woken, and the event it waits for is in memory
        assert [e.name for e in await store.events_after(job.id, 1)] == ["done"]
        with pytest.raises(StorageError):
            await store.get(job.id)

        server.start()  # the same port, empty: it kept nothing on disk
        await store.check_writable()
        again = await store.create("Tides again")
        waiting = asyncio.create_task(other.wait_for_events(again.id, 0))
        await asyncio.sleep(0.1)
        await store.publish(again, "job", "update", again.event_data("job"))
        await asyncio.wait_for(waiting, 5)  # the other process subscribed again by itself
        assert (await other.get(again.id)).last_seq == 1
    finally:
        await store.close()
        await other.close()
        server.stop()


async def test_the_store_url_chooses_the_backend(redis_server, tmp_path):
    redis = open_store(redis_server.url())
    sqlite = open_store(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        assert type(redis).__name__ == "RedisJobStore"
        assert type(sqlite).__name__ == "SQLiteJobStore"
    finally:
        await redis.close()
        await sqlite.close()
    with pytest.raises(ValueError, match="redis://"):
        open_store("postgres://localhost/draftline")
