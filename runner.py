"""Runs each job's flow as an asyncio task and publishes what happens.

This is the one place that turns an exception into a state a person can see, and every job,
however it ends, publishes a final `done` event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from .brief import Options
from .config import Settings
from .jobs import Job
from .llm import LLM, LLMError
from .outline import OutlineError
from .pocketflow_nodes import create_article_flow, create_section_flow
from .store import JobStore, StorageError

if TYPE_CHECKING:
    from .shared_queue import SharedQueue

log = logging.getLogger("draftline.runner")

# Streaming text is published at most this often per section (a few updates a second), counted
# from when the last update was out: a slow publish must not mean one event per token.
STREAM_INTERVAL = 0.25
RESUMABLE = frozenset({"failed", "cancelled", "interrupted"})
# Sharing Redis: how often each process looks for jobs whose process died, and how long a job
# must have been quiet, and out of the shared queue, before it counts as one of them.
LOST_CHECK_EVERY = 2.0
LOST_AFTER = 5.0
# How long a cancel waits for the process that runs the job to stop it and say so.
REMOTE_STOP_WAIT = 5.0
NOT_SAVED = (
    "Draftline could not save this article: its disk is full or read-only. What was saved is "
    "kept; free some space, then press Retry."
)


class JobStateError(Exception):
    """An action that does not fit the job's state (cancel a finished job, resume a running one)."""


class TooManyJobs(Exception):
    """A client already has as many jobs waiting as it may."""


class OverBudget(LLMError):
    """A job that has used up DRAFTLINE_MAX_TOKENS_PER_JOB. Not transient: never retried, and
    the runner fails the job with this message."""

    def __init__(self, used: int, budget: int):
        self.budget = budget
        how = "more than" if used > budget else "all that"
        super().__init__(f"This article used {used:,} tokens, {how} DRAFTLINE_MAX_TOKENS_PER_JOB "
                         f"({budget:,}) allows. What was written is kept.",
                         transient=False)  # fmt: skip


class JobEnded(asyncio.CancelledError):
    """Raised into what is left of a flow after its job ended: a section still being written
    when another one failed stops at its next report, and publishes nothing after `done`.

    Nobody awaits such a section any more (the batch's gather ended with the first failure),
    so it is a cancellation, not an error: its task ends cancelled, never retried, and
    asyncio does not report it as an exception nobody retrieved."""


