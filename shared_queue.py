"""The line jobs wait in when several processes share one Redis: a SAQ queue on that Redis.

Every app process runs a SAQ worker with as many slots as DRAFTLINE_MAX_RUNNING_JOBS, and takes
the next job in line whenever one of them is free, whichever process queued it. SAQ brings what
a queue shared by processes needs: one place in line per job (its key is the job's id), aborting
a job wherever it runs, and heartbeats, so that a job whose process died is swept out of the
running list within seconds. What a job is (its status, its parts) stays in the job store; SAQ
only says where it waits or runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisError
from saq import Worker
from saq.job import Job, Status
from saq.queue.redis import RedisQueue
from saq.utils import now

from .store import StorageError
from .store.redis import UNREACHABLE

log = logging.getLogger("draftline.queue")

NAME = "draftline"
# A process touches the jobs it runs every BEAT seconds; one not touched for HEARTBEAT seconds
# is taken for dead, and the next sweep (each second, by any process) takes it out of the
# running list. SAQ then waits 5 s for it to stop before it calls it aborted.
BEAT = 1.0
HEARTBEAT = 4
# A worker takes a job into the running list, and only then, a round trip or two later, marks it
# active. SAQ's sweep takes a job in that list that is not marked active for a dead process's and
# aborts it (saq#277): under load that window lasts seconds, and the sweep aborted a fifth of the
# jobs of a loaded bench run. A job seen so gets as long to be marked as a running one has to beat.
TAKEN_GRACE = float(HEARTBEAT)
SWEEP_EVERY = 1  # seconds; SAQ needs a whole number
ABORT_EVERY = 0.25  # how often a worker looks for its jobs aborted by another process
# A job just cancelled keeps its abort mark in SAQ for a moment, refusing the same key: a resume
# that comes that soon waits for it.
REQUEUE_FOR = 6.0
# While Redis is away (restarting), each call of the queue's waits for it, retrying with backoff
# for about half a minute, rather than failing at once: the worker neither spins nor fills the
# log. Pages do not wait on these calls; the job store fails fast and they answer 503.
PATIENCE = Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=30)
AWAY_PAUSE = 1.0  # seconds a worker slot waits after finding Redis away
REPEAT_EVERY = 10.0  # seconds before the same complaint about Redis being away is logged again


# One beat for all of a process's running jobs, in one round trip: SAQ's job.update() costs
# three (read the status, write the job, announce it) per job per second, most of the queue's
# traffic at 100 jobs. A job another process has aborted meanwhile is left as it is (a write
# would undo the abort); none is announced, as a touch changes no status.
_TOUCH = """
for i, key in ipairs(KEYS) do
  local stored = redis.call('GET', key)
  if stored and cjson.decode(stored).status == 'active' then
    redis.call('SET', key, ARGV[i])
  end
