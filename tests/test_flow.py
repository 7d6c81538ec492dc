"""The PocketFlow nodes, with the shared store's `llm` stubbed (end-to-end tests use the wire)."""

from __future__ import annotations

import asyncio
import logging

import pocketflow
import pytest

from draftline import llm, pocketflow_nodes
from draftline.brief import Options
from draftline.outline import fallback_outline
from draftline.pocketflow_nodes import RetryingNode, create_article_flow
from tests.reporting import shared_for

pytestmark = pytest.mark.anyio


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


async def test_flow_writes_outline_sections_and_styled_article(stub):
    shared = await shared_for(stub)
    await create_article_flow(retries=1).run_async(shared)
    job = shared["job"]
    assert job.outline == ["One", "Two", "Three"]
    assert [s["text"] for s in job.sections] == ["Hello there."] * 3
    assert job.article == "Hello there."
    assert set(shared) == {"job", "report", "llm"}  # nodes write no copies of the job's facts
    report = shared["report"]
    assert report.steps == ["outline", "sections", "style"]
    assert report.sections[0][-1] == ("Hello there.", True)
    assert ("Hello ", False) in report.sections[0]  # streamed before it was done
    assert report.articles[-1] == ("Hello there.", True)


async def test_the_reporter_is_the_one_writer_and_events_carry_facts(stub):
    shared = await shared_for(stub)
    await create_article_flow(retries=1).run_async(shared)
    store, job = shared["report"].store, shared["job"]
    assert (await store.get(job.id)).to_record() == job.to_record()  # nothing written elsewhere
    events = await store.events_after(job.id, 0)
    assert {e.key for e in events} >= {"job", "outline", "section:0", "section:2", "article"}
    assert not any("<" in e.data for e in events)  # facts as JSON; HTML is drawn where served


async def test_section_concurrency_is_bounded(stub):
    stub.outline, stub.delay = "- A\n- B\n- C\n- D\n- E", 0.01
    await create_article_flow(concurrency=2, retries=1).run_async(await shared_for(stub))
    assert stub.max_running == 2


async def test_resume_pays_for_neither_the_outline_nor_finished_sections(stub):
    sections = [{"title": "One", "text": "kept", "done": True}, {"title": "Two", "text": "half", "done": False}]
    shared = await shared_for(stub, outline=["One", "Two"], sections=sections)
    await create_article_flow(retries=1).run_async(shared)
    assert stub.calls == ["section", "style"]
    assert [s["text"] for s in shared["job"].sections] == ["kept", "Hello there."]


# Retries (tenacity, inside exec_async)

BUSY = llm.LLMError("The LLM provider had an internal error (500).", transient=True)


@pytest.fixture
def waits(monkeypatch) -> list[float]:
    """The backoffs the flow waited, recorded instead of slept."""
    waited: list[float] = []

    async def sleep(seconds: float) -> None:
        waited.append(seconds)

    monkeypatch.setattr(RetryingNode, "sleep", staticmethod(sleep))
    return waited


async def test_transient_errors_are_retried_with_exponential_backoff(stub, waits):
    stub.failures = [BUSY, BUSY]
    shared = await shared_for(stub)
    await create_article_flow(retries=3, wait=1.0).run_async(shared)
    assert stub.calls.count("outline") == 3 and shared["job"].article == "Hello there."
    assert len(waits) == 2
    assert 1.0 <= waits[0] <= 1.5 and 2.0 <= waits[1] <= 2.5  # doubled, plus some jitter


async def test_a_step_fails_with_its_last_error_after_the_attempts_allowed(stub, waits):
    stub.failures = [BUSY, BUSY, llm.LLMError("still busy", transient=True)]
    with pytest.raises(llm.LLMError, match="still busy"):
        await create_article_flow(retries=3, wait=1.0).run_async(await shared_for(stub))
    assert stub.calls == ["outline"] * 3 and len(waits) == 2


async def test_permanent_errors_are_not_retried(stub, waits):
    stub.failures = [llm.LLMError("bad key", transient=False)]
    with pytest.raises(llm.LLMError, match="bad key"):
        await create_article_flow(retries=3, wait=1.0).run_async(await shared_for(stub))
    assert stub.calls == ["outline"] and waits == []


