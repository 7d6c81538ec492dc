"""Jobs, their events, and where they are kept.

A Job holds only facts (topic, status, step, outline, sections, article, error); progress, the
step indicators and the status line are derived from them, so every view of a job agrees.

Each change to a job is published as an Event under a key naming the part of the page it updates
("job", "outline", "section:2", "article", "done"). An event replaces that part's content, so only
the latest event per key is kept: the history stays bounded and replaying it is harmless.

SQLiteJobStore is the one-box backend. A second backend (Redis, for several processes) implements
the same methods; routes, runner and nodes only call these.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import secrets
import sqlite3
import time
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

STATUSES = ("queued", "running", "done", "failed", "cancelled", "interrupted")
FINAL_STATUSES = frozenset({"done", "failed", "cancelled", "interrupted"})
STEPS = (("outline", "Outline"), ("sections", "Sections"), ("style", "Style"))
_STEP_NAMES = [name for name, _ in STEPS]
JOB_ID = re.compile(r"^[A-Za-z0-9_-]{8,32}$")


log = logging.getLogger("draftline.jobs")

MAX_TOPIC_LENGTH = 200
# Invisible format characters (Unicode category Cf) are refused: bidi overrides and isolates can
# make a topic display as other text in the history. Only the joiners are kept, which emoji
# sequences (👩‍💻) and Persian or Indic writing need, and which cannot reorder text.
JOINERS = frozenset("\u200c\u200d")


class StorageError(Exception):
    """The store could not save (disk full, read-only, locked); what it had saved is kept."""

    def __init__(self, message: str = ""):
        super().__init__(
            message or "Draftline cannot save right now: its disk is full or read-only. "
            "Nothing saved so far is lost; free some space, then try again."
        )


class TopicError(ValueError):
    """A topic we cannot write about; the message is shown next to the field."""


def clean_topic(raw: str) -> str:
    """Collapse whitespace and check the topic, or raise TopicError saying what to fix."""
    topic = " ".join(raw.split())
    if not topic:
        raise TopicError("Please enter a topic.")
    if len(topic) > MAX_TOPIC_LENGTH:
        raise TopicError(
            f"Please keep the topic to {MAX_TOPIC_LENGTH} characters (this one has {len(topic)})."
        )
    if any(unicodedata.category(ch) in ("Cc", "Cs", "Co", "Cn") for ch in topic):
        raise TopicError("The topic contains control or unprintable characters; please retype it.")
    if any(unicodedata.category(ch) == "Cf" and ch not in JOINERS for ch in topic):
        raise TopicError(
            "The topic contains invisible formatting characters (such as right-to-left "
            "overrides), which can make it display as something else; please retype it."
        )
    return topic


def new_job_id() -> str:
    return secrets.token_urlsafe(9)


@dataclass
class Job:
    id: str
    topic: str
    status: str = "queued"
    step: str | None = None
    outline: list[str] | None = None
    sections: list[dict] = field(default_factory=list)
    article: str = ""
    error: str | None = None
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    last_seq: int = 0
    client: str = ""
    queue_position: int | None = None  # 1 = next to start; set while queued

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def progress(self) -> int:
        """0-33 % outline, 33-66 % sections (each finished one advances it), 66-100 % style."""
        if self.status == "done":
            return 100
        if not self.outline:
            return 0
        if self.step != "style":
            written = sum(1 for s in self.sections if s["done"])
            return 33 + (33 * written) // max(len(self.sections), 1)
        draft_length = sum(len(s["text"]) for s in self.sections) or 1
        return min(99, 66 + (33 * len(self.article)) // draft_length)

    @property
    def step_states(self) -> list[tuple[str, str, str]]:
        """(name, label, state) per step; state is pending, running, done, failed or stopped."""
        current = _STEP_NAMES.index(self.step) if self.step in _STEP_NAMES else -1
        stopped = {"running": "running", "failed": "failed"}.get(self.status, "stopped")
        states = []
        for index, (name, label) in enumerate(STEPS):
            if self.status == "done" or index < current:
                state = "done"
            elif index == current and self.status != "queued":
                state = stopped
            else:
                state = "pending"
            states.append((name, label, state))
        return states

    @property
    def sections_written(self) -> int:
        return sum(1 for s in self.sections if s["done"])

    @property
    def word_count(self) -> int:
        return len(self.article.split())

    @property
    def status_line(self) -> str:
        if self.status == "queued":
            if self.queue_position:
                return f"Waiting in line: number {self.queue_position}."
            return "Waiting to start…"
        if self.status == "running":
            if self.step == "sections":
                return f"Writing sections: {self.sections_written} of {len(self.sections)} done…"
            if self.step == "style":
                return "Polishing the style…"
            return "Planning the outline…"
        if self.status == "done":
            return f"Ready: {self.word_count} words."
        if self.status == "failed":
            return f"Failed: {self.error}"
        if self.status == "cancelled":
            return "Cancelled. Everything written so far is kept."
        return "Interrupted by a server restart. Everything finished so far is kept."

    def to_api(self) -> dict:
        return {
            "id": self.id,
            "topic": self.topic,
            "status": self.status,
            "progress": self.progress,
            "step": self.step,
            "outline": self.outline,
            "sections": [{"title": s["title"], "text": s["text"]} for s in self.sections],
            "article": self.article,
            "error": self.error,
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
        }


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Event:
    seq: int
    key: str
    name: str
    data: str
    published_at: float = 0.0  # unix time, sent as an SSE comment so delivery delay can be measured


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
CREATE TABLE IF NOT EXISTS health (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    checked_at REAL NOT NULL
);
"""

