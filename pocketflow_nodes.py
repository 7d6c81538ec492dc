"""The article flow: GenerateOutline -> WriteSections -> ApplyStyle.

The shared store holds the job and its reporter. Nodes read the job in prep and change it only
through the reporter (the one writer of job state), which also tells the job's viewers; prep hands
the reporter to exec, so exec never touches the shared store and a retried exec is safe. See
docs/design.md for the shared store's shape.

A small model (llm.backend().small: the embedded SmolLM2-135M) gets the same flow in smaller
pieces: a grammar-constrained outline of three titles with a plain fallback, one short section at a
time from a one-instruction prompt, and a restyle per section, since asked to restyle a whole
article it writes a summary instead.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import tenacity
from pocketflow import AsyncFlow, AsyncNode, AsyncParallelBatchNode

from . import llm
from .outline import (
    OutlineError,
    fallback_outline,
    outline_grammar,
    parse_outline,
    strip_chatter,
    tidy_small_prose,
    trim_to_sentence,
)

log = logging.getLogger("draftline.flow")

OUTLINE_MAX_TOKENS = 300
SECTION_MAX_TOKENS = 700
STYLE_MAX_TOKENS = 3000


@dataclass(frozen=True)
class Sizes:
    """How much the flow asks of a model. Every call's max_tokens comes from here."""

    sections: int  # at most this many sections
    min_sections: int  # an outline with fewer distinct titles is retried
    outline_tokens: int
    section_tokens: int
    style_tokens: int  # the whole article; one section's worth for a small model
    small: bool  # one-instruction prompts, a restyle per section, a plain outline at worst
    # Where prose calls stop: a small model's sign-off ("Note: ...", "I hope this helps") is
    # never worth the tokens, and it does not repeat a paragraph after a blank line and a dash.
    prose_stop: tuple[str, ...] = ()


FULL = Sizes(sections=5, min_sections=1, outline_tokens=OUTLINE_MAX_TOKENS,
             section_tokens=SECTION_MAX_TOKENS, style_tokens=STYLE_MAX_TOKENS,
             small=False)  # fmt: skip
# About 1.5 s, 3 s and 3.5 s per call for SmolLM2-135M on 2 cores: some 20 s an article.
SMALL = Sizes(sections=3, min_sections=2, outline_tokens=160, section_tokens=200, style_tokens=240,
              small=True, prose_stop=("\nNote:", "\nI hope", "\nThis rewritten",
                                      "\nHere is the rewritten"))  # fmt: skip


def sizes(backend: llm.Backend | None = None) -> Sizes:
    return SMALL if (backend or llm.backend()).small else FULL


class Reporter(Protocol):
    """How the flow changes its job; implemented by runner.JobReporter."""

    async def step(self, name: str) -> None: ...
    async def outline(self, titles: list[str]) -> None: ...
    async def section(self, index: int, text: str, done: bool) -> None: ...
    async def article(self, text: str, done: bool) -> None: ...


MAX_WAIT = 60.0  # seconds: the longest backoff, and the most of a Retry-After we honour


class RetryingNode(AsyncNode):
    """A node whose `exec_async`, decorated with `@retried`, is tried again through tenacity
    when trying again may help (`worth_retrying`: a transient `LLMError`, an unreadable outline),
    `attempts` tries in all, after a backoff from `wait` or the provider's Retry-After.

    PocketFlow's own retry loop stays at its default single try (`max_retries=1`): retrying
    happens inside `exec_async`, so PocketFlow's `exec_fallback_async` still gets the last
    failure, and a batch node, whose `exec_async` handles one item, retries each item alone.
    This is the one retry layer: the openai client's own retries are off (llm.py).
    """

    sleep = staticmethod(asyncio.sleep)  # how a backoff waits; tests record the waits instead

    def __init__(self, attempts: int = 3, wait: float = 1.0):
        super().__init__()
        self.attempts = attempts
        self.backoff = backoff(wait)

    def retrying(self) -> tenacity.AsyncRetrying:
        """A new retry loop for one call: tenacity keeps a call's state in it, and sections
        are written concurrently. Cancellation is never retried: `worth_retrying` refuses it."""
        return tenacity.AsyncRetrying(
            retry=tenacity.retry_if_exception(worth_retrying),
            stop=tenacity.stop_after_attempt(self.attempts),
            wait=self.backoff,
            sleep=self.sleep,
            before_sleep=self.log_retry,
            reraise=True,  # the last failure itself, for exec_fallback_async and the runner
        )

    def log_retry(self, state: tenacity.RetryCallState) -> None:
        failure = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning("%s: %s; retrying in %.1f s (attempt %d of %d)", type(self).__name__,
                    failure, wait, state.attempt_number + 1, self.attempts)  # fmt: skip


Node = TypeVar("Node", bound=RetryingNode)
Result = TypeVar("Result")


