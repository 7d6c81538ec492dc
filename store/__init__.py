"""Where jobs and their events are kept: the contract every backend keeps, and how to open one.

Routes, the runner and the streams only call `JobStore`'s methods. SQLite (store/sqlite.py) is the
one-box backend; Redis (store/redis.py) is the one several processes can share. Both implement the
same Protocol and pass the same contract tests (tests/test_store_contract.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Protocol

from ..config import is_shared_store, sqlite_path
from ..jobs import Event, Job, Version


class StorageError(Exception):
    """The store could not save (disk full, read-only, locked; Redis unreachable); what it had
    saved is kept."""

    def __init__(self, message: str = ""):
        super().__init__(
            message or "Draftline cannot save right now: its disk is full or read-only. "
            "Nothing saved so far is lost; free some space, then try again."
        )


class StoreInUse(Exception):
    """Another process serves from this SQLite file: SQLite serves one process; several share
    Redis."""

    def __init__(self, path: object):
        super().__init__(
            f"Another Draftline process is already using {path}. The SQLite store serves one "
            "process: for more than one, set DRAFTLINE_STORE=redis://host:6379/0 (README: More "
            "than one process)."
        )


class JobStore(Protocol):
    """Jobs, and each job's compacted event log (the latest event per key)."""

    # Jobs

    async def create(self, topic: str, client: str = "", options: dict | None = None) -> Job:
        """A new queued job, saved."""

    async def get(self, job_id: str) -> Job | None:
        """The job, or None for an unknown or malformed id."""

    async def list(self, limit: int = 20, offset: int = 0) -> list[Job]:
        """Jobs, newest first."""

    async def count(self) -> int: ...

    async def with_status(self, statuses: Iterable[str]) -> list[Job]:
        """Jobs in any of `statuses`, oldest first."""

    async def count_active(self, client: str) -> int:
        """Jobs this client has queued or running."""

    async def save(self, job: Job) -> None:
        """Store the job's facts (a deleted job stays deleted)."""

    async def delete(self, job_id: str) -> bool:
        """Delete the job and its events, and wake its viewers; False if there was none."""

    # Events

    async def publish(self, job: Job, key: str, name: str, data: str,
                      if_status: str | None = None) -> Event | None:  # fmt: skip
        """Save the job and record an event superseding earlier ones with the same key.

        With `if_status`, only while the stored job still has that status (another process may
        have moved it on since this copy was read); otherwise nothing is saved or sent, and the
        answer is None. If it cannot be saved, the event still reaches the job's current viewers
        (so a final `done` still ends their streams), and then StorageError is raised."""

    async def publish_many(self, job: Job, events: list[tuple[str, str, str]],
                           if_status: str | None = None) -> list[Event] | None:  # fmt: skip
        """publish() for several (key, name, data) events, in one step: they get consecutive
        seqs, and viewers wake once for them all (a finished section moves the progress bar
        too)."""

    async def discard_event(self, job_id: str, key: str) -> None:
        """Forget the job's event with this key (a resumed job's old `done`)."""

    async def events_after(self, job_id: str, seq: int) -> list[Event]:
        """The job's latest event per key with a seq above `seq`, in seq order."""

    async def is_live(self, job_id: str) -> bool:
        """Running now: it has published since it started, but not `done`, and is not deleted."""

    async def wait_for_events(self, job_id: str, seq: int) -> None:
        """Return once the job has an event newer than `seq`, or is deleted."""

    # Versions of the finished article

    async def add_version(self, job_id: str, kind: str, article: str) -> Version:
        """Keep `article` as the job's next numbered version (1, 2, ...)."""

    async def versions(self, job_id: str) -> list[Version]:
        """The job's versions, oldest first (none for an unknown job)."""

    # The store itself

    async def check_writable(self) -> None:
        """Write something small, or raise StorageError: what /healthz asks."""

    async def close(self) -> None: ...


def open_store(url: str) -> JobStore:
    """The backend DRAFTLINE_STORE names: `sqlite:///relative/path.db`, `sqlite:////abs.db`, or
    `redis://host:6379/0` (`rediss://` for TLS). It connects when first used."""
    if is_shared_store(url):
        from .redis import RedisJobStore

        return RedisJobStore(url)
    from .sqlite import SQLiteJobStore

    return SQLiteJobStore(sqlite_path(url))


def check_not_in_use(url: str) -> None:
    """StoreInUse if another process already serves from this SQLite store; Redis is meant to
    be shared. Only a look: the store that opens it takes the lock for itself."""
    if is_shared_store(url):
        return
    from .sqlite import claim

    path = sqlite_path(url)
    if path.exists():
        os.close(claim(path))