_COLUMNS = (
    "id, topic, status, step, outline, sections, article, error, "
    "created_at, updated_at, last_seq, client, queue_position"
)
_MARKS = ",".join("?" * len(_COLUMNS.split(",")))
_INSERT = f"INSERT INTO jobs ({_COLUMNS}) VALUES ({_MARKS})"
# Every column from the same row tuple; a deleted job stays deleted (no upsert).
_UPDATE = f"UPDATE jobs SET ({_COLUMNS}) = ({_MARKS}) WHERE id = ?"


class SQLiteJobStore:
    """Jobs and events in one SQLite file (WAL), used from the event loop's thread.

    Statements are short (well under a millisecond), so they run inline rather than in a thread:
    that keeps event order trivially correct. Wake-ups for live viewers are in-process.
    """

    def __init__(self, path: Path | str):
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)
        self._wakeups: dict[str, asyncio.Event] = {}
        # Running jobs' compacted event logs, mirrored in memory so that waking a thousand viewers
        # costs no queries. A job leaves it when it publishes `done`; the database stays the truth.
        self._live: dict[str, dict[str, Event]] = {}

    def close(self) -> None:
        self._db.close()

    # Jobs

    def create(self, topic: str, client: str = "") -> Job:
        job = Job(id=new_job_id(), topic=topic, client=client)
        with self._writing():
            self._db.execute(_INSERT, _row(job))
        return job

    def get(self, job_id: str) -> Job | None:
        if not JOB_ID.match(job_id):
            return None
        row = self._db.execute(f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _job(row) if row else None

    def list(self, limit: int = 20, offset: int = 0) -> list[Job]:
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM jobs ORDER BY created_at DESC, rowid DESC LIMIT ? OFFSET ?",
            (limit, offset),
        )
        return [_job(row) for row in rows]

    def count(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]

    def with_status(self, statuses: Iterable[str]) -> list[Job]:
        wanted = list(statuses)
        marks = ",".join("?" * len(wanted))
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM jobs WHERE status IN ({marks}) ORDER BY created_at, rowid",
            wanted,
        )
        return [_job(row) for row in rows]

    def save(self, job: Job) -> None:
        job.updated_at = time.time()
        with self._writing():
            self._update(job)

    def count_active(self, client: str) -> int:
        """Jobs this client has queued or running."""
        return self._db.execute(
            "SELECT COUNT(*) FROM jobs WHERE client = ? AND status IN ('queued', 'running')",
            (client,),
        ).fetchone()[0]

    def delete(self, job_id: str) -> bool:
        """Delete a job and its events; its viewers wake up and find it gone."""
        with self._writing():
            deleted = self._db.execute("DELETE FROM jobs WHERE id = ?", (job_id,)).rowcount > 0
        self._live.pop(job_id, None)
        self._wake(job_id)
        return deleted

    # Events

    def publish(self, job: Job, key: str, name: str, data: str) -> Event:
        """Save the job and record an event that supersedes earlier ones with the same key.

        If it cannot be saved, the event still reaches the job's viewers (from memory, so a
        final `done` still ends their streams), and then StorageError is raised."""
        job.last_seq += 1
        job.updated_at = time.time()
        event = Event(job.last_seq, key, name, data, job.updated_at)
        failure = None
        try:
            with self._writing():
                self._update(job)
                self._db.execute(
                    "INSERT OR REPLACE INTO events (job_id, seq, key, name, data, published_at) "
                    "VALUES (?,?,?,?,?,?)",
                    (job.id, event.seq, key, name, data, event.published_at),
                )
        except StorageError as exc:
            failure = exc
        if name == "done" and failure is None:
            self._live.pop(job.id, None)
        else:  # running, or ended without being saved: viewers are served from memory
            if job.id not in self._live:
                self._live[job.id] = {e.key: e for e in self._events_in_db(job.id, 0)}
            self._live[job.id][key] = event
        self._wake(job.id)
        if failure is not None:
            raise failure
        return event

    def _wake(self, job_id: str) -> None:
        wakeup = self._wakeups.pop(job_id, None)
        if wakeup is not None:
            wakeup.set()

    def discard_event(self, job_id: str, key: str) -> None:
        with self._writing():
            self._db.execute("DELETE FROM events WHERE job_id = ? AND key = ?", (job_id, key))
        self._live.get(job_id, {}).pop(key, None)

    def check_writable(self) -> None:
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

    def is_live(self, job_id: str) -> bool:
        """Running here and now: not finished, not deleted."""
        return job_id in self._live

    def events_after(self, job_id: str, seq: int) -> list[Event]:
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
            wakeup = self._wakeups.setdefault(job_id, asyncio.Event())
            await wakeup.wait()

    def _update(self, job: Job) -> None:
        self._db.execute(_UPDATE, (*_row(job), job.id))


def _row(job: Job) -> tuple:
    return (
        job.id,
        job.topic,
        job.status,
        job.step,
        json.dumps(job.outline) if job.outline is not None else None,
        json.dumps(job.sections),
        job.article,
        job.error,
        job.created_at,
        job.updated_at,
        job.last_seq,
        job.client,
        job.queue_position,
    )


def _job(row: sqlite3.Row) -> Job:
    return Job(
        id=row["id"],
        topic=row["topic"],
        status=row["status"],
        step=row["step"],
        outline=json.loads(row["outline"]) if row["outline"] is not None else None,
        sections=json.loads(row["sections"]),
        article=row["article"],
        error=row["error"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        last_seq=row["last_seq"],
        client=row["client"],
        queue_position=row["queue_position"],
    )


def open_store(url: str) -> SQLiteJobStore:
    from .config import sqlite_path

    return SQLiteJobStore(sqlite_path(url))
