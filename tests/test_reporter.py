"""runner.JobReporter, the flow's one writer: how often a streaming part is published."""

from __future__ import annotations

import asyncio

import pytest

from draftline.runner import STREAM_INTERVAL, JobReporter
from draftline.store.sqlite import SQLiteJobStore

pytestmark = pytest.mark.anyio


class SlowStore(SQLiteJobStore):
    """A store whose every publish takes longer than STREAM_INTERVAL, as Redis's round trip
    does on a busy process."""

    def __init__(self) -> None:
        super().__init__(":memory:")
        self.published: list[str] = []

    async def publish_many(self, job, events, if_status=None):
        await asyncio.sleep(STREAM_INTERVAL * 1.2)
        self.published.append("+".join(key for key, _, _ in events))
        return await super().publish_many(job, events, if_status)


async def test_a_slow_publish_does_not_turn_a_stream_into_an_event_per_piece():
    # The interval counts from when the last update was out: counted from its start, every
    # piece after a slow publish found the interval over, and published again. On Redis under
    # load that was one event per token, five times the events, and the process never caught up.
    store = SlowStore()
    job = await store.create("Tides")
    job.sections = [{"title": "One", "text": "", "done": False}]
    report = JobReporter(store, job)
    text = ""
    for piece in range(40):  # 0.4 s of writing, plus the publishes
        text += f"word{piece} "
        await report.section(0, text, done=False)
        await asyncio.sleep(0.01)
    await report.section(0, text, done=True)
    streamed = store.published.count("section:0")
    assert 1 <= streamed <= 4, store.published
    assert store.published[-1] == "section:0+job"  # finished: the progress bar moves with it
    assert job.sections[0] == {"title": "One", "text": text, "done": True}
