"""Wake-ups for live viewers: a job's viewers sleep until its next event, or its deletion.

In one process an asyncio.Event per watched job is all it takes. A backend shared by several
processes needs a bus that crosses them with the same two methods: store/redis.py's RedisBus
does it over Redis pub/sub.
"""

from __future__ import annotations

import asyncio
from typing import Protocol


class EventBus(Protocol):
    def notify(self, job_id: str) -> None:
        """Wake everyone waiting on this job."""

    async def wait(self, job_id: str) -> None:
        """Sleep until the next `notify(job_id)`. The waiter is registered before this first
        suspends, so a caller that checked for events and then waits cannot miss one."""


class LocalBus:
    """Wake-ups within this process."""

    def __init__(self) -> None:
        self._wakeups: dict[str, asyncio.Event] = {}

    def notify(self, job_id: str) -> None:
        wakeup = self._wakeups.pop(job_id, None)
        if wakeup is not None:
            wakeup.set()

    async def wait(self, job_id: str) -> None:
        await self._wakeups.setdefault(job_id, asyncio.Event()).wait()