class JobReporter:
    """The one writer of a job's state: the flow changes its job only through these methods,
    each of which updates the job and publishes the change (facts, not HTML) to its viewers."""

    def __init__(self, store: JobStore, job: Job, budget: int | None = None):
        self.store = store
        self.job = job
        self.budget = budget  # tokens the job may use in all (DRAFTLINE_MAX_TOKENS_PER_JOB)
        self.ended = False
        self._last_sent: dict[str, float] = {}

    async def publish(self, *keys: str, if_status: str | None = None) -> None:
        """Save the job and send the change of each key, together; with `if_status`, only while
        the stored job still has that status (store.JobStore.publish)."""
        if self.ended:
            raise JobEnded(self.job.id)
        self.ended = "done" in keys
        events = [(key, "done" if key == "done" else "update", self.job.event_data(key))
                  for key in keys]  # fmt: skip
        await self.store.publish_many(self.job, events, if_status)
        sent = time.monotonic()
        self._last_sent.update((key, sent) for key in keys)

    async def step(self, name: str) -> None:
        self.job.step = name
        await self.publish("job")

    async def outline(self, titles: list[str]) -> None:
        self.set_outline(titles)
        await self.publish("outline")

    def set_outline(self, titles: list[str]) -> None:
        """The titles, each with an empty section to write (the flow's, or a person's edit)."""
        self.job.outline = list(titles)
        self.job.sections = [{"title": t, "text": "", "done": False} for t in titles]

    async def section(self, index: int, text: str, done: bool) -> None:
        self.job.sections[index].update(text=text, done=done)
        if done:  # a finished section moves the progress bar and the status line too
            await self.publish(f"section:{index}", "job")
        else:
            await self._publish_streaming(f"section:{index}", done)

    async def rewrite(self, index: int, text: str, done: bool) -> None:
        """A finished section written again: the new text streams beside the old one, and takes
        its place only when done; the old text is kept as `previous`, for a diff and a restore."""
        section = self.job.sections[index]
        if not done:
            section["rewrite"] = text
            await self._publish_streaming(f"section:{index}", done)
            return
        del section["rewrite"]
        section.update(previous=section["text"], text=text,
                       instruction=(self.job.redo or {}).get("instruction", ""))  # fmt: skip
        await self.publish(f"section:{index}", "job")

    async def usage(self, prompt_tokens: int, completion_tokens: int) -> None:
        """The tokens one LLM call used, as its server reported them, added to the job's; past
        the job's budget, OverBudget ends the job (what it wrote is kept)."""
        used = self.job.usage
        used["prompt_tokens"] = used.get("prompt_tokens", 0) + prompt_tokens
        used["completion_tokens"] = used.get("completion_tokens", 0) + completion_tokens
        if self.budget is not None and self.tokens_used > self.budget:
            raise OverBudget(self.tokens_used, self.budget)  # the runner publishes the usage
        await self._publish_streaming("job", done=False)  # a section's end publishes it anyway

    def check_budget(self) -> None:
        """Before an LLM call: refuse to start one once the job has used its whole budget, so a
        resumed job that is over it fails at once, paying for nothing more."""
        if self.budget is not None and self.tokens_used >= self.budget:
            raise OverBudget(self.tokens_used, self.budget)

    @property
    def tokens_used(self) -> int:
        return sum(self.job.tokens.values())

    async def article(self, text: str, done: bool) -> None:
        self.job.article = text
        if done:  # every styled article is a version the person can go back to
            await self.store.add_version(self.job.id, version_kind(self.job), text)
        await self._publish_streaming("article", done)

    async def _publish_streaming(self, key: str, done: bool) -> None:
        if done or time.monotonic() - self._last_sent.get(key, 0.0) >= STREAM_INTERVAL:
            await self.publish(key)


def stop(job: Job, status: str, error: str | None = None) -> None:
    """End a job that did not finish as `status`. A redo that did not finish leaves the job as
    it was before it (in review, or done), with a note: nothing already finished is lost."""
    if not job.redo:
        job.status, job.error = status, error
        return
    what = "the outline" if job.redo["what"] == "outline" else f"section {job.redo['index'] + 1}"
    reason = {"cancelled": "it was cancelled", "interrupted": "the server restarted"}.get(
        status, error or "it failed")
    for section in job.sections:
        section.pop("rewrite", None)
    if kept := job.redo.get("kept"):  # the section and article as they were before the redo
        job.sections[job.redo["index"]], job.article = kept["section"], kept["article"]
    job.status = "review" if job.redo["what"] == "outline" else "done"
    job.error = f"Writing {what} again did not finish ({reason}); the earlier one is kept."
    job.step = job.redo = None


def version_kind(job: Job) -> str:
    if job.redo and job.redo["what"] == "section":
        return f"section {job.redo['index'] + 1} rewritten"
    return "styled"


