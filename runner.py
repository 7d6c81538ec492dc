"""Runs each job's flow as an asyncio task and publishes what happens.

This is the one place that turns an exception into a state a person can see.
"""

from __future__ import annotations

import asyncio
import logging
import time

import views
from config import Settings
from jobs import Job, SQLiteJobStore
from llm import LLMError
from outline import OutlineError
from pocketflow_nodes import create_article_flow

log = logging.getLogger("draftline.runner")

# Streaming text is published at most this often per section (a few updates a second).
STREAM_INTERVAL = 0.25


class JobReporter:
    """The flow's `report` callback: applies each report to the job and publishes it."""

    def __init__(self, store: SQLiteJobStore, job: Job):
        self.store = store
        self.job = job
        self._last_sent: dict[str, float] = {}

    def publish(self, key: str) -> None:
        self._last_sent[key] = time.monotonic()
        self.store.publish(self.job, key, "update", views.render_key(self.job, key))

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

    def article(self, text: str, done: bool) -> None:
        self.job.article = text
        self._publish_streaming("article", done)

    def _publish_streaming(self, key: str, done: bool) -> None:
        if done or time.monotonic() - self._last_sent.get(key, 0.0) >= STREAM_INTERVAL:
            self.publish(key)


class JobRunner:
    def __init__(self, store: SQLiteJobStore, settings: Settings):
        self.store = store
        self.settings = settings
        self.tasks: dict[str, asyncio.Task] = {}
        self._slots = asyncio.Semaphore(settings.max_running_jobs)
        self._stopping = False

    def interrupt_unfinished(self) -> None:
        """At start-up: a job the previous process left queued or running is not running now."""
        for job in self.store.with_status(("queued", "running")):
            job.status = "interrupted"
            self.store.publish(job, "done", "done", views.render_key(job, "done"))

    def start(self, job: Job) -> None:
        task = asyncio.create_task(self._run(job), name=f"job-{job.id}")
        self.tasks[job.id] = task
        task.add_done_callback(lambda _: self.tasks.pop(job.id, None))

    async def _run(self, job: Job) -> None:
        reporter = JobReporter(self.store, job)
        try:
            async with self._slots:
                job.status = "running"
                reporter.publish("job")
                async with asyncio.timeout(self.settings.job_deadline):
                    await self._flow(job, reporter)
            job.status, job.step = "done", None
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
        except Exception:
            log.exception("job %s crashed", job.id)
            job.status, job.error = "failed", "Something went wrong on our side; see the server log."
        finally:
            reporter.publish("done")

    async def _flow(self, job: Job, reporter: JobReporter) -> None:
        shared = {
            "topic": job.topic,
            "outline": job.outline,
            "sections": [dict(s) for s in job.sections],
            "article": "",
            "report": reporter,
        }
        flow = create_article_flow(
            concurrency=self.settings.section_concurrency,
            retries=self.settings.llm_retries,
            wait=self.settings.llm_retry_wait,
        )
        await flow.run_async(shared)

    async def shutdown(self) -> None:
        """Stop every job; each ends `interrupted`, keeping what it finished."""
        self._stopping = True
        for task in list(self.tasks.values()):
            task.cancel()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)