async def test_retry_after_is_the_wait_up_to_a_minute_and_retries_are_logged(stub, waits, caplog):
    stub.failures = [llm.LLMError("slow down", transient=True, retry_after=2.5)]
    with caplog.at_level(logging.WARNING, logger="draftline.flow"):
        await create_article_flow(retries=3, wait=1.0).run_async(await shared_for(stub))
    assert waits == [2.5]
    assert caplog.messages == ["GenerateOutline: slow down; retrying in 2.5 s (attempt 2 of 3)"]

    stub.failures = [llm.LLMError("slow down", transient=True, retry_after=3600)]
    await create_article_flow(retries=3, wait=1.0).run_async(await shared_for(stub))
    assert waits == [2.5, 60.0]


async def test_a_failed_section_is_written_again_alone(stub, monkeypatch, waits):
    stub.delay = 0.01
    write, cut = stub.stream, []

    async def stream(messages, max_tokens, **extra):
        async for piece in write(messages, max_tokens, **extra):
            yield piece
        if '"Two"' in messages[-1]["content"] and not cut:  # the connection drops at its end
            cut.append(True)
            raise llm.LLMError("Lost the connection to the LLM.", transient=True)

    monkeypatch.setattr(stub, "stream", stream)
    shared = await shared_for(stub)
    await create_article_flow(retries=3, wait=1.0).run_async(shared)
    assert stub.calls.count("section") == 4  # three sections, and the second one again
    starts = {i: updates.count(("", False)) for i, updates in shared["report"].sections.items()}
    assert starts == {0: 1, 1: 2, 2: 1}  # each try starts from empty
    assert [s["text"] for s in shared["job"].sections] == ["Hello there."] * 3
    assert len(waits) == 1


async def test_a_small_models_outline_falls_back_after_the_last_attempt(stub, monkeypatch, waits):
    """PocketFlow's exec_fallback_async still gets the last failure, after every retry."""
    stub.backend = llm.Backend("local", "tiny", "http://127.0.0.1:9/v1", True, small=True)
    stub.outline = "The tide is a fascinating topic that has captivated people."
    shared = await shared_for(stub)
    await create_article_flow(retries=3, wait=1.0).run_async(shared)
    assert stub.calls.count("outline") == 3 and len(waits) == 2
    assert shared["job"].outline == fallback_outline("Tides", 3)


async def test_a_cancelled_call_is_neither_retried_nor_swallowed(stub, monkeypatch):
    asked, answer = asyncio.Event(), stub.complete

    async def hang_once(messages, max_tokens, **extra):
        if not asked.is_set():
            asked.set()
            await asyncio.Event().wait()  # cancelled here
        return await answer(messages, max_tokens, **extra)  # a retry would finish the job

    monkeypatch.setattr(stub, "complete", hang_once)
    shared = await shared_for(stub)
    task = asyncio.create_task(create_article_flow(retries=3, wait=0).run_async(shared))
    await asked.wait()
    task.cancel()
    await asyncio.wait([task], timeout=5)
    assert task.cancelled() and stub.calls == []


async def test_cancelling_during_a_backoff_stops_at_once(stub):
    stub.failures = [BUSY]
    shared = await shared_for(stub)
    task = asyncio.create_task(create_article_flow(retries=3, wait=30).run_async(shared))
    while not stub.calls:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)  # now in the 30 s backoff
    task.cancel()
    await asyncio.wait([task], timeout=1)
    assert task.cancelled() and stub.calls == ["outline"]


def test_nodes_keep_pocketflows_own_retry_loop_and_private_methods():
    """Retrying lives in exec_async: PocketFlow's _exec, _run_async... run as it wrote them."""
    classes = [cls for cls in vars(pocketflow).values() if isinstance(cls, type)]
    private = {name for cls in classes for name in vars(cls) if name.startswith("_")}
    private -= {name for name in private if name.endswith("__")}
    assert "_exec" in private and "_run_async" in private
    node = create_article_flow(retries=5).start_node
    while node is not None:
        assert private.isdisjoint(vars(type(node))) and private.isdisjoint(vars(RetryingNode))
        assert (node.max_retries, node.attempts) == (1, 5), type(node).__name__
        node = node.successors.get("default")


