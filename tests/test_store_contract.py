"""The contract every job store keeps (store.JobStore), run against each backend.

A new backend adds one entry to BACKENDS: a function of the test's request that returns an opener
of the backend on fresh, empty storage, which can open it again on the same storage (a restart),
and passes every test here unchanged.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from draftline.jobs import Job
from draftline.store import JobStore, open_store

pytestmark = pytest.mark.anyio


def sqlite_backend(request: pytest.FixtureRequest) -> Callable[[], JobStore]:
    tmp_path: Path = request.getfixturevalue("tmp_path")
    url = f"sqlite:///{tmp_path / 'contract.db'}"
    return lambda: open_store(url)


def redis_backend(request: pytest.FixtureRequest) -> Callable[[], JobStore]:
    """A database of the session's redis-server (tests/conftest.py), emptied for this test."""
    url = request.getfixturevalue("redis_server").fresh_url()
    return lambda: open_store(url)


BACKENDS = {"sqlite": sqlite_backend, "redis": redis_backend}


@pytest.fixture(params=sorted(BACKENDS))
def opener(request) -> Callable[[], JobStore]:
    return BACKENDS[request.param](request)


@pytest.fixture
async def store(opener) -> AsyncIterator[JobStore]:
    opened = opener()
    yield opened
    await opened.close()


async def finished(store: JobStore, topic: str, client: str = "") -> Job:
    job = await store.create(topic, client)
    job.status, job.outline, job.article = "done", ["One"], "# Done"
    job.sections = [{"title": "One", "text": "Text.", "done": True}]
    await store.publish(job, "done", "done", job.event_data("done"))
    return job


# Jobs


async def test_a_created_job_is_queued_and_found_by_its_id(store):
    job = await store.create("Tides", client="10.0.0.1")
    found = await store.get(job.id)
    assert found is not None and found.to_record() == job.to_record()
    assert (found.status, found.topic, found.client, found.last_seq) == ("queued", "Tides",
                                                                         "10.0.0.1", 0)  # fmt: skip


@pytest.mark.parametrize("job_id", ["nope-nope-nope", "x", "../../etc/passwd", "a" * 100, ""])
async def test_unknown_or_malformed_ids_are_none(store, job_id):
    await store.create("Tides")
    assert await store.get(job_id) is None


async def test_saving_keeps_every_fact(store):
    job = await store.create("Tides")
    job.status, job.step, job.outline, job.article, job.error = "failed", "sections", ["A"], "", "x"
    job.sections = [{"title": "A", "text": "Half a sentence", "done": False}]
    job.queue_position = 3
    await store.save(job)
    assert (await store.get(job.id)).to_record() == job.to_record()


async def test_jobs_are_listed_newest_first_a_page_at_a_time(store):
    made = [await store.create(f"Topic {n}") for n in range(5)]
    assert await store.count() == 5
    listed = await store.list(limit=3)
    assert [j.id for j in listed] == [j.id for j in reversed(made)][:3]
    assert [j.id for j in await store.list(limit=3, offset=3)] == [made[1].id, made[0].id]


async def test_jobs_by_status_oldest_first(store):
    first, second = await store.create("One"), await store.create("Two")
    await finished(store, "Three")
    second.status = "running"
    await store.save(second)
    assert [j.id for j in await store.with_status(("queued", "running"))] == [first.id, second.id]


async def test_active_jobs_are_counted_per_client(store):
    await store.create("One", client="a")
    await store.create("Two", client="a")
    await finished(store, "Three", client="a")
    await store.create("Four", client="b")
    assert (await store.count_active("a"), await store.count_active("b")) == (2, 1)
    assert await store.count_active("c") == 0


async def test_deleting_removes_the_job_and_its_events(store):
    job = await finished(store, "Tides")
    assert await store.delete(job.id) is True
    assert await store.get(job.id) is None
    assert await store.events_after(job.id, 0) == []
    assert await store.delete(job.id) is False
    assert await store.count() == 0


async def test_a_deleted_job_stays_deleted_when_saved_again(store):
    job = await store.create("Tides")
    await store.delete(job.id)
    await store.save(job)
    assert await store.get(job.id) is None


# Events


async def test_events_are_numbered_per_job_and_compacted_per_key(store):
    job, other = await store.create("Tides"), await store.create("Other")
    for text in ("A", "AB", "ABC"):
        job.sections = [{"title": "One", "text": text, "done": False}]
        await store.publish(job, "section:0", "update", job.event_data("section:0"))
    await store.publish(job, "job", "update", job.event_data("job"))
    await store.publish(other, "job", "update", other.event_data("job"))
    events = await store.events_after(job.id, 0)
    assert [(e.seq, e.key) for e in events] == [(3, "section:0"), (4, "job")]
    assert '"ABC"' in events[0].data and events[0].name == "update"
    assert [e.key for e in await store.events_after(job.id, 3)] == ["job"]
    assert await store.events_after(job.id, 4) == []
    assert (await store.get(job.id)).last_seq == 4
    assert [e.seq for e in await store.events_after(other.id, 0)] == [1]  # its own numbering


async def test_events_published_together_get_consecutive_ids_and_supersede_by_key(store):
    job = await store.create("Tides")
    job.status, job.sections = "running", [{"title": "One", "text": "A", "done": False}]
    await store.publish(job, "section:0", "update", job.event_data("section:0"))
    job.sections[0].update(text="AB", done=True)
    published = await store.publish_many(job, [
        ("section:0", "update", job.event_data("section:0")),
        ("job", "update", job.event_data("job"))])  # fmt: skip
    assert [(e.seq, e.key) for e in published] == [(2, "section:0"), (3, "job")]
    events = await store.events_after(job.id, 0)
    assert [(e.seq, e.key) for e in events] == [(2, "section:0"), (3, "job")]
    assert '"AB"' in events[0].data and (await store.get(job.id)).last_seq == job.last_seq == 3
    assert await store.is_live(job.id)