end
"""


class _RedisAwayInOneLine(logging.Filter):
    """SAQ logs a traceback for every call that finds Redis away (and asyncio one more for its
    worker's tasks): while Redis restarts, one line each says what happened, as ours do."""

    def __init__(self) -> None:
        super().__init__()
        self._said: dict[str, float] = {}  # each complaint's first line: when it was last let by

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if not isinstance(error, (RedisError, OSError)):
            return True
        if record.name == "asyncio" and "saq" not in record.getMessage():
            return True  # not SAQ's
        first_line = record.getMessage().splitlines()[0]
        now = time.monotonic()
        if now - self._said.get(first_line, -REPEAT_EVERY) < REPEAT_EVERY:
            return False  # said a moment ago: the upkeep loops fail 4 times a second
        self._said[first_line] = now
        record.msg, record.args = f"{first_line}: Redis is away ({error})", ()
        record.exc_info = record.exc_text = None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


class _PatientQueue(RedisQueue):
    """SAQ's Redis queue, but patient: a worker slot that finds Redis away waits a second before
    it looks again (SAQ's slot loop starts the next look at once, which would spin a core);
    processes with free slots take turns at the line (see dequeue); and the sweep spares a job
    just taken from the line for TAKEN_GRACE before it calls it lost."""

    def __init__(self, *args, waiting: int = 1, **kwargs) -> None:
        # A job in the running list not yet marked active: when first and last seen so.
        self._taken_seen: dict[bytes, tuple[float, float]] = {}
        self._waiting = asyncio.Semaphore(waiting)  # taken by the slots waiting at Redis
        self._idle = asyncio.Condition()  # the other idle slots of this process wait on it
        super().__init__(*args, **kwargs)

    # SAQ's sweep registers its script here on first use; the script is wrapped so that what it
    # lists as running leaves out the jobs still in their grace. The rest is SAQ's own sweep.
    @property
    def _cleanup_script(self):
        return self._listing_running

    @_cleanup_script.setter
    def _cleanup_script(self, script) -> None:
        self._listing_running = None if script is None else self._sparing_just_taken(script)

    def _sparing_just_taken(self, list_running):
        async def listed(**kwargs):
            running = await list_running(**kwargs)
            if not running:  # none, or another process holds the sweep this time
                return running
            now = time.monotonic()
            seen, self._taken_seen = self._taken_seen, {}
            kept = []
            for job_id, payload in running:
                job = self.deserialize(payload)
                if job is not None and job.status == Status.QUEUED:
                    first, last = seen.get(job_id, (now, now))
                    if now - last > 2 * TAKEN_GRACE:  # seen long ago: it left, and is back
                        first = now
                    self._taken_seen[job_id] = (first, now)
                    if now - first < TAKEN_GRACE:
                        continue
                kept.append([job_id, payload])
            return kept

        return listed

    async def dequeue(self, timeout: float = 0.0, poll_interval: float = 0.0):
        """The next job in line for one of this process's slots: taken at once if one waits;
        else up to a quarter of the slots (at least one) wait for one at Redis, the rest here.

        Redis hands a job to the client that has waited longest. When every slot waited there,
        the process started first took all of a burst, up to all its slots, while the others
        idled (two processes under bench.load: 89 % and 26 % of a core; now 66 % and 69 %). A
        slot that takes a job sends two idle ones to look, so a burst is taken in a few round
        trips, without every idle slot asking at each job. (One slot waiting per process
        balanced as well, but then 100 jobs on one busy process started seconds late.)"""
        try:
            job_id = await self._take()
            while job_id is None:
                if self._waiting.locked():  # enough slots wait at Redis: wait for their news
                    async with self._idle:
                        await self._idle.wait()
                    job_id = await self._take()
                    continue
                async with self._waiting:
                    job_id = await self.redis.blmove(self._queued, self._active, timeout,
                                                     "LEFT", "RIGHT")  # fmt: skip
                if job_id is None:  # waited `timeout` for nothing
                    return None
        except (RedisError, OSError):
            await asyncio.sleep(AWAY_PAUSE)  # SAQ's slot loop would ask again at once
            raise
        async with self._idle:
            self._idle.notify(2)
        return await self._get_job_by_id(job_id)

    async def _take(self) -> bytes | None:
        return await self.redis.lmove(self._queued, self._active, "LEFT", "RIGHT")


_ONE_LINE = _RedisAwayInOneLine()


class SharedQueue:
    """Jobs in line and running, across every process on one Redis."""

    def __init__(self, url: str, slots: int, name: str = NAME):
        client = Redis.from_url(url, retry=PATIENCE, socket_connect_timeout=1,
                                socket_keepalive=True, health_check_interval=30)  # fmt: skip
        self.queue = _PatientQueue(client, name=name, waiting=max(1, slots // 4))
        self.slots = slots
        self._worker: Worker | None = None
        self._working: asyncio.Task | None = None
        self._running: dict[str, Job] = {}  # SAQ's jobs running here, by key
        self._beating: asyncio.Task | None = None
        self._touch = client.register_script(_TOUCH)

    async def start(self, run: Callable[[str], Awaitable[None]]) -> None:
        """Take jobs from the line, `slots` at a time, calling `run(job_id)` for each."""

        async def work(ctx: dict, *, job_id: str) -> None:
            job = self._running[job_id] = ctx["job"]
            if self._beating is None or self._beating.done():
                self._beating = asyncio.create_task(self._beat(), name="draftline-queue-beat")
            try:
                await run(job_id)
            finally:
                if self._running.get(job_id) is job:
                    del self._running[job_id]

        for name in ("saq", "asyncio"):
            logging.getLogger(name).addFilter(_ONE_LINE)  # once: addFilter keeps no duplicates
        await self.queue.connect()
        self._worker = Worker(
            self.queue, [("run", work)], concurrency=self.slots,
            timers={"sweep": SWEEP_EVERY, "abort": ABORT_EVERY, "schedule": 60,
                    "worker_info": 10},
        )  # fmt: skip
        self._worker.SIGNALS = []  # uvicorn handles signals and stops us from its lifespan
        self._working = asyncio.create_task(self._worker.start(), name="draftline-queue")

    async def close(self) -> None:
        """Stop taking jobs. A job still running here goes back in line (the runner has ended
        its own jobs before this)."""
        if self._worker is not None:
            await self._worker.stop()
        if self._working is not None:
            await asyncio.wait([self._working])
        if self._beating is not None:
            self._beating.cancel()
        try:  # it says goodbye to Redis, which may be away
            async with asyncio.timeout(2):
                await self.queue.disconnect()
        except (TimeoutError, RedisError, OSError) as exc:
            log.warning("left the shared queue without a goodbye, Redis being away: %s", exc)
            await self.queue.redis.connection_pool.disconnect()

    async def enqueue(self, job_id: str) -> None:
        """Put the job at the end of the line; a no-op if it is in line or running already."""
        with _redis_away_is_a_storage_error():
            await self._enqueue(job_id)

    async def _enqueue(self, job_id: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + REQUEUE_FOR
        while True:
            queued = await self.queue.enqueue("run", key=job_id, job_id=job_id, timeout=0,
                                              heartbeat=HEARTBEAT, retries=1, ttl=600)  # fmt: skip
            if queued is not None:
                return
            job = await self.queue.job(job_id)
            if job is not None and job.status == Status.QUEUED:
                return  # in line already
            if loop.time() > deadline:  # the lost-job watch will interrupt it
                log.warning("could not put job %s in line: SAQ still holds it", job_id)
                return
            # Its last run is still ending (a stop not yet noted), or its abort mark is there.
            await asyncio.sleep(0.05)

    async def abort(self, job_id: str, reason: str) -> str | None:
        """Stop the job wherever it waits or runs. Answers what it was doing: "queued" (it will
        never run), "active" (its process stops it within ABORT_EVERY), or None (neither)."""
        with _redis_away_is_a_storage_error():
            job = await self.queue.job(job_id)
            if job is None or job.status not in (Status.QUEUED, Status.ACTIVE):
                return None
            was = Status(job.status).value  # abort() moves it on
            await job.abort(reason)
        return was

    async def waiting(self) -> list[str]:
        """The ids of the jobs in line, the next to start first."""
        with _redis_away_is_a_storage_error():
            queued = await self.queue.redis.lrange(self._queued, 0, -1)
        return [self._job_id(key) for key in queued]

    async def in_flight(self) -> set[str]:
        """The ids of the jobs in line or running in a live process (a dead process's jobs
        leave the running list once swept)."""
        with _redis_away_is_a_storage_error():
            async with self.queue.redis.pipeline(transaction=True) as pipe:
                pipe.lrange(self._queued, 0, -1)
                pipe.lrange(self._active, 0, -1)
                queued, active = await pipe.execute()
        return {self._job_id(key) for key in [*queued, *active]}

    @property
    def _queued(self) -> str:
        return self.queue.namespace("queued")

    @property
    def _active(self) -> str:
        return self.queue.namespace("active")

    def _job_id(self, saq_id: bytes | str) -> str:
        """Our job id from SAQ's id for it (`saq:job:<queue>:<key>`)."""
        text = saq_id.decode() if isinstance(saq_id, bytes) else saq_id
        return text.rpartition(":")[2]

    async def _beat(self) -> None:
        """Touch every job running here each BEAT seconds, while there are any: this process
        is alive."""
        while self._running:
            await asyncio.sleep(BEAT)
            with contextlib.suppress(Exception):  # Redis away: the sweep decides, not us
                await self.touch()

    async def touch(self) -> None:
        """Mark the jobs running here as alive now, in one round trip."""
        jobs = list(self._running.values())
        if not jobs:
            return
        touched = now()
        for job in jobs:
            job.touched = touched
        await self._touch(keys=[job.id for job in jobs],
                          args=[self.queue.serialize(job) for job in jobs])  # fmt: skip


@contextlib.contextmanager
def _redis_away_is_a_storage_error():
    """Redis away, for the queue as for the store: routes answer 503, the runner looks later."""
    try:
        yield
    except (RedisError, OSError) as exc:
        log.warning("cannot reach Redis for the shared queue: %s", exc)
        raise StorageError(UNREACHABLE) from exc
