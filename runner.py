"""Runs each job's flow as an asyncio task and publishes what happens.

This is the one place that turns an exception into a state a person can see, and every job,
however it ends, publishes a final `done` event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from . import views
from .config import Settings
from .jobs import Job, SQLiteJobStore, StorageError
from .llm import LLM, LLMError
from .outline import OutlineError
from .pocketflow_nodes import create_article_flow

log = logging.getLogger("draftline.runner")

# Streaming text is published at most this often per section (a few updates a second).
STREAM_INTERVAL = 0.25
RESUMABLE = frozenset({"failed", "cancelled", "interrupted"})
NOT_SAVED = (
    "Draftline could not save this article: its disk is full or read-only. What was saved is "
    "kept; free some space, then press Retry."
)


class JobStateError(Exception):
    """An action that does not fit the job's state (cancel a finished job, resume a running one)."""


class TooManyJobs(Exception):
    """A client already has as many jobs waiting as it may."""


class JobEnded(Exception):
    """Raised into what is left of a flow after its job ended: a section still being written
    when another one failed stops at its next report, and publishes nothing after `done`."""


class JobReporter:
    """The flow's `report` callback: applies each report to the job and publishes it."""

    def __init__(self, store: SQLiteJobStore, job: Job):
        self.store = store
        self.job = job
        self.ended = False
        self._last_sent: dict[str, float] = {}

    def publish(self, key: str) -> None:
        if self.ended:
            raise JobEnded(self.job.id)
        self.ended = key == "done"
        self._last_sent[key] = time.monotonic()
        self.store.publish(self.job, key, key if key == "done" else "update",
                           views.render_key(self.job, key))  # fmt: skip

    def step(self, name: str) -> None:
        self.job.step = name
        self.publish("job")

    def outline(self, titles: list[str]) -> None:
        self.job.outline = titles
        self.job.sections = [{"title": t, "text": "", "done": False} for t in titles]
        self.publish("outline")

    def section(self, index: int, text: str, done: bool) -> None:
        self.job.sections[index].update(text=text, done=done)
        self._publish_streaming(f"section:{index}", done)
        if done:  # a finished section moves the progress bar and the status line
            self.publish("job")

    def article(self, text: str, done: bool) -> None:
        self.job.article = text
        self._publish_streaming("article", done)

    def _publish_streaming(self, key: str, done: bool) -> None:
        if done or time.monotonic() - self._last_sent.get(key, 0.0) >= STREAM_INTERVAL:
            self.publish(key)


