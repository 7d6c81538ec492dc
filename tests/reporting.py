"""The flow outside the web app, for unit tests and benches: a real job and its real reporter
(runner.JobReporter, on an in-memory SQLite store) that also remembers what it was told."""

from __future__ import annotations

import time

from draftline.jobs import Job
from draftline.runner import JobReporter
from draftline.store.sqlite import SQLiteJobStore


class Recorder(JobReporter):
    """runner.JobReporter, the flow's one writer, keeping a log of every report."""

    def __init__(self, store: SQLiteJobStore, job: Job):
        super().__init__(store, job)
        self.steps: list[str] = []
        self.step_began: dict[str, float] = {}  # when each step began (time.monotonic)
        self.titles: list[str] | None = None
        self.sections: dict[int, list[tuple[str, bool]]] = {}
        self.articles: list[tuple[str, bool]] = []

    @property
    def latest(self) -> str:
        return self.steps[-1] if self.steps else ""

    async def step(self, name: str) -> None:
        self.steps.append(name)
        self.step_began[name] = time.monotonic()
        await super().step(name)

    async def outline(self, titles: list[str]) -> None:
        self.titles = titles
        await super().outline(titles)

    async def section(self, index: int, text: str, done: bool) -> None:
        self.sections.setdefault(index, []).append((text, done))
        await super().section(index, text, done)

    async def article(self, text: str, done: bool) -> None:
        self.articles.append((text, done))
        await super().article(text, done)


async def shared_for(model, topic: str = "Tides", reporter: type[Recorder] = Recorder,
                     budget: int | None = None, **facts) -> dict:  # fmt: skip
    """A flow's shared store for a new job about `topic` (with `facts` already known, as when a
    job resumes): the job, the reporter through which the flow changes it (with a token
    `budget`, as DRAFTLINE_MAX_TOKENS_PER_JOB gives), and `model` (an llm.LLM, or a stand-in
    with its backend, complete() and stream())."""
    store = SQLiteJobStore(":memory:")
    job = await store.create(topic)
    for name, value in facts.items():
        setattr(job, name, value)
    await store.save(job)
    report = reporter(store, job)
    report.budget = budget  # as the runner sets it from DRAFTLINE_MAX_TOKENS_PER_JOB
    return {"job": job, "report": report, "llm": model}