def test_exec_never_touches_the_shared_store():
    """PocketFlow's contract: exec gets only what prep returned, so a retried exec is safe."""
    import inspect

    for node in (pocketflow_nodes.GenerateOutline, pocketflow_nodes.WriteSections, pocketflow_nodes.ApplyStyle):
        assert "shared" not in inspect.getsource(node.exec_async)


# Steering: review, one section again, options in the prompts


async def test_with_review_the_flow_stops_after_the_outline(stub):
    shared = await shared_for(stub, options={"review_outline": True})
    assert await create_article_flow(retries=1).run_async(shared) == "review"
    assert shared["job"].outline == ["One", "Two", "Three"] and stub.calls == ["outline"]
    # Approved: the same flow goes on from the outline, which is not planned again.
    assert await create_article_flow(retries=1).run_async(shared) != "review"
    assert stub.calls == ["outline", "section", "section", "section", "style"]


async def test_planning_again_follows_the_instruction(stub):
    prompts = []
    complete = stub.complete

    async def remember(messages, max_tokens, **extra):
        prompts.append(messages[-1]["content"])
        return await complete(messages, max_tokens, **extra)

    stub.complete = remember
    shared = await shared_for(stub, outline=["Old"], options={"review_outline": True},
                              redo={"what": "outline", "instruction": "more practical"})  # fmt: skip
    assert await create_article_flow(retries=1).run_async(shared) == "review"
    assert shared["job"].outline == ["One", "Two", "Three"]
    assert "What the author asks of this outline: more practical" in prompts[0]


async def test_one_section_is_written_again_and_the_article_restyled(stub):
    sections = [{"title": t, "text": f"{t} text.", "done": True} for t in ("One", "Two")]
    shared = await shared_for(stub, outline=["One", "Two"], sections=sections, status="done",
                              redo={"what": "section", "index": 1, "instruction": "shorter"})  # fmt: skip
    await pocketflow_nodes.create_section_flow(retries=1).run_async(shared)
    job = shared["job"]
    assert stub.calls == ["section", "style"]
    assert job.sections[0] == sections[0]  # untouched
    assert job.sections[1]["text"] == "Hello there." and job.sections[1]["previous"] == "Two text."
    assert "rewrite" not in job.sections[1] and job.sections[1]["instruction"] == "shorter"
    assert job.article == "Hello there."
    store = shared["report"].store
    assert [v.kind for v in await store.versions(job.id)] == ["section 2 rewritten"]


def test_options_reach_the_prompts():
    options = Options(length="short", tone="formal", audience="nurses", language="French")
    outline = pocketflow_nodes.outline_prompt("Tides", 3, options)[-1]["content"]
    section = pocketflow_nodes.section_prompt("Tides", ["A"], "A", options=options)[-1]["content"]
    style = pocketflow_nodes.style_prompt("# Tides", options)[-1]["content"]
    for prompt in (outline, section, style):
        assert "Write for this audience: nurses." in prompt and "Write in French." in prompt
    assert "one or two short paragraphs" in section and "formal, precise tone" in style


def test_default_options_keep_the_prompts_as_they_were():
    section = pocketflow_nodes.section_prompt("Tides", ["A"], "A")[-1]["content"]
    style = pocketflow_nodes.style_prompt("# Tides")[-1]["content"]
    assert section.endswith('Write the section titled "A": two or three short paragraphs of '
                           "Markdown, without a heading.")  # fmt: skip
    assert style.startswith("Rewrite this draft in a warm, conversational tone.")


def test_the_length_sets_how_much_is_asked_for():
    full = llm.Backend("openai", "gpt", "https://example.invalid/v1", True)
    small = llm.Backend("local", "tiny", "http://127.0.0.1:9/v1", True, small=True)
    medium = pocketflow_nodes.sizes(full, Options())
    assert medium == pocketflow_nodes.FULL  # as before options existed
    long = pocketflow_nodes.sizes(full, Options(length="long"))
    assert long.sections == 7 and long.section_tokens > medium.section_tokens
    assert pocketflow_nodes.sizes(small, Options(length="short")).sections == 2
    assert pocketflow_nodes.sizes(small, Options()) == pocketflow_nodes.SMALL