async def test_a_watching_viewer_wakes_to_all_the_events_published_together(store):
    job = await store.create("Tides")
    job.status = "running"
    await store.publish(job, "job", "update", job.event_data("job"))
    assert [e.seq for e in await store.events_after(job.id, 0)] == [1]  # a viewer is watching
    waiting = asyncio.create_task(store.wait_for_events(job.id, 1))
    await asyncio.sleep(0.05)
    job.outline = ["One"]
    await store.publish_many(job, [("outline", "update", job.event_data("outline")),
                                   ("job", "update", job.event_data("job"))])  # fmt: skip
    await asyncio.wait_for(waiting, 2)
    assert [(e.seq, e.key) for e in await store.events_after(job.id, 1)] == [
        (2, "outline"), (3, "job")]  # fmt: skip


async def test_events_published_together_are_conditional_together(store):
    job = await store.create("Tides")
    assert await store.publish_many(job, [("job", "update", job.event_data("job")),
                                          ("outline", "update", job.event_data("outline"))],
                                    if_status="running") is None  # fmt: skip
    assert await store.events_after(job.id, 0) == [] and (await store.get(job.id)).last_seq == 0


async def test_publishing_saves_the_job(store):
    job = await store.create("Tides")
    job.status, job.step = "running", "outline"
    await store.publish(job, "job", "update", job.event_data("job"))
    assert (await store.get(job.id)).to_record() == job.to_record()


async def test_a_conditional_event_is_published_only_while_the_job_has_that_status(store):
    job = await store.create("Tides")
    stale = await store.get(job.id)  # what another process read while the job was queued
    job.status = "running"
    await store.publish(job, "job", "update", job.event_data("job"))
    stale.queue_position = 3
    assert await store.publish(stale, "job", "update", stale.event_data("job"),
                               if_status="queued") is None  # fmt: skip
    kept = await store.get(job.id)
    assert (kept.status, kept.queue_position, kept.last_seq) == ("running", None, 1)
    assert [e.seq for e in await store.events_after(job.id, 0)] == [1]
    job.queue_position = None
    event = await store.publish(job, "job", "update", job.event_data("job"), if_status="running")
    assert event is not None and event.seq == 2


async def test_a_job_is_live_from_its_first_event_until_done(store):
    job = await store.create("Tides")
    job.status = "running"
    await store.publish(job, "job", "update", job.event_data("job"))
    assert await store.is_live(job.id)
    job.status = "done"
    await store.publish(job, "done", "done", job.event_data("done"))
    assert not await store.is_live(job.id)
    assert [e.name for e in await store.events_after(job.id, 0)][-1] == "done"


async def test_a_discarded_event_is_gone(store):
    job = await finished(store, "Tides")
    await store.discard_event(job.id, "done")
    assert await store.events_after(job.id, 0) == []


async def test_waiting_viewers_wake_on_the_next_event(store):
    job = await store.create("Tides")
    waiting = asyncio.create_task(store.wait_for_events(job.id, 0))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    await store.publish(job, "job", "update", job.event_data("job"))
    await asyncio.wait_for(waiting, 2)


async def test_waiting_returns_at_once_when_an_event_is_already_there(store):
    job = await store.create("Tides")
    await store.publish(job, "job", "update", job.event_data("job"))
    await asyncio.wait_for(store.wait_for_events(job.id, 0), 2)


async def test_waiting_viewers_wake_when_the_job_is_deleted(store):
    job = await store.create("Tides")
    await store.publish(job, "job", "update", job.event_data("job"))
    waiting = asyncio.create_task(store.wait_for_events(job.id, 1))
    await asyncio.sleep(0.05)
    await store.delete(job.id)
    await asyncio.wait_for(waiting, 2)


# Versions


async def test_versions_are_numbered_per_job_and_kept_in_order(store):
    job, other = await store.create("Tides"), await store.create("Other")
    first = await store.add_version(job.id, "styled", "# One")
    await store.add_version(other.id, "styled", "# Other")
    second = await store.add_version(job.id, "edited", "# Two")
    assert (first.n, second.n) == (1, 2)
    assert [(v.n, v.kind, v.article) for v in await store.versions(job.id)] == [
        (1, "styled", "# One"), (2, "edited", "# Two")]  # fmt: skip
    assert [v.n for v in await store.versions(other.id)] == [1]
    assert await store.versions("unknownjob1") == []


async def test_deleting_a_job_deletes_its_versions(store):
    job = await store.create("Tides")
    await store.add_version(job.id, "styled", "# One")
    await store.delete(job.id)
    assert await store.versions(job.id) == []


async def test_a_job_keeps_its_options(store):
    job = await store.create("Tides", options={"length": "short", "tone": "formal"})
    assert (await store.get(job.id)).brief.length == "short"


# The store itself


async def test_a_restart_keeps_jobs_and_their_events(opener):
    first = opener()
    job = await finished(first, "Tides")
    await first.add_version(job.id, "styled", job.article)
    running = await first.create("Still going")
    running.status = "running"
    await first.publish(running, "job", "update", running.event_data("job"))
    await first.close()
    again = opener()
    try:
        assert (await again.get(job.id)).to_record() == job.to_record()
        assert [e.name for e in await again.events_after(job.id, 0)] == ["done"]
        assert [v.article for v in await again.versions(job.id)] == [job.article]
        assert [j.id for j in await again.with_status(["running"])] == [running.id]
        assert [e.key for e in await again.events_after(running.id, 0)] == ["job"]
    finally:
        await again.close()


async def test_a_working_store_is_writable(store):
    await store.check_writable()  # raises StorageError when it cannot save
