"""The PocketFlow nodes, with the shared store's `llm` stubbed (end-to-end tests use the wire)."""

from __future__ import annotations

import asyncio

import pytest

from draftline import llm, pocketflow_nodes
from draftline.pocketflow_nodes import backoff, create_article_flow

pytestmark = pytest.mark.anyio


class Recorder:
    """A Reporter that remembers what it was told."""

    def __init__(self):
        self.steps: list[str] = []
        self.sections: dict[int, list[tuple[str, bool]]] = {}
        self.articles: list[tuple[str, bool]] = []

    def step(self, name):
        self.steps.append(name)

    def outline(self, titles):
        self.titles = titles

    def section(self, index, text, done):
        self.sections.setdefault(index, []).append((text, done))

    def article(self, text, done):
        self.articles.append((text, done))


class StubLLM:
    """What the flow uses of an llm.LLM: its backend, complete() and stream()."""

    backend = llm.Backend("openai", "gpt", "https://example.invalid/v1", True)

    def __init__(self, outline="- One\n- Two\n- Three", delay=0.0, failures=()):
        self.outline, self.delay, self.failures = outline, delay, list(failures)
        self.calls: list[str] = []
        self.running = self.max_running = 0

    async def complete(self, messages, max_tokens, **extra):
        self.calls.append("outline")
        self._maybe_fail()
        return llm.Reply(self.outline)

    async def stream(self, messages, max_tokens, **extra):
        kind = "style" if "editor" in messages[0]["content"] else "section"
        self.calls.append(kind)
        self._maybe_fail()
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        try:
            for word in ("Hello ", "there."):
                await asyncio.sleep(self.delay)
                yield word
        finally:
            self.running -= 1

    def _maybe_fail(self):
        if self.failures:
            raise self.failures.pop(0)


@pytest.fixture
def stub():
    return StubLLM()


def shared_for(model, topic="Tides", **state):
    return {"topic": topic, "outline": None, "sections": [], "article": "", "report": Recorder(),
            "llm": model, **state}  # fmt: skip


async def test_flow_writes_outline_sections_and_styled_article(stub):
    shared = shared_for(stub)
    await create_article_flow(retries=1).run_async(shared)
    assert shared["outline"] == ["One", "Two", "Three"]
    assert [s["text"] for s in shared["sections"]] == ["Hello there."] * 3
    assert shared["article"] == "Hello there."
    report = shared["report"]
    assert report.steps == ["outline", "sections", "style"]
    assert report.sections[0][-1] == ("Hello there.", True)
    assert ("Hello ", False) in report.sections[0]  # streamed before it was done
    assert report.articles[-1] == ("Hello there.", True)


async def test_section_concurrency_is_bounded(stub):
    stub.outline, stub.delay = "- A\n- B\n- C\n- D\n- E", 0.01
    await create_article_flow(concurrency=2, retries=1).run_async(shared_for(stub))
    assert stub.max_running == 2


async def test_resume_pays_for_neither_the_outline_nor_finished_sections(stub):
    sections = [{"title": "One", "text": "kept", "done": True}, {"title": "Two", "text": "half", "done": False}]
    shared = shared_for(stub, outline=["One", "Two"], sections=sections)
    await create_article_flow(retries=1).run_async(shared)
    assert stub.calls == ["section", "style"]
    assert [s["text"] for s in shared["sections"]] == ["kept", "Hello there."]


async def test_transient_errors_are_retried_and_permanent_ones_are_not(stub):
    stub.failures = [llm.LLMError("busy", transient=True)]
    shared = shared_for(stub)
    await create_article_flow(retries=2, wait=0).run_async(shared)
    assert stub.calls.count("outline") == 2 and shared["article"]

    stub.calls.clear()
    stub.failures = [llm.LLMError("bad key", transient=False)]
    with pytest.raises(llm.LLMError, match="bad key"):
        await create_article_flow(retries=3, wait=0).run_async(shared_for(stub))
    assert stub.calls == ["outline"]


def test_backoff_doubles_and_honours_retry_after():
    assert 0.75 <= backoff(0, 1.0) <= 1.25 and 3.0 <= backoff(2, 1.0) <= 5.0
    assert backoff(5, 1.0, retry_after=2.5) == 2.5
    assert backoff(0, 1.0, retry_after=999) == 60.0


def test_exec_never_touches_the_shared_store():
    """PocketFlow's contract: exec gets only what prep returned, so a retried exec is safe."""
    import inspect

    for node in (pocketflow_nodes.GenerateOutline, pocketflow_nodes.WriteSections, pocketflow_nodes.ApplyStyle):
        assert "shared" not in inspect.getsource(node.exec_async)