class JobRunner:
    """Runs jobs in this process. Alone (SQLite), it also keeps the line jobs wait in, in
    memory; with a `shared` queue (Redis), jobs wait in that line, and whichever process has
    a free slot runs the next one."""

    def __init__(self, store: JobStore, settings: Settings, llm: LLM,
                 shared: SharedQueue | None = None):  # fmt: skip
        self.store = store
        self.settings = settings
        self.llm = llm  # the flow's, in its shared store
        self.shared = shared
        self.tasks: dict[str, asyncio.Task] = {}  # running in this process
        self._watching: asyncio.Task | None = None
        self._slots = asyncio.Semaphore(settings.max_running_jobs)
        self._queue: list[Job] = []  # waiting for a slot, first in line first
        self._deleting: set[str] = set()  # stopped for deletion: nothing more to publish
        self._stopping = False
        # Starts per client in the last minute: a moving window, so a burst may use them all.
        self._starts = MovingWindowRateLimiter(MemoryStorage())
        self._per_minute = RateLimitItemPerMinute(settings.jobs_per_minute)

    async def start(self) -> None:
        """At start-up. Alone, every job an earlier process left queued or running is not
        running now. Sharing a queue, other processes may be running theirs: this one starts
        taking jobs from the line, and looks out for jobs whose process died."""
        if self.shared is None:
            await self.interrupt_unfinished()
            return
        await self.shared.start(self._run_shared)
        self._watching = asyncio.create_task(self._watch_for_lost_jobs(), name="draftline-lost")

    async def interrupt_unfinished(self) -> None:
        """A job the previous process left queued or running is not running now."""
        for job in await self.store.with_status(("queued", "running")):
            await self._interrupt(job)

    async def _interrupt(self, job: Job, if_status: str | None = None) -> None:
        stop(job, "interrupted")
        job.queue_position = None
        try:
            await self._reporter(job).publish("done", if_status=if_status)
        except StorageError:
            log.error("could not mark job %s interrupted: the store cannot save", job.id)

    def _reporter(self, job: Job) -> JobReporter:
        return JobReporter(self.store, job, budget=self.settings.max_tokens_per_job)

    # Actions

    async def submit(self, topic: str, client: str, options: Options | None = None) -> Job:
        await self._admit(client)
        job = await self.store.create(topic, client, (options or Options()).to_record())
        await self._dispatch(job)
        return job

    async def _admit(self, client: str) -> None:
        """Refuse a client that already has as many jobs waiting or running as it may, or that
        has started (or resumed) as many as it may in the last minute."""
        if await self.store.count_active(client) >= self.settings.max_waiting_per_client:
            raise TooManyJobs(
                f"You already have {self.settings.max_waiting_per_client} articles waiting or "
                "being written. Please wait for some of them to finish."
            )
        if not self._starts.hit(self._per_minute, client):
            raise TooManyJobs(
                f"You have started {self.settings.jobs_per_minute} articles in the last minute. "
                "Please wait a minute before starting another."
            )

    async def cancel(self, job: Job) -> Job:
        if job.is_final:
            state = "waiting for its outline to be reviewed" if job.status == "review" else (
                f"already {job.status}")  # fmt: skip
            raise JobStateError(f"This article is {state}; there is nothing to cancel.")
        task = self.tasks.get(job.id)
        if task is None and self.shared is not None:
            return await self._cancel_shared(job)
        if task is None:  # not running here (its end was never saved): never leave it stuck
            job.status = "cancelled"
            await self._reporter(job).publish("done")
            return job
        task.cancel()
        await asyncio.wait([task])
        current = await self.store.get(job.id)
        if current is not None and not current.is_final:  # it stopped, but that was not saved
            raise StorageError()
        return current or job

    async def resume(self, job: Job, client: str) -> Job:
        """Continue from the first unfinished step; the outline and finished sections are kept.
        From now on the job counts against `client`, who resumed it, not whoever started it."""
        if job.status not in RESUMABLE:
            state = "still being written" if job.status in ("queued", "running") else "finished"
            raise JobStateError(f"This article is {state}; only stopped or failed ones can resume.")
        await self._admit(client)
        return await self._requeue(job, client)

    # Steering: what a person changes in a job that is waiting for review or finished

    async def write(self, job: Job, client: str) -> Job:
        """Write the sections of an outline in review, with its titles exactly as approved."""
        self._require(job, "review", "Only an outline waiting for review can be written.")
        await self._admit(client)
        return await self._requeue(job, client)

    async def set_outline(self, job: Job, titles: list[str]) -> Job:
        self._require(job, "review", "The outline can only be changed before it is written.")
        job.error = None
        reporter = self._reporter(job)
        reporter.set_outline(titles)
        await reporter.publish("done")  # a fresh snapshot for every viewer
        return job

    async def rewrite_outline(self, job: Job, instruction: str, client: str) -> Job:
        """Plan the outline again (following `instruction`, if any); it stops for review again."""
        self._require(job, "review", "The outline can only be planned again before it is written.")
        await self._admit(client)
        job.redo = {"what": "outline", "instruction": instruction}
        return await self._requeue(job, client)

    async def rewrite_section(self, job: Job, index: int, instruction: str, client: str) -> Job:
        """Write one section of a finished article again, then restyle the article from the
        sections as they now stand. No other section is written again."""
        self._require(job, "done", "Only a finished article's sections can be written again.")
        if not 0 <= index < len(job.sections):
            raise JobStateError(f"This article has no section {index + 1}.")
        await self._admit(client)
        # What the rewrite replaces (its section, then the restyled article) is kept until it
        # has finished, so a rewrite or restyle that fails leaves both as they were.
        kept = {"section": dict(job.sections[index]), "article": job.article}
        job.redo = {"what": "section", "index": index, "instruction": instruction, "kept": kept}
        job.sections[index]["before_version"] = await self._latest_version(job)
        return await self._requeue(job, client)

    async def restore_section(self, job: Job, index: int) -> Job:
        """Undo a section's rewrite: its previous text, and the article as it was before."""
        self._require(job, "done", "Wait for the article to finish before restoring a section.")
        section = job.sections[index] if 0 <= index < len(job.sections) else {}
        if "previous" not in section:
            raise JobStateError("This section has not been written again; there is nothing to "
                                "restore.")  # fmt: skip
        section["text"], section["previous"] = section["previous"], section["text"]
        before = section.get("before_version")
        versions = {v.n: v for v in await self.store.versions(job.id)}
        if before in versions:
            # Restoring again puts back the text and the article this restore replaces.
            section["before_version"] = max(versions)
            await self._set_article(job, versions[before].article, f"restored v{before}")
        else:
            await self._reporter(job).publish("done")
        return job

    async def edit_article(self, job: Job, article: str) -> Job:
        self._require(job, "done", "The article is being written; save your edit once it is done.")
        return await self._set_article(job, article, "edited")

    async def restore_version(self, job: Job, n: int) -> Job:
        self._require(job, "done", "The article is being written; restore it once it is done.")
        versions = {v.n: v for v in await self.store.versions(job.id)}
        if n not in versions:
            raise JobStateError(f"This article has no version {n}.")
        return await self._set_article(job, versions[n].article, f"restored v{n}")

    async def _set_article(self, job: Job, article: str, kind: str) -> Job:
        job.article, job.error = article, None
        await self.store.add_version(job.id, kind, article)
        await self._reporter(job).publish("done")  # a fresh snapshot for every viewer
        return job

    async def _latest_version(self, job: Job) -> int | None:
        versions = await self.store.versions(job.id)
        return versions[-1].n if versions else None

    def _require(self, job: Job, status: str, message: str) -> None:
        if job.status != status:
            raise JobStateError(message)

    async def _requeue(self, job: Job, client: str) -> Job:
        await self.store.discard_event(job.id, "done")
        job.status, job.error, job.client = "queued", None, client
        await self.store.save(job)  # before responding, so the redirected page is already live
        await self._dispatch(job)
        return job

    async def delete(self, job: Job) -> None:
        """Delete the job, then stop it if it runs; its viewers are told it is gone. Deleting
        comes first: if the store cannot (StorageError), the job goes on as it was."""
        await self.store.delete(job.id)
        task = self.tasks.get(job.id)
        if task is not None:  # no await since the delete: it has published nothing since
            self._deleting.add(job.id)
            task.cancel()
            await asyncio.wait([task])
            self._deleting.discard(job.id)
        elif self.shared is not None and await self.shared.abort(job.id, "deleted"):
            await self._renumber_shared()  # it waited, or runs in another process: it stops

    async def shutdown(self) -> None:
        """Stop every job; each ends `interrupted`, keeping what it finished. Idempotent."""
        self._stopping = True
        if self._watching is not None:
            self._watching.cancel()
        for task in list(self.tasks.values()):
            task.cancel()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)
        if self.shared is not None:
            await self.shared.close()
            self.shared = None

    # Running

    async def _dispatch(self, job: Job) -> None:
        """Send the job to wait for a slot: this process's, or any process's on the shared
        queue."""
        if self.shared is None:
            self._start(job)
            return
        await self.shared.enqueue(job.id)
        await self._renumber_shared()

    def _start(self, job: Job) -> asyncio.Task:
        task = asyncio.create_task(self._run(job), name=f"job-{job.id}")
        self.tasks[job.id] = task
        task.add_done_callback(lambda _: self.tasks.pop(job.id, None))
        return task

    async def _run(self, job: Job) -> None:
        reporter = self._reporter(job)
        try:
            async with self._slot(job):
                job.status = "running"
                await reporter.publish("job")
                async with asyncio.timeout(self.settings.job_deadline):
                    ended = await self._flow(job, reporter)
                job.status = "review" if ended == "review" else "done"
                job.step = job.redo = job.error = None
        except asyncio.CancelledError:
            stopped = "interrupted" if self._stopping else "cancelled"
            log.info("job %s %s", job.id, stopped)
            stop(job, stopped)
            raise
        except Exception as exc:
            stop(job, "failed", self._failure(job, exc))
        finally:
            job.queue_position = None
            if job.id in self._deleting:
                reporter.ended = True
            else:
                try:  # viewers get it even if it cannot be saved
                    await reporter.publish("done")
                except StorageError:
                    await self._log_unsaved_end(job)

    def _failure(self, job: Job, exc: Exception) -> str:
        """What a person reads about why the job failed."""
        if isinstance(exc, TimeoutError):
            deadline = self.settings.job_deadline
            return f"The article took longer than {deadline:g} s (DRAFTLINE_JOB_DEADLINE)."
        if isinstance(exc, OverBudget):  # counted now: sections still writing added theirs
            return str(OverBudget(sum(job.tokens.values()), exc.budget))
        if isinstance(exc, LLMError):
            return str(exc)
        if isinstance(exc, OutlineError):
            return "The model did not return a usable outline, even after retrying."
        if isinstance(exc, StorageError):  # the store logged why
            return NOT_SAVED
        log.error("job %s crashed", job.id, exc_info=exc)
        return "Something went wrong on our side; see the server log."

    async def _log_unsaved_end(self, job: Job) -> None:
        with contextlib.suppress(StorageError):
            if await self.store.get(job.id) is None:  # deleted, by another process
                log.info("job %s was deleted while it ran", job.id)
                return
        log.error("job %s ended %s, which could not be saved", job.id, job.status)

    @contextlib.asynccontextmanager
    async def _slot(self, job: Job) -> AsyncIterator[None]:
        """One of this process's slots for the job. On the shared queue, the queue gave it."""
        if self.shared is not None:
            yield
            return
        await self._wait_for_slot(job)
        try:
            yield
        finally:
            self._slots.release()

    async def _wait_for_slot(self, job: Job) -> None:
        if not self._slots.locked():
            await self._slots.acquire()
            return
        self._queue.append(job)
        await self._renumber_queue()
        try:
            await self._slots.acquire()
        finally:
            self._queue.remove(job)
            job.queue_position = None
            await self._renumber_queue()

    async def _renumber_queue(self) -> None:
        for position, waiting in enumerate(self._queue, 1):
            if waiting.queue_position != position:
                waiting.queue_position = position
                with contextlib.suppress(StorageError):  # a place in line: viewers still see it
                    await self._reporter(waiting).publish("job")

    # Sharing a queue with other processes (Redis)

    async def _run_shared(self, job_id: str) -> None:
        """The shared queue gave this process the job: run it in one of its slots. Cancelled
        from outside (aborted through the queue: cancelled or deleted in another process, or
        this one is stopping), it stops the job and lets the cancellation through."""
        if self._stopping:
            raise asyncio.CancelledError  # back in line, for another process
        job = await self.store.get(job_id)
        if job is None or job.status != "queued":
            return  # deleted, cancelled or interrupted while it waited
        log.info("job %s running here", job.id)
        task = self._start(job)
        await self._renumber_shared()
        try:
            await asyncio.wait([task])
        except asyncio.CancelledError:
            task.cancel()
            await asyncio.wait([task])
            raise

    async def _cancel_shared(self, job: Job) -> Job:
        """Cancel a job that is not running here: still in line, or running in another
        process, which stops it (within SharedQueue.ABORT_EVERY) and says so."""
        was = await self.shared.abort(job.id, "cancelled")
        current = await self.store.get(job.id)
        if was == "active":
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(REMOTE_STOP_WAIT):
                    while current is not None and not current.is_final:
                        await self.store.wait_for_events(job.id, current.last_seq)
                        current = await self.store.get(job.id)
        if current is None:
            raise JobStateError("This article has been deleted.")
        if not current.is_final:  # it was in line, or its process did not answer
            current.status, current.queue_position = "cancelled", None
            await self._reporter(current).publish("done")
        if was == "queued":
            await self._renumber_shared()
        return current

    async def _renumber_shared(self) -> None:
        """Each job in line shows its place, the same from every process. A place is saved
        only while the job still waits, so a job another process has just started keeps its
        status; two processes renumbering at once both write what the line says."""
        for position, job_id in enumerate(await self.shared.waiting(), 1):
            job = await self.store.get(job_id)
            if job is None or job.status != "queued" or job.queue_position == position:
                continue
            job.queue_position = position
            with contextlib.suppress(StorageError):  # a place in line: viewers still see it
                await self._reporter(job).publish("job", if_status="queued")

    async def _watch_for_lost_jobs(self) -> None:
        while True:
            await asyncio.sleep(LOST_CHECK_EVERY)
            try:
                await self.interrupt_lost()
            except StorageError:
                pass  # the store logged it; look again later
            except Exception:  # without this task, a dead process's jobs would never end
                log.exception("could not look for jobs whose process died")

    async def interrupt_lost(self) -> None:
        """A job the store has queued or running that is neither in line nor running in a
        live process lost its process (the shared queue swept it after its heartbeats
        stopped): it ends `interrupted`, keeping every finished part, ready to resume."""
        unfinished = await self.store.with_status(("queued", "running"))
        if not unfinished:
            return
        in_flight = await self.shared.in_flight()
        quiet_since = time.time() - LOST_AFTER
        for job in unfinished:
            if job.id in in_flight or job.id in self.tasks or job.updated_at > quiet_since:
                continue
            log.warning("job %s lost its process; it is interrupted", job.id)
            await self._interrupt(job, if_status=job.status)

    async def _flow(self, job: Job, reporter: JobReporter) -> str | None:
        """Run the job's flow; returns its last action ("review" when it stopped for review)."""
        # The job is read by the nodes and changed only through the reporter (docs/design.md).
        shared = {"job": job, "report": reporter, "llm": self.llm}
        make = create_section_flow if job.redo and job.redo["what"] == "section" else (
            create_article_flow)  # fmt: skip
        flow = make(
            concurrency=self.settings.section_concurrency,
            retries=self.settings.llm_retries,
            wait=self.settings.llm_retry_wait,
        )
        return await flow.run_async(shared)