def retried(
    exec_async: Callable[[Node, Any], Awaitable[Result]],
) -> Callable[[Node, Any], Awaitable[Result]]:
    """Run a RetryingNode's `exec_async` in the node's retry loop."""

    @functools.wraps(exec_async)
    async def exec_with_retries(self: Node, prep_res: Any) -> Result:
        return await self.retrying()(exec_async, self, prep_res)

    return exec_with_retries


def worth_retrying(exc: BaseException) -> bool:
    """Whether trying again may help: never for a cancellation or a bug, only for a transient
    LLM failure or a reply we could not read as an outline."""
    return isinstance(exc, OutlineError) or (isinstance(exc, llm.LLMError) and exc.transient)


def backoff(wait: float) -> Callable[[tenacity.RetryCallState], float]:
    """The wait before the next try: the provider's Retry-After if the failure carries one,
    else `wait` doubled at each try plus up to half of `wait` at random, so that sections
    that failed together do not all come back at once. Never more than MAX_WAIT."""
    exponential = tenacity.wait_exponential(multiplier=wait) + tenacity.wait_random(0, wait / 2)

    def before_next_try(state: tenacity.RetryCallState) -> float:
        failure = state.outcome.exception() if state.outcome else None
        retry_after = getattr(failure, "retry_after", None)
        return min(exponential(state) if retry_after is None else retry_after, MAX_WAIT)

    return before_next_try


class GenerateOutline(RetryingNode):
    async def prep_async(self, shared: dict) -> tuple[str, Reporter] | None:
        job = shared["job"]
        await shared["report"].step("outline")
        if job.outline:  # resuming: the outline is already paid for
            return None
        return job.topic, shared["report"]

    @retried
    async def exec_async(self, prep_res: tuple[str, Reporter] | None) -> list[str] | None:
        if prep_res is None:
            return None
        topic, _ = prep_res
        backend = llm.backend()
        size = sizes(backend)
        extra: dict[str, Any] = {}
        if backend.grammar:  # one spare line: the topic echoed back or a repeat is dropped
            extra["extra_body"] = {"grammar": outline_grammar(size.sections + 1)}
        prompt = outline_prompt(topic, size.sections)
        reply = await llm.complete(prompt, max_tokens=size.outline_tokens, **extra)
        return parse_outline(reply.text, size.sections, topic=topic, minimum=size.min_sections,
                             cut_short=reply.cut_short, small_model=size.small)  # fmt: skip

    async def exec_fallback_async(self, prep_res: tuple[str, Reporter] | None, exc: Exception):
        size = sizes()
        if prep_res is None or not isinstance(exc, OutlineError) or not size.small:
            raise exc
        topic, _ = prep_res
        log.warning("no usable outline from the model for %r; using a plain one", topic)
        return fallback_outline(topic, size.sections)

    async def post_async(self, shared: dict, prep_res: Any, titles: list[str] | None) -> None:
        if titles is not None:
            await shared["report"].outline(titles)


class WriteSections(AsyncParallelBatchNode, RetryingNode):
    """One LLM call per section, run concurrently up to `concurrency` at a time."""

    def __init__(self, attempts: int = 3, wait: float = 1.0, concurrency: int = 5):
        super().__init__(attempts=attempts, wait=wait)
        self.concurrency = concurrency

    async def prep_async(self, shared: dict) -> list[dict]:
        job = shared["job"]
        await shared["report"].step("sections")
        at_once = llm.backend().concurrency  # a one-at-a-time server: show one section writing
        limit = asyncio.Semaphore(min(self.concurrency, at_once) if at_once else self.concurrency)
        return [
            {
                "index": index,
                "title": section["title"],
                "topic": job.topic,
                "titles": list(job.outline),
                "report": shared["report"],
                "limit": limit,
            }
            for index, section in enumerate(job.sections)
            if not section["done"]  # resuming: finished sections are not written twice
        ]

    @retried  # one section: a failed section is written again alone
    async def exec_async(self, item: dict) -> tuple[int, str]:
        report: Reporter = item["report"]
        async with item["limit"]:
            text = ""
            await report.section(item["index"], text, done=False)
            size = sizes()
            prompt = section_prompt(item["topic"], item["titles"], item["title"], small=size.small)
            async for piece in llm.stream(prompt, max_tokens=size.section_tokens,
                                          **prose_options(size)):  # fmt: skip
                text += piece
                await report.section(item["index"], text, done=False)
            text = tidy(text, size)
            await report.section(item["index"], text, done=True)  # the section's one write
            return item["index"], text