class JobRunner:
    def __init__(self, store: SQLiteJobStore, settings: Settings, llm: LLM):
        self.store = store
        self.settings = settings
        self.llm = llm  # the flow's, in its shared store
        self.tasks: dict[str, asyncio.Task] = {}
        self._slots = asyncio.Semaphore(settings.max_running_jobs)
        self._queue: list[Job] = []  # waiting for a slot, first in line first
        self._deleting: set[str] = set()  # stopped for deletion: nothing more to publish
        self._stopping = False
        # Starts per client in the last minute: a moving window, so a burst may use them all.
        self._starts = MovingWindowRateLimiter(MemoryStorage())
        self._per_minute = RateLimitItemPerMinute(settings.jobs_per_minute)

    def interrupt_unfinished(self) -> None:
        """At start-up: a job the previous process left queued or running is not running now."""
        for job in self.store.with_status(("queued", "running")):
            job.status, job.queue_position = "interrupted", None
            try:
                JobReporter(self.store, job).publish("done")
            except StorageError:
                log.error("could not mark job %s interrupted: the store cannot save", job.id)

    # Actions

    def submit(self, topic: str, client: str) -> Job:
        self._admit(client)
        job = self.store.create(topic, client)
        self._start(job)
        return job

    def _admit(self, client: str) -> None:
        """Refuse a client that already has as many jobs waiting or running as it may, or that
        has started (or resumed) as many as it may in the last minute."""
        if self.store.count_active(client) >= self.settings.max_waiting_per_client:
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
            raise JobStateError(f"This article is already {job.status}; there is nothing to cancel.")
        task = self.tasks.get(job.id)
        if task is None:  # not running here (its end was never saved): never leave it stuck
            job.status = "cancelled"
            JobReporter(self.store, job).publish("done")
            return job
        task.cancel()
        await asyncio.wait([task])
        current = self.store.get(job.id)
        if current is not None and not current.is_final:  # it stopped, but that was not saved
            raise StorageError()
        return current or job

    def resume(self, job: Job, client: str) -> Job:
        """Continue from the first unfinished step; the outline and finished sections are kept.
        From now on the job counts against `client`, who resumed it, not whoever started it."""
        if job.status not in RESUMABLE:
            state = "still being written" if job.status in ("queued", "running") else "finished"
            raise JobStateError(f"This article is {state}; only stopped or failed ones can resume.")
        self._admit(client)
        self.store.discard_event(job.id, "done")
        job.status, job.error, job.client = "queued", None, client
        self.store.save(job)  # before responding, so the redirected page is already live
        self._start(job)
        return job

    async def delete(self, job: Job) -> None:
        """Delete the job, then stop it if it runs; its viewers are told it is gone. Deleting
        comes first: if the store cannot (StorageError), the job goes on as it was."""
        self.store.delete(job.id)
        task = self.tasks.get(job.id)
        if task is not None:  # no await since the delete: it has published nothing since
            self._deleting.add(job.id)
            task.cancel()
            await asyncio.wait([task])
            self._deleting.discard(job.id)

    async def shutdown(self) -> None:
        """Stop every job; each ends `interrupted`, keeping what it finished. Idempotent."""
        self._stopping = True
        for task in list(self.tasks.values()):
            task.cancel()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)

    # Running

    def _start(self, job: Job) -> None:
        task = asyncio.create_task(self._run(job), name=f"job-{job.id}")
        self.tasks[job.id] = task
        task.add_done_callback(lambda _: self.tasks.pop(job.id, None))

    async def _run(self, job: Job) -> None:
        reporter = JobReporter(self.store, job)
        try:
            await self._wait_for_slot(job)
            try:
                job.status = "running"
                reporter.publish("job")
                async with asyncio.timeout(self.settings.job_deadline):
                    await self._flow(job, reporter)
                job.status, job.step = "done", None
            finally:
                self._slots.release()
        except asyncio.CancelledError:
            job.status = "interrupted" if self._stopping else "cancelled"
            log.info("job %s %s", job.id, job.status)
            raise
        except TimeoutError:
            job.status = "failed"
            job.error = (
                f"The article took longer than {self.settings.job_deadline:g} s "
                "(DRAFTLINE_JOB_DEADLINE)."
            )
        except LLMError as exc:
            job.status, job.error = "failed", str(exc)
        except OutlineError:
            job.status = "failed"
            job.error = "The model did not return a usable outline, even after retrying."
        except StorageError:  # the store logged why
            job.status, job.error = "failed", NOT_SAVED
        except Exception:
            log.exception("job %s crashed", job.id)
            job.status, job.error = "failed", "Something went wrong on our side; see the server log."
        finally:
            job.queue_position = None
            if job.id in self._deleting:
                reporter.ended = True
            else:
                try:  # viewers get it even if it cannot be saved
                    reporter.publish("done")
                except StorageError:
                    log.error("job %s ended %s, which could not be saved", job.id, job.status)

    async def _wait_for_slot(self, job: Job) -> None:
        if not self._slots.locked():
            await self._slots.acquire()
            return
        self._queue.append(job)
        self._renumber_queue()
        try:
            await self._slots.acquire()
        finally:
            self._queue.remove(job)
            job.queue_position = None
            self._renumber_queue()

    def _renumber_queue(self) -> None:
        for position, waiting in enumerate(self._queue, 1):
            if waiting.queue_position != position:
                waiting.queue_position = position
                with contextlib.suppress(StorageError):  # a place in line: viewers still see it
                    JobReporter(self.store, waiting).publish("job")

    async def _flow(self, job: Job, reporter: JobReporter) -> None:
        shared = {
            "topic": job.topic,
            "outline": job.outline,
            "sections": [dict(s) for s in job.sections],
            "article": "",
            "report": reporter,
            "llm": self.llm,
        }
        flow = create_article_flow(
            concurrency=self.settings.section_concurrency,
            retries=self.settings.llm_retries,
            wait=self.settings.llm_retry_wait,
        )
        await flow.run_async(shared)

