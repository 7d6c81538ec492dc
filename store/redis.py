"""Jobs and their events in Redis 7 or Valkey: the backend of store.JobStore for several processes.

Every key starts with `draftline:`. A job is a hash: its record (Job.to_record() as JSON), the
fields the scripts below index it by (status, client, created_at), `last_seq`, the one counter of
its event ids, and `live` while it runs. Beside it: `jobs` and `status:<status>` (sorted sets of
ids by created_at), `active:<client>` (the ids it has queued or running), `events:<id>` (a sorted
set of events scored by seq, at most one per key, with `event-keys:<id>` mapping each key to its
seq) and `versions:<id>` (a list: version n is item n).

Each write is one Lua script, so it is atomic across processes: publishing bumps `last_seq`,
saves the job, replaces the key's event and announces it on the wake-up channel in one step; no
two processes can hand out the same id, and no process can die between a write and its wake-up.
The scripts build key names from the prefix, so they need one Redis (or Valkey), not a Cluster.

The wake-up channel's messages carry the events themselves, so each process keeps the logs of
the running jobs its viewers watch in memory (`_LiveLog`), as SQLite does in one process: a
thousand viewers waking cost no queries.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..jobs import JOB_ID, Event, Job, Version, new_job_id
from . import StorageError

log = logging.getLogger("draftline.store")

PREFIX = "draftline:"
UNREACHABLE = (
    "Draftline cannot reach its Redis store right now. Nothing saved so far is lost; it "
    "reconnects by itself, so try again in a moment."
)
REFUSED = (
    "Draftline's Redis store refused to save (out of memory, or read-only). Nothing saved so far "
    "is lost; try again once it can write."
)
GONE = "This article has been deleted, so nothing more can be saved for it."
_FIELDS = frozenset(f.name for f in dataclasses.fields(Job))
_IDLE = 15.0  # seconds the wake-up listener waits for a message before it looks again
_ENDED_KEPT = 5.0  # seconds an ended job's log stays in memory, for viewers still catching up

# Shared by the scripts that write a job. ARGV[1] is the key prefix, ARGV[2] the job's id.
_LUA_JOB = """
local p, id = ARGV[1], ARGV[2]
local job = p .. 'job:' .. id
local function unindex()
  local old = redis.call('HMGET', job, 'status', 'client')
  if old[1] then
    redis.call('ZREM', p .. 'status:' .. old[1], id)
    redis.call('SREM', p .. 'active:' .. old[2], id)
  end
end
local function put(record, status, client)
  unindex()
  redis.call('HSET', job, 'record', record, 'status', status, 'client', client)
  redis.call('ZADD', p .. 'status:' .. status, redis.call('HGET', job, 'created_at'), id)
  if status == 'queued' or status == 'running' then
    redis.call('SADD', p .. 'active:' .. client, id)
  end
