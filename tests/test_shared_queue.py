"""The shared queue on a real redis-server: what SAQ's sweep takes for a dead process's job and
what it leaves alone, and how processes share out the jobs in line."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest

from draftline import shared_queue
from draftline.shared_queue import SharedQueue
from tests.redis_server import RedisServer

pytestmark = pytest.mark.anyio


@pytest.fixture
async def shared(redis_server: RedisServer) -> AsyncIterator[SharedQueue]:
    shared = SharedQueue(redis_server.fresh_url(), slots=1)
    await shared.queue.connect()
    yield shared
    await shared.queue.disconnect()


async def take_without_marking_active(shared: SharedQueue) -> None:
    """What a worker's dequeue does first: the job moves to the running list, still `queued`
    until the worker's next round trip marks it active (or never, if the process dies now)."""
    queue = shared.queue
    await queue.redis.lmove(queue.namespace("queued"), queue.namespace("active"), "LEFT", "RIGHT")


async def sweep(shared: SharedQueue) -> list[str]:
    await shared.queue.redis.delete(shared.queue.namespace("sweep"))  # the lock of the last one
    return await shared.queue.sweep(lock=1, abort=0.1)


async def test_a_job_just_taken_from_the_line_is_not_swept_before_it_can_be_marked(shared):
    await shared.enqueue("j1")
    await take_without_marking_active(shared)
    assert await sweep(shared) == [] and await sweep(shared) == []
    job = await shared.queue.job("j1")
    assert job.status == "queued" and await shared.in_flight() == {"j1"}


async def test_a_job_taken_by_a_process_that_died_at_once_is_swept_after_the_grace(
    shared, monkeypatch
):
    monkeypatch.setattr(shared_queue, "TAKEN_GRACE", 0.3)
    await shared.enqueue("j1")
    await take_without_marking_active(shared)
    assert await sweep(shared) == []
    await anyio.sleep(0.4)
    assert await sweep(shared) == ["saq:job:draftline:j1"]
    assert await shared.waiting() == ["j1"]  # back in line, for a live process to take


async def test_processes_with_free_slots_take_turns_at_the_line(redis_server):
    # Redis gives a job to the client that has waited longest: when all of a process's slots
    # waited at once, the process that started first took every job up to all its slots.
    url = redis_server.fresh_url()
    first, second = SharedQueue(url, slots=4), SharedQueue(url, slots=4)
    ran: dict[str, list[str]] = {"first": [], "second": []}
    release = anyio.Event()

    def runner(name: str):
        async def run(job_id: str) -> None:
            ran[name].append(job_id)
            await release.wait()

        return run

    await first.start(runner("first"))
    try:
        await anyio.sleep(0.3)  # every slot of the first is waiting before the second starts
        await second.start(runner("second"))
        await anyio.sleep(0.3)
        for n in range(4):
            await first.enqueue(f"job{n}")
            await anyio.sleep(0.1)  # time for a slot to take it and the next to wait
        with anyio.fail_after(5):
            while len(ran["first"]) + len(ran["second"]) < 4:
                await anyio.sleep(0.02)
    finally:  # the workers stop even if the jobs never started
        release.set()
        await first.close()
        await second.close()
    assert len(ran["first"]) == len(ran["second"]) == 2, ran


async def running(queue: SharedQueue, job_ids: list[str], release: anyio.Event) -> None:
    """Start the queue's worker and run these jobs on it until `release`."""
    started: list[str] = []

    async def run(job_id: str) -> None:
        started.append(job_id)
        await release.wait()

    await queue.start(run)
    for job_id in job_ids:
        await queue.enqueue(job_id)
    with anyio.fail_after(5):
        while len(started) < len(job_ids):
            await anyio.sleep(0.02)


def stored_touch(client, queue: SharedQueue, job_id: str) -> tuple[str, int]:
    job = queue.queue.deserialize(client.get(f"saq:job:{shared_queue.NAME}:{job_id}"))
    return job.status, job.touched


async def test_one_beat_touches_every_job_running_here(redis_server):
    import redis

    url = redis_server.fresh_url()
    queue, release = SharedQueue(url, slots=2), anyio.Event()
    client = redis.Redis.from_url(url)
    try:
        await running(queue, ["j1", "j2"], release)
        before = {j: stored_touch(client, queue, j) for j in ("j1", "j2")}
        await anyio.sleep(0.01)
        await queue.touch()
        touched = {j: stored_touch(client, queue, j) for j in ("j1", "j2")}
    finally:
        release.set()
        await queue.close()
        client.close()
    for job_id in ("j1", "j2"):
        assert touched[job_id][0] == "active" and touched[job_id][1] > before[job_id][1]


async def test_a_beat_leaves_a_job_aborted_by_another_process_aborted(redis_server):
    import redis

    url = redis_server.fresh_url()
    queue, other, release = SharedQueue(url, slots=1), SharedQueue(url, slots=1), anyio.Event()
    client = redis.Redis.from_url(url)
    await other.queue.connect()
    try:
        await running(queue, ["j1"], release)
        queue._worker.timers["abort"] = 60  # the worker does not act on it during the test
        assert await other.abort("j1", "cancelled") == "active"
        aborted = stored_touch(client, queue, "j1")
        await queue.touch()
        assert stored_touch(client, queue, "j1") == aborted and aborted[0] == "aborting"
    finally:
        release.set()
        await queue.close()
        await other.queue.disconnect()
        client.close()


async def test_a_job_running_longer_than_the_heartbeat_is_never_swept(redis_server, monkeypatch):
    monkeypatch.setattr(shared_queue, "HEARTBEAT", 1)
    monkeypatch.setattr(shared_queue, "BEAT", 0.2)
    url = redis_server.fresh_url()
    queue, release = SharedQueue(url, slots=1), anyio.Event()
    try:
        await running(queue, ["j1"], release)
        swept = []
        for _ in range(10):  # 2.5 s: more than twice the heartbeat
            await anyio.sleep(0.25)
            swept += await sweep(queue)
        job = await queue.queue.job("j1")
    finally:
        release.set()
        await queue.close()
    assert swept == [] and job.status == "active"
