"""A job's event stream, as one viewer sees it.

A viewer that sends Last-Event-ID gets the (compacted) events it missed, then the live tail. One
that does not (a first visit, a refresh, htmx's own reconnect) first gets one snapshot event that
brings every part of the page up to date. The stream always ends with an event named `done`.
"""

from __future__ import annotations

import asyncio
import functools
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable

import anyio
from sse_starlette import ServerSentEvent
from starlette.types import ASGIApp, Receive, Scope, Send

from . import views
from .jobs import Event, Job, Prices
from .store import JobStore, StorageError

STORE_AWAY_RETRY = 0.5  # seconds between looks at a store that cannot be read


def parse_last_event_id(raw: str | None, job: Job) -> int | None:
    """The id a reconnecting browser resumes from, or None when a snapshot is needed."""
    try:
        seq = int(raw or "")
    except ValueError:
        return None
    return seq if 0 <= seq <= job.last_seq else None


# Snapshots drawn lately, as sent. A job's state is its id, its last event and its last save
# (every save stamps updated_at), so viewers that arrive together (a shared link, a page of
# viewers reconnecting after a restart) share one drawing: the snapshot of a finished
# 2,600-word article takes 14 ms to draw, the whole event loop's time.
SNAPSHOTS_KEPT = 256
_snapshots: OrderedDict[tuple, bytes] = OrderedDict()


def snapshot_event(job: Job, name: str, prices: Prices | None = None) -> bytes:
    """The event `name` ("update" or "done") that redraws every part of the job's page."""
    state = (job.id, job.last_seq, job.updated_at, name, prices)
    encoded = _snapshots.get(state)
    if encoded is None:
        encoded = ServerSentEvent(data=views.snapshot(job, prices), event=name,
                                  id=str(job.last_seq)).encode()  # fmt: skip
        _snapshots[state] = encoded
        if len(_snapshots) > SNAPSHOTS_KEPT:
            _snapshots.popitem(last=False)
    return encoded


async def job_events(
    store: JobStore,
    job: Job,
    last_event_id: int | None,
    shutdown: anyio.Event | None = None,
    on_shutdown: Callable[[], Awaitable[None]] | None = None,
    prices: Prices | None = None,
) -> AsyncIterator[dict]:
    """Events for one viewer, drawn with the job's cost at `prices`. When the server shuts down,
    `on_shutdown` stops the jobs, so their final `done` events still reach the viewers before
    the streams close."""
    watcher = None
    if shutdown is not None and on_shutdown is not None:
        watcher = asyncio.create_task(_call_when_set(shutdown, on_shutdown))
    try:
        async for event in _events(store, job, last_event_id, prices):
            yield event
    finally:
        if watcher is not None:
            watcher.cancel()


async def _call_when_set(event: anyio.Event, callback: Callable[[], Awaitable[None]]) -> None:
    await event.wait()
    await callback()


async def _events(store: JobStore, job: Job, last_event_id: int | None,
                  prices: Prices | None) -> AsyncIterator:  # fmt: skip
    if last_event_id is None:
        if job.is_final:
            yield snapshot_event(job, "done", prices)
            return
        yield snapshot_event(job, "update", prices)
        cursor = job.last_seq
    else:
        cursor = last_event_id
    while True:
        try:
            events = await store.events_after(job.id, cursor)
            if events:
                cursor = events[-1].seq
                # One write for everything pending; each event is encoded once for all viewers.
                yield b"".join(_encoded(e, prices) for e in events)
                if events[-1].name == "done":
                    return
                continue
            if not await store.is_live(job.id):
                current = await store.get(job.id)
                if current is None:
                    yield {"id": str(cursor), "event": "done", "data": views.deleted_notice()}
                    return
                if current.is_final:  # it ended before this viewer's cursor could see it
                    yield snapshot_event(current, "done", prices)
                    return
            await store.wait_for_events(job.id, cursor)
        except StorageError:  # the store is away (Redis restarting): the viewer waits for it
            await asyncio.sleep(STORE_AWAY_RETRY)


@functools.lru_cache(maxsize=4096)
def _encoded(event: Event, prices: Prices | None) -> bytes:
    """The event as drawn and sent: rendered once, however many viewers it goes to."""
    return ServerSentEvent(data=views.render_event(event, prices), event=event.name,
                           id=str(event.seq),
                           comment=f"t={event.published_at:.6f}").encode()  # fmt: skip


# How many streams are open: each holds a connection and a task for as long as the page is open.


class TooManyStreams(Exception):
    """A client, or everyone together, already has as many event streams open as allowed."""


class StreamSlots:
    """Open event streams, counted per client and in total; past either cap, none is opened."""

    def __init__(self, per_client: int, total: int):
        self.per_client = per_client
        self.total = total
        self.open: Counter[str] = Counter()

    def take(self, client: str) -> Callable[[], None]:
        """Count a new stream for `client`, or raise TooManyStreams; returns its release."""
        if self.open[client] >= self.per_client:
            raise TooManyStreams(
                f"You already have {self.per_client} live pages open. Close some, then reload."
            )
        if self.open.total() >= self.total:
            raise TooManyStreams("Draftline is serving as many live pages as it can right now. "
                                 "Please reload in a minute.")  # fmt: skip
        self.open[client] += 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self.open[client] -= 1
                if not self.open[client]:
                    del self.open[client]

        return release


class ReleasedAfter:
    """An ASGI response that calls `release` once it is over, however it ends."""

    def __init__(self, response: ASGIApp, release: Callable[[], None]):
        self.response = response
        self.release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.response(scope, receive, send)
        finally:
            self.release()
