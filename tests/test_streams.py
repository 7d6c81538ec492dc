"""streams.job_events, one viewer's stream: what a viewer without Last-Event-ID gets first."""

from __future__ import annotations

import pytest

from draftline import streams, views
from draftline.store.sqlite import SQLiteJobStore

pytestmark = pytest.mark.anyio


async def first_event(store: SQLiteJobStore, job_id: str) -> bytes:
    job = await store.get(job_id)
    events = streams.job_events(store, job, last_event_id=None)
    try:
        return await anext(events)
    finally:
        await events.aclose()


async def test_viewers_arriving_together_share_one_drawing_of_the_snapshot(monkeypatch):
    drawn = []
    real_snapshot = views.snapshot
    monkeypatch.setattr(views, "snapshot", lambda job, prices=None: drawn.append(job.id)
                        or real_snapshot(job, prices))  # fmt: skip
    store = SQLiteJobStore(":memory:")
    job = await store.create("Tide pools")
    job.status, job.step = "running", "sections"
    job.sections = [{"title": "What lives there", "text": "Crabs.", "done": True}]
    await store.publish(job, "outline", "update", job.event_data("outline"))

    firsts = [await first_event(store, job.id) for _ in range(3)]
    assert drawn == [job.id] and firsts[0] == firsts[1] == firsts[2]
    assert b"event: update" in firsts[0] and b"What lives there" in firsts[0]

    job.sections.append({"title": "When to go", "text": "", "done": False})  # saved, no event
    await store.save(job)
    changed = await first_event(store, job.id)
    assert drawn == [job.id, job.id] and b"When to go" in changed
