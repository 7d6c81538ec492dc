"""Jobs and their events in one SQLite file: the one-box backend of store.JobStore.

Statements are short (well under a millisecond), so they run inline on the event loop's thread
rather than in a worker thread: that keeps event order trivially correct.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import logging
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from ..jobs import JOB_ID, Event, Job, Version, new_job_id
from . import StorageError, StoreInUse
from .bus import EventBus, LocalBus

log = logging.getLogger("draftline.store")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    topic TEXT NOT NULL,
    status TEXT NOT NULL,
    step TEXT,
    outline TEXT,
    sections TEXT NOT NULL DEFAULT '[]',
    article TEXT NOT NULL DEFAULT '',
    error TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    last_seq INTEGER NOT NULL DEFAULT 0,
    client TEXT NOT NULL DEFAULT '',
    queue_position INTEGER
);
CREATE INDEX IF NOT EXISTS jobs_by_age ON jobs (created_at DESC);
CREATE TABLE IF NOT EXISTS events (
    job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    key TEXT NOT NULL,
    name TEXT NOT NULL,
    data TEXT NOT NULL,
    published_at REAL NOT NULL,
    PRIMARY KEY (job_id, seq)
);
CREATE UNIQUE INDEX IF NOT EXISTS events_by_key ON events (job_id, key);
CREATE TABLE IF NOT EXISTS versions (
    job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    n INTEGER NOT NULL,
    kind TEXT NOT NULL,
    created_at REAL NOT NULL,
    article TEXT NOT NULL,
    PRIMARY KEY (job_id, n)
);
CREATE TABLE IF NOT EXISTS health (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    checked_at REAL NOT NULL
);
"""

# One column per field of Job, so a new fact needs no change here: a database from before it
# gets the column at start-up (NULL in old rows reads as the field's default). Lists and dicts
# are stored as JSON.
_FIELDS = dataclasses.fields(Job)
_JSON = frozenset(f.name for f in _FIELDS if str(f.type).startswith(("list", "dict")))
_COLUMNS = ", ".join(f.name for f in _FIELDS)
_MARKS = ",".join("?" * len(_FIELDS))
_INSERT = f"INSERT INTO jobs ({_COLUMNS}) VALUES ({_MARKS})"
# Every column from the same row tuple; a deleted job stays deleted (no upsert).
_UPDATE = f"UPDATE jobs SET ({_COLUMNS}) = ({_MARKS}) WHERE id = ?"