end
"""
# ARGV: prefix, id, record, status, client, created_at
_CREATE = _LUA_JOB + """
redis.call('HSET', job, 'created_at', ARGV[6], 'last_seq', 0)
redis.call('ZADD', p .. 'jobs', ARGV[6], id)
put(ARGV[3], ARGV[4], ARGV[5])
"""
# ARGV: prefix, id, record, status, client. A deleted job stays deleted: 0.
_SAVE = _LUA_JOB + """
if redis.call('EXISTS', job) == 0 then return 0 end
put(ARGV[3], ARGV[4], ARGV[5])
return 1
"""
# ARGV: prefix, id, record, status, client, lowest seq, channel, the status the stored job must
# have ('' for any), then (key, event, event name) for each event. The first new seq, 0 for a
# deleted job, -1 for a job whose status is not that one. The lowest seq keeps ids above those
# this process handed out from memory while Redis was away, so its viewers' cursors never run
# ahead of the job. One message announces all the events, so viewers wake once for them.
_PUBLISH = _LUA_JOB + """
if redis.call('EXISTS', job) == 0 then return 0 end
if ARGV[8] ~= '' and redis.call('HGET', job, 'status') ~= ARGV[8] then return -1 end
put(ARGV[3], ARGV[4], ARGV[5])
local count = (#ARGV - 8) / 3
local first = redis.call('HINCRBY', job, 'last_seq', count) - count + 1
if first < tonumber(ARGV[6]) then
  first = tonumber(ARGV[6])
  redis.call('HSET', job, 'last_seq', first + count - 1)
end
local events, keys = p .. 'events:' .. id, p .. 'event-keys:' .. id
local lines = {}
for i = 0, count - 1 do
  local key, event, seq = ARGV[9 + 3 * i], ARGV[10 + 3 * i], first + i
  local old = redis.call('HGET', keys, key)
  if old then redis.call('ZREMRANGEBYSCORE', events, old, old) end
  redis.call('HSET', keys, key, seq)
  redis.call('ZADD', events, seq, event)
  lines[#lines + 1] = seq .. ' ' .. event
end
if ARGV[#ARGV] == 'done' then
  redis.call('HDEL', job, 'live')
else
  redis.call('HSET', job, 'live', 1)
end
redis.call('PUBLISH', ARGV[7], id .. ' ' .. table.concat(lines, '\\n'))
return first
"""
# ARGV: prefix, id, key, channel
_DISCARD = _LUA_JOB + """
local events, keys = p .. 'events:' .. id, p .. 'event-keys:' .. id
local old = redis.call('HGET', keys, ARGV[3])
if old then
  redis.call('ZREMRANGEBYSCORE', events, old, old)
  redis.call('HDEL', keys, ARGV[3])
end
redis.call('PUBLISH', ARGV[4], id)
"""
# ARGV: prefix, id, channel. 1 if there was a job.
_DELETE = _LUA_JOB + """
local existed = redis.call('EXISTS', job)
unindex()
redis.call('ZREM', p .. 'jobs', id)
redis.call('DEL', job, p .. 'events:' .. id, p .. 'event-keys:' .. id, p .. 'versions:' .. id)
redis.call('PUBLISH', ARGV[3], id)
return existed
"""
# ARGV: prefix, id, version. Its number, or 0 for a deleted job.
_ADD_VERSION = _LUA_JOB + """
if redis.call('EXISTS', job) == 0 then return 0 end
return redis.call('RPUSH', p .. 'versions:' .. id, ARGV[3])
"""


class RedisJobStore:
    """Jobs and events in Redis, shared by every process that opens the same URL."""

    def __init__(self, url: str, prefix: str = PREFIX):
        # A call retries twice, quickly, on a fresh connection (after a Redis restart every pooled
        # one is dead), so Redis gone fails it within a second or so, and routes answer 503 rather
        # than hang; the pool reconnects by itself once Redis is back.
        self._redis = Redis.from_url(
            url, decode_responses=True, socket_connect_timeout=1, socket_timeout=5,
            socket_keepalive=True, health_check_interval=30,
            retry=Retry(ExponentialBackoff(cap=0.25, base=0.05), 2),
        )  # fmt: skip
        given = self._redis.connection_pool.connection_kwargs
        place = given.get("path") or f"{given.get('host')}:{given.get('port')}"
        self.where = f"{place}/{given.get('db', 0)}"
        self.prefix = prefix
        self.bus = RedisBus(self._redis, prefix + "wake", on_message=self._heard,
                            on_reset=self._forget_logs)  # fmt: skip
        self._scripts = {name: self._redis.register_script(lua) for name, lua in (
            ("create", _CREATE), ("save", _SAVE), ("publish", _PUBLISH), ("discard", _DISCARD),
            ("delete", _DELETE), ("add_version", _ADD_VERSION))}  # fmt: skip
        # Events that could not be saved, for this process's viewers (a job's final `done` must
        # still end their streams). A job leaves it when it publishes `done` again, saved.
        self._unsaved: dict[str, dict[str, Event]] = {}
        # The logs of running jobs that viewers here watch, fed by the wake-up channel (each
        # message carries its event): a thousand viewers waking cost no queries (see _LiveLog).
        self._logs: dict[str, _LiveLog] = {}
        self._loading: dict[str, asyncio.Task] = {}
        self._heard_while_loading: dict[str, list[str]] = {}

    async def close(self) -> None:
        await self.bus.close()
        await self._redis.aclose()

    # Jobs

    async def create(self, topic: str, client: str = "", options: dict | None = None) -> Job:
        job = Job(id=new_job_id(), topic=topic, client=client, options=dict(options or {}))
        with self._talking("create a job"):
            await self._run("create", job.id, _record(job), job.status, job.client,
                            repr(job.created_at))  # fmt: skip
        return job

    async def get(self, job_id: str) -> Job | None:
        if not JOB_ID.match(job_id):
            return None
        with self._talking("read a job"):
            record, last_seq = await self._redis.hmget(self._key("job", job_id), "record",
                                                       "last_seq")  # fmt: skip
        return _job(record, last_seq) if record is not None else None

    async def list(self, limit: int = 20, offset: int = 0) -> list[Job]:
        if limit <= 0:
            return []
        with self._talking("list jobs"):
            ids = await self._redis.zrange(self._key("jobs"), offset, offset + limit - 1,
                                           desc=True)  # fmt: skip
        return await self._jobs(ids)

    async def count(self) -> int:
        with self._talking("count jobs"):
            return await self._redis.zcard(self._key("jobs"))

    async def with_status(self, statuses: Iterable[str]) -> list[Job]:
        with self._talking("list jobs by status"):
            async with self._redis.pipeline(transaction=True) as pipe:
                for status in statuses:
                    pipe.zrange(self._key("status", status), 0, -1, withscores=True)
                indexed = await pipe.execute()
        ordered = sorted((score, job_id) for ids in indexed for job_id, score in ids)
        return await self._jobs([job_id for _, job_id in ordered])

    async def count_active(self, client: str) -> int:
        """Jobs this client has queued or running."""
        with self._talking("count a client's jobs"):
            return await self._redis.scard(self._key("active", client))

    async def save(self, job: Job) -> None:
        job.updated_at = time.time()
        with self._talking("save a job"):
            await self._run("save", job.id, _record(job), job.status, job.client)

    async def delete(self, job_id: str) -> bool:
        """Delete a job, its events and versions; its viewers, in every process, wake up and
        find it gone."""
        with self._talking("delete a job"):
            deleted = await self._run("delete", job_id, self.bus.channel)
        self._unsaved.pop(job_id, None)
        return bool(deleted)

    # Events

    async def publish(self, job: Job, key: str, name: str, data: str,
                      if_status: str | None = None) -> Event | None:  # fmt: skip
        """Save the job and record an event that supersedes earlier ones with the same key
        (with `if_status`, only while the stored job has that status, checked in the same
        script, so no other process can move it on in between); its seq comes from the job's
        counter in Redis, whichever process publishes.

        If Redis cannot save it, the event still reaches this process's viewers (from memory,
        so a final `done` still ends their streams), and then StorageError is raised."""
        published = await self.publish_many(job, [(key, name, data)], if_status)
        return published[0] if published else None

    async def publish_many(self, job: Job, events: list[tuple[str, str, str]],
                           if_status: str | None = None) -> list[Event] | None:  # fmt: skip
        """publish() for several (key, name, data) events at once: one script, one message."""
        job.updated_at = time.time()
        args = []
        for key, name, data in events:
            args += (key, json.dumps([key, name, data, job.updated_at]), name)
        try:
            with self._talking("publish an event"):
                first = await self._run("publish", job.id, _record(job), job.status, job.client,
                                        job.last_seq + 1, self.bus.channel, if_status or "",
                                        *args)  # fmt: skip
        except StorageError:
            unsaved = self._unsaved.setdefault(job.id, {})
            for key, name, data in events:
                job.last_seq += 1  # above every id this process has handed out for the job
                unsaved[key] = Event(job.last_seq, key, name, data, job.updated_at)
            self.bus.notify(job.id)
            raise
        if first == -1:
            return None
        if not first:
            raise StorageError(GONE)
        published = [Event(seq, key, name, data, job.updated_at)
                     for seq, (key, name, data) in enumerate(events, first)]  # fmt: skip
        job.last_seq = published[-1].seq
        if published[-1].name == "done":
            self._unsaved.pop(job.id, None)
        return published

    async def discard_event(self, job_id: str, key: str) -> None:
        with self._talking("discard an event"):
            await self._run("discard", job_id, key, self.bus.channel)
        self._unsaved.get(job_id, {}).pop(key, None)

    async def events_after(self, job_id: str, seq: int) -> list[Event]:
        unsaved = self._unsaved.get(job_id)
        latest: dict[str, Event] = {}
        try:
            log = await self._live_log(job_id)
            if log is not None:
                latest = {e.key: e for e in log.events.values() if e.seq > seq}
            else:
                with self._talking("read events"):
                    scored = await self._redis.zrange(self._key("events", job_id), f"({seq}",
                                                      "+inf", byscore=True, withscores=True)  # fmt: skip
                latest = _by_key(scored)
        except StorageError:
            if unsaved is None:
                raise
        for event in (unsaved or {}).values():
            if event.seq > max(seq, latest[event.key].seq if event.key in latest else 0):
                latest[event.key] = event
        return sorted(latest.values(), key=lambda e: e.seq)

    async def is_live(self, job_id: str) -> bool:
        """Running now, in any process: it has published, but not `done`, and is not deleted."""
        log = await self._live_log(job_id)
        if log is not None:
            return log.live
        with self._talking("read a job"):
            return bool(await self._redis.hexists(self._key("job", job_id), "live"))

    async def wait_for_events(self, job_id: str, seq: int) -> None:
        """Return once the job has an event newer than `seq`, or is deleted, whichever process
        published or deleted it. The wake-up is registered before looking, so an event published
        between the look and the sleep still wakes it."""
        while True:
            with self.bus.watching(job_id) as woken:
                if await self._has_news(job_id, seq):
                    return
                await woken

    async def _has_news(self, job_id: str, seq: int) -> bool:
        unsaved = self._unsaved.get(job_id, {})
        if any(event.seq > seq for event in unsaved.values()):
            return True
        log = await self._live_log(job_id)
        if log is not None:
            return log.seq > seq
        with self._talking("read events"):
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.exists(self._key("job", job_id))
                pipe.zcount(self._key("events", job_id), f"({seq}", "+inf")
                exists, newer = await pipe.execute()
        return not exists or newer > 0

    # Running jobs' logs, in memory

    async def _live_log(self, job_id: str) -> _LiveLog | None:
        """The job's log from memory, loaded first if need be; None for a job that is not
        running, or while the wake-up channel is down (then the caller reads Redis)."""
        log = self._logs.get(job_id)
        if log is not None or self.bus.epoch is None:
            return log
        loading = self._loading.get(job_id)
        if loading is None:  # one load, however many viewers ask at once
            loading = asyncio.ensure_future(self._load_log(job_id, self.bus.epoch))
            self._loading[job_id] = loading
            loading.add_done_callback(lambda done: done.cancelled() or done.exception())
        return await asyncio.shield(loading)

    async def _load_log(self, job_id: str, epoch: object) -> _LiveLog | None:
        """Read the job's log, once the channel stands (`epoch`): every event published after
        this read reaches `_heard`, and those heard while it ran are applied after it."""
        self._heard_while_loading[job_id] = []
        try:
            with self._talking("read events"):
                async with self._redis.pipeline(transaction=True) as pipe:
                    pipe.hmget(self._key("job", job_id), "last_seq", "live")
                    pipe.zrange(self._key("events", job_id), 0, -1, withscores=True)
                    (last_seq, live), scored = await pipe.execute()
        finally:
            heard = self._heard_while_loading.pop(job_id)
            self._loading.pop(job_id, None)
        # Not running; or messages may be lost; or deleted or changed meanwhile (read it again).
        if not live or epoch is not self.bus.epoch or "" in heard:
            return None
        log = _LiveLog(int(last_seq or 0))
        log.events = _by_key(scored)
        for message in heard:
            log.apply(message)
        self._logs[job_id] = log
        if not log.live:
            self._forget_later(job_id, log)
        return log

    def _heard(self, job_id: str, message: str) -> None:
        """A message on the wake-up channel: `seq payload` lines for events, empty for anything
        else (deleted, an event discarded), after which the job's log is read again."""
        if job_id in self._heard_while_loading:
            self._heard_while_loading[job_id].append(message)
        log = self._logs.get(job_id)
        if log is None:
            return
        if not message:
            del self._logs[job_id]
        elif log.apply(message) and not log.live:
            self._forget_later(job_id, log)

    def _forget_later(self, job_id: str, log: _LiveLog) -> None:
        """Keep an ended job's log a little while (its viewers are reading `done`), then let
        it go unless the job runs again."""

        def forget() -> None:
            if self._logs.get(job_id) is log and not log.live:
                del self._logs[job_id]

        asyncio.get_running_loop().call_later(_ENDED_KEPT, forget)

    def _forget_logs(self) -> None:
        """The wake-up channel (re)started: whatever it said while down is lost (a load under
        way sees the new epoch, and keeps nothing)."""
        self._logs.clear()

    # Versions

    async def add_version(self, job_id: str, kind: str, article: str) -> Version:
        created_at = time.time()
        with self._talking("add a version"):
            n = await self._run("add_version", job_id, json.dumps([kind, created_at, article]))
        if not n:
            raise StorageError(GONE)
        return Version(n, kind, created_at, article)

    async def versions(self, job_id: str) -> list[Version]:
        with self._talking("read versions"):
            stored = await self._redis.lrange(self._key("versions", job_id), 0, -1)
        return [Version(n, *json.loads(item)) for n, item in enumerate(stored, 1)]

    # The store itself

    async def check_writable(self) -> None:
        """Write something small, or raise StorageError: what /healthz asks."""
        with self._talking("check it can write"):
            await self._redis.set(self._key("health"), repr(time.time()))

    @contextlib.contextmanager
    def _talking(self, doing: str) -> Iterator[None]:
        """One exchange with Redis; Redis gone, or refusing to write, becomes a StorageError."""
        try:
            yield
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            log.warning("cannot reach Redis at %s to %s: %s", self.where, doing, exc)
            raise StorageError(UNREACHABLE) from exc
        except RedisError as exc:
            log.warning("Redis at %s refused to %s: %s", self.where, doing, exc)
            raise StorageError(REFUSED) from exc

    async def _run(self, script: str, job_id: str, *args: object) -> int:
        return await self._scripts[script](args=[self.prefix, job_id, *args])

    def _key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    async def _jobs(self, ids: list[str]) -> list[Job]:
        """The jobs with these ids, in this order (any deleted meanwhile left out)."""
        if not ids:
            return []
        with self._talking("read jobs"):
            async with self._redis.pipeline(transaction=False) as pipe:
                for job_id in ids:
                    pipe.hmget(self._key("job", job_id), "record", "last_seq")
                found = await pipe.execute()
        return [_job(record, last_seq) for record, last_seq in found if record is not None]


class _LiveLog:
    """A running job's compacted event log, in one process's memory: loaded from Redis once,
    then kept up by the wake-up channel, which carries every event that any process publishes
    in the order the scripts ran, so in seq order per job."""

    def __init__(self, seq: int):
        self.events: dict[str, Event] = {}
        self.seq = seq  # the newest event it holds
        self.live = True

    def apply(self, message: str) -> bool:
        """Take in an event message (a `seq payload` line per event); False for one whose
        events it already holds."""
        news = False
        for line in message.split("\n"):
            seq, _, payload = line.partition(" ")
            if int(seq) <= self.seq:
                continue
            event = _event(int(seq), payload)
            self.events[event.key] = event
            self.seq = event.seq
            self.live = event.name != "done"
            news = True
        return news


class RedisBus:
    """Wake-ups across processes, over Redis pub/sub: one channel for every job, whose messages
    start with a job id (an event's follow it). Each process keeps one subscription and wakes
    its own waiters.

    Waiters register here, in memory, before they look for events (`watching`); the
    subscription stands before any look. So an event saved after a look is announced after the
    subscription began, and reaches the waiter. Whenever the subscription (re)starts, every
    waiter is woken to look again: announcements sent while it was down are lost.
    """

    def __init__(self, client: Redis, channel: str,
                 on_message: Callable[[str, str], None] = lambda job_id, rest: None,
                 on_reset: Callable[[], None] = lambda: None):  # fmt: skip
        self._redis = client
        self.channel = channel
        # Each message is `<job id>` or `<job id> <what>`: `on_message(job_id, what)` hears it
        # before the job's waiters wake. `on_reset()` whenever messages may have been lost.
        self._on_message = on_message
        self._on_reset = on_reset
        self.epoch: object | None = None  # new with each subscription; None while there is none
        self._waiters: dict[str, set[asyncio.Future]] = {}
        self._listener: asyncio.Task | None = None
        self._sending: set[asyncio.Task] = set()
        self._closed = False

    def notify(self, job_id: str) -> None:
        """Wake this process's waiters now, and announce it to the other processes."""
        self._wake(job_id)
        sending = asyncio.get_running_loop().create_task(self._announce(job_id))
        self._sending.add(sending)
        sending.add_done_callback(self._sending.discard)

    async def wait(self, job_id: str) -> None:
        """Sleep until the next wake-up for this job (or a restarted subscription)."""
        with self.watching(job_id) as woken:
            await woken

    @contextlib.contextmanager
    def watching(self, job_id: str) -> Iterator[asyncio.Future]:
        """Registered from now on: await the future, after looking for what you wait for."""
        if not self._closed and (self._listener is None or self._listener.done()):
            self._listener = asyncio.get_running_loop().create_task(
                self._listen(), name="draftline-redis-wakeups")  # fmt: skip
        woken = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(job_id, set()).add(woken)
        try:
            yield woken
        finally:
            waiters = self._waiters.get(job_id)
            if waiters is not None:
                waiters.discard(woken)
                if not waiters:
                    del self._waiters[job_id]

    async def close(self) -> None:
        """Stop listening. redis-py can swallow a cancellation that lands while a read waits
        (the listener then reads on), so the listener also checks `_closed`, and is cancelled
        again until it has stopped."""
        self._closed = True
        tasks = [task for task in (self._listener, *self._sending) if task is not None]
        while tasks := [task for task in tasks if not task.done()]:
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks, timeout=0.1)

    def _wake(self, job_id: str) -> None:
        for woken in self._waiters.pop(job_id, ()):
            if not woken.done():
                woken.set_result(None)

    def _wake_everyone(self) -> None:
        for job_id in list(self._waiters):
            self._wake(job_id)

    async def _announce(self, job_id: str) -> None:
        try:
            await self._redis.publish(self.channel, job_id)
        except RedisError as exc:  # this process's viewers are awake; others look again later
            log.debug("could not announce an event of job %s: %s", job_id, exc)

    def _reset(self, epoch: object | None) -> None:
        """A new subscription (`epoch`), or none: what was said before may be lost."""
        self.epoch = epoch
        self._on_reset()

    async def _listen(self) -> None:
        pause, failing = 0.05, False
        while not self._closed:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(self.channel)
                    while not self._closed:
                        # An explicit timeout: idle is normal here, not a dead connection.
                        message = await pubsub.get_message(timeout=_IDLE)
                        if message is None:
                            continue
                        if message["type"] == "message":
                            job_id, _, what = message["data"].partition(" ")
                            self._on_message(job_id, what)
                            self._wake(job_id)
                        elif message["type"] == "subscribe":  # also after a reconnect
                            self._reset(object())
                            self._wake_everyone()
                            if failing:
                                log.info("Redis wake-ups on %s are back", self.channel)
                            pause, failing = 0.05, False
            except (RedisError, OSError) as exc:
                self._reset(None)
                if self._closed:
                    return
                (log.debug if failing else log.warning)(
                    "lost Redis wake-ups on %s, reconnecting: %s", self.channel, exc)  # fmt: skip
                failing = True
            except Exception:  # without this task, no page here would ever update again
                self._reset(None)
                log.exception("the Redis wake-up listener failed; starting it again")
            await asyncio.sleep(pause)
            pause = min(pause * 2, 2.0)


def _record(job: Job) -> str:
    return json.dumps(job.to_record())


def _event(seq: int, payload: str) -> Event:
    key, name, data, published_at = json.loads(payload)
    return Event(seq, key, name, data, published_at)


def _by_key(scored: list[tuple[str, float]]) -> dict[str, Event]:
    """Stored events (payload, seq), by key, as ZRANGE ... WITHSCORES gives them."""
    events = (_event(int(score), payload) for payload, score in scored)
    return {event.key: event for event in events}


def _job(record: str, last_seq: str | None) -> Job:
    """The stored record; `last_seq` is the job's counter, which only publishing moves."""
    facts = {name: value for name, value in json.loads(record).items() if name in _FIELDS}
    return Job.from_record({**facts, "last_seq": int(last_seq or 0)})