class ApplyStyle(RetryingNode):
    async def prep_async(self, shared: dict) -> tuple[str, list[dict], Reporter]:
        job = shared["job"]
        await shared["report"].step("style")
        sections = [{"title": s["title"], "text": s["text"]} for s in job.sections]
        return job.topic, sections, shared["report"]

    @retried
    async def exec_async(self, prep_res: tuple[str, list[dict], Reporter]) -> str:
        topic, sections, report = prep_res
        size = sizes()
        await report.article("", done=False)
        if size.small:
            return await self._style_each_section(topic, sections, report, size)
        text = ""
        prompt = style_prompt(draft_markdown(topic, sections))
        async for piece in llm.stream(prompt, max_tokens=size.style_tokens):
            text += piece
            await report.article(text, done=False)
        return strip_chatter(text)

    async def _style_each_section(
        self, topic: str, sections: list[dict], report: Reporter, size: Sizes
    ) -> str:
        """A small model keeps an article's shape only if it sees one section at a time."""
        done = [f"# {topic}"]
        said: set[str] = set()  # what earlier sections said: an article says nothing twice
        for section in sections:
            heading, text = f"## {section['title']}", ""
            prompt = restyle_section_prompt(section["text"])
            async for piece in llm.stream(prompt, max_tokens=size.style_tokens,
                                          **prose_options(size)):  # fmt: skip
                text += piece
                await report.article("\n\n".join([*done, heading, text]), done=False)
            styled = tidy(text, size)
            if len(styled) < len(section["text"]) / 2:  # a summary, not a restyle: keep the draft
                styled = section["text"]
            done += [heading, tidy_small_prose(styled, said) or styled]
        return "\n\n".join(done)

    async def post_async(self, shared: dict, prep_res: Any, article: str) -> None:
        await shared["report"].article(article, done=True)


def tidy(text: str, size: Sizes) -> str:
    """A reply without the model's chatter; a small model's also without verbatim repeats, talk
    about its own text, and a sentence cut short. A good model's text is otherwise untouched."""
    text = strip_chatter(text, drop_heading=True)
    return trim_to_sentence(tidy_small_prose(text)) if size.small else text


def prose_options(size: Sizes) -> dict[str, Any]:
    """What a call that writes prose adds: the profile's stop sequences, the backend's sampling."""
    options: dict[str, Any] = {"stop": list(size.prose_stop)} if size.prose_stop else {}
    if prose_body := llm.backend().prose_body:
        options["extra_body"] = dict(prose_body)
    return options


def draft_markdown(topic: str, sections: list[dict]) -> str:
    parts = [f"# {topic}"]
    parts += [f"## {s['title']}\n\n{s['text']}" for s in sections]
    return "\n\n".join(parts) + "\n"


def outline_prompt(topic: str, sections: int = 5) -> list[dict[str, str]]:
    """No example titles: a small model copies them verbatim as if they were its own."""
    count = f"3 to {sections}" if sections > 3 else str(sections)
    return [
        {"role": "system", "content": "You plan the outline of short articles."},
        {
            "role": "user",
            "content": (
                f"Plan an article about: {topic}\n\n"
                f"Reply with {count} short section titles, one per line, each starting with "
                "'- ', and nothing else."
            ),
        },
    ]


def section_prompt(
    topic: str, titles: list[str], title: str, small: bool = False
) -> list[dict[str, str]]:
    if small:  # given the plan as well, a small model copies the plan out instead of writing
        return [
            {"role": "system", "content": "You write one section of an article at a time."},
            {
                "role": "user",
                "content": (
                    f'Write the section titled "{title}" of an article about {topic}: two or '
                    "three short paragraphs, without a heading."
                ),
            },
        ]
    plan = "\n".join(f"- {t}" for t in titles)
    return [
        {"role": "system", "content": "You write one section of an article at a time."},
        {
            "role": "user",
            "content": (
                f"The article is about: {topic}\nIts sections are:\n{plan}\n\n"
                f"Write the section titled \"{title}\": two or three short paragraphs of "
                "Markdown, without a heading."
            ),
        },
    ]


def style_prompt(draft: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": "You are an editor who polishes articles."},
        {
            "role": "user",
            "content": (
                "Rewrite this draft in a warm, conversational tone. Keep its '# ' title, every "
                "'## ' section heading and all of its facts. Reply with the article in Markdown "
                f"and nothing else.\n\n{draft}"
            ),
        },
    ]


def restyle_section_prompt(text: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": "You are an editor who polishes articles."},
        {
            "role": "user",
            "content": (
                "Rewrite this text in a warm, conversational tone. Keep all of its facts. Reply "
                f"with the rewritten text only.\n\n{text}"
            ),
        },
    ]


def create_article_flow(concurrency: int = 5, retries: int = 3, wait: float = 1.0) -> AsyncFlow:
    outline = GenerateOutline(attempts=retries, wait=wait)
    sections = WriteSections(attempts=retries, wait=wait, concurrency=concurrency)
    style = ApplyStyle(attempts=retries, wait=wait)
    outline >> sections >> style
    return AsyncFlow(start=outline)