class SQLiteJobStore:
    """Jobs and events in one SQLite file (WAL); viewers are woken through `bus`."""

    def __init__(self, path: Path | str, bus: EventBus | None = None):
        self._claim = None
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._claim = claim(path)  # one process: its runner keeps the line in memory
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)
        self._add_missing_columns()
        self.bus = bus or LocalBus()
        # Running jobs' compacted event logs, mirrored in memory so that waking a thousand viewers
        # costs no queries. A job leaves it when it publishes `done`; the database stays the truth.
        self._live: dict[str, dict[str, Event]] = {}

    def _add_missing_columns(self) -> None:
        have = {row["name"] for row in self._db.execute("PRAGMA table_info(jobs)")}
        for name in (f.name for f in _FIELDS if f.name not in have):
            self._db.execute(f"ALTER TABLE jobs ADD COLUMN {name}")

    async def close(self) -> None:
        self._db.close()
        if self._claim is not None:
            os.close(self._claim)  # and with it the lock
            self._claim = None

    # Jobs

    async def create(self, topic: str, client: str = "", options: dict | None = None) -> Job:
        job = Job(id=new_job_id(), topic=topic, client=client, options=dict(options or {}))
        with self._writing():
            self._db.execute(_INSERT, _row(job))
        return job

    async def get(self, job_id: str) -> Job | None:
        if not JOB_ID.match(job_id):
            return None
        row = self._db.execute(f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _job(row) if row else None

    async def list(self, limit: int = 20, offset: int = 0) -> list[Job]:
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM jobs ORDER BY created_at DESC, rowid DESC LIMIT ? OFFSET ?",
            (limit, offset),
        )
        return [_job(row) for row in rows]

    async def count(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]

    async def with_status(self, statuses: Iterable[str]) -> list[Job]:
        wanted = list(statuses)
        marks = ",".join("?" * len(wanted))
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM jobs WHERE status IN ({marks}) ORDER BY created_at, rowid",
            wanted,
        )
        return [_job(row) for row in rows]

    async def save(self, job: Job) -> None:
        job.updated_at = time.time()
        with self._writing():
            self._update(job)

    async def count_active(self, client: str) -> int:
        """Jobs this client has queued or running."""
        return self._db.execute(
            "SELECT COUNT(*) FROM jobs WHERE client = ? AND status IN ('queued', 'running')",
            (client,),
        ).fetchone()[0]

    async def delete(self, job_id: str) -> bool:
        """Delete a job and its events; its viewers wake up and find it gone."""
        with self._writing():
            deleted = self._db.execute("DELETE FROM jobs WHERE id = ?", (job_id,)).rowcount > 0
        self._live.pop(job_id, None)
        self.bus.notify(job_id)
        return deleted

    # Events

    async def publish(self, job: Job, key: str, name: str, data: str,
                      if_status: str | None = None) -> Event | None:  # fmt: skip
        """Save the job and record an event that supersedes earlier ones with the same key
        (with `if_status`, only while the stored job has that status).

        If it cannot be saved, the event still reaches the job's viewers (from memory, so a
        final `done` still ends their streams), and then StorageError is raised."""
        published = await self.publish_many(job, [(key, name, data)], if_status)
        return published[0] if published else None

    async def publish_many(self, job: Job, events: list[tuple[str, str, str]],
                           if_status: str | None = None) -> list[Event] | None:  # fmt: skip
        """publish() for several (key, name, data) events at once: one write, one wake-up."""
        if if_status is not None:
            row = self._db.execute("SELECT status FROM jobs WHERE id = ?", (job.id,)).fetchone()
            if row is None or row["status"] != if_status:
                return None
        job.updated_at = time.time()
        first = job.last_seq + 1
        job.last_seq += len(events)
        published = [Event(seq, key, name, data, job.updated_at)
                     for seq, (key, name, data) in enumerate(events, first)]  # fmt: skip
        failure = None
        try:
            with self._writing():
                self._update(job)
                self._db.executemany(
                    "INSERT OR REPLACE INTO events (job_id, seq, key, name, data, published_at) "
                    "VALUES (?,?,?,?,?,?)",
                    [(job.id, e.seq, e.key, e.name, e.data, e.published_at) for e in published],
                )
        except StorageError as exc:
            failure = exc
        if published[-1].name == "done" and failure is None:
            self._live.pop(job.id, None)
        else:  # running, or ended without being saved: viewers are served from memory
            if job.id not in self._live:
                self._live[job.id] = {e.key: e for e in self._events_in_db(job.id, 0)}
            self._live[job.id].update((event.key, event) for event in published)
        self.bus.notify(job.id)
        if failure is not None:
            raise failure
        return published

    async def discard_event(self, job_id: str, key: str) -> None:
        with self._writing():
            self._db.execute("DELETE FROM events WHERE job_id = ? AND key = ?", (job_id, key))
        self._live.get(job_id, {}).pop(key, None)

    # Versions

    async def add_version(self, job_id: str, kind: str, article: str) -> Version:
        with self._writing():
            (n,) = self._db.execute("SELECT COALESCE(MAX(n), 0) + 1 FROM versions WHERE job_id = ?",
                                    (job_id,)).fetchone()  # fmt: skip
            version = Version(n, kind, time.time(), article)
            self._db.execute("INSERT INTO versions (job_id, n, kind, created_at, article) "
                             "VALUES (?,?,?,?,?)", (job_id, n, kind, version.created_at, article))
        return version

    async def versions(self, job_id: str) -> list[Version]:
        rows = self._db.execute("SELECT n, kind, created_at, article FROM versions "
                                "WHERE job_id = ? ORDER BY n", (job_id,))  # fmt: skip
        return [Version(*row) for row in rows]

    async def check_writable(self) -> None:
        """Write something small, or raise StorageError: what /healthz asks."""
        with self._writing():
            self._db.execute("INSERT OR REPLACE INTO health (id, checked_at) VALUES (1, ?)",
                             (time.time(),))  # fmt: skip

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """One write; a disk that is full, read-only or locked becomes a StorageError."""
        try:
            with self._db:
                yield
        except sqlite3.Error as exc:
            log.warning("could not write to %s: %s", self.path, exc)
            raise StorageError() from exc

    async def is_live(self, job_id: str) -> bool:
        """Running here and now: not finished, not deleted."""
        return job_id in self._live

    async def events_after(self, job_id: str, seq: int) -> list[Event]:
        live = self._live.get(job_id)
        if live is not None:
            return sorted((e for e in live.values() if e.seq > seq), key=lambda e: e.seq)
        return self._events_in_db(job_id, seq)

    def _events_in_db(self, job_id: str, seq: int) -> list[Event]:
        rows = self._db.execute(
            "SELECT seq, key, name, data, published_at FROM events "
            "WHERE job_id = ? AND seq > ? ORDER BY seq",
            (job_id, seq),
        )
        return [Event(*row) for row in rows]

    async def wait_for_events(self, job_id: str, seq: int) -> None:
        """Return once the job has an event newer than `seq`, or is deleted."""
        while True:
            live = self._live.get(job_id)
            if live is not None:
                if max((e.seq for e in live.values()), default=0) > seq:
                    return
            else:
                row = self._db.execute("SELECT last_seq FROM jobs WHERE id = ?", (job_id,)).fetchone()
                if row is None or row[0] > seq:
                    return
            await self.bus.wait(job_id)

    def _update(self, job: Job) -> None:
        self._db.execute(_UPDATE, (*_row(job), job.id))


def _row(job: Job) -> tuple:
    record = job.to_record()
    return tuple(
        json.dumps(record[f.name]) if f.name in _JSON and record[f.name] is not None
        else record[f.name]
        for f in _FIELDS
    )  # fmt: skip


def _job(row: sqlite3.Row) -> Job:
    facts = {}
    for f in _FIELDS:
        value = row[f.name]
        if value is None and "None" not in str(f.type):  # a column added after this row
            continue  # the field's default
        facts[f.name] = json.loads(value) if f.name in _JSON and value is not None else value
    return Job(**facts)


def claim(path: Path | str) -> int:
    """A file descriptor holding an exclusive lock on the database file, or StoreInUse when
    another process holds it. The lock goes when the descriptor is closed, or the process ends
    (kill -9 included), and does not touch SQLite's own locks."""
    held = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(held)
        raise StoreInUse(path) from None
    return held
