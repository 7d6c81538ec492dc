"""The flows: GenerateOutline -> WriteSections -> ApplyStyle, and RewriteSection -> ApplyStyle.

The shared store holds the job, its reporter and the LLM. Nodes read the job in prep and change
it only through the reporter (the one writer of job state), which also tells the job's viewers;
prep hands the reporter and the LLM to exec, so exec never touches the shared store and a retried
exec is safe. See docs/design.md for the shared store's shape.

Every LLM call passes `on_usage=call.report.usage`, so the job counts the tokens it used, and is
preceded by `call.report.check_budget()`, so no call starts once the job's budget is spent.

A job's options (brief.Options: length, tone, audience, language) shape every prompt; with
`review_outline`, the article flow stops after the outline until a person approves it.

A small model (llm.backend.small: the embedded SmolLM2-135M) gets the same flow in smaller
pieces: a grammar-constrained outline of three titles with a plain fallback, one short section at a
time from a one-instruction prompt, and a restyle per section, since asked to restyle a whole
article it writes a summary instead.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol, TypeVar

import tenacity
from pocketflow import AsyncFlow, AsyncNode, AsyncParallelBatchNode

from . import llm
from .brief import Options
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


# How many sections the small model writes for each length: it cannot write long sections.
SMALL_SECTIONS = {"short": 2, "medium": 3, "long": 4}


def sizes(backend: llm.Backend, options: Options | None = None) -> Sizes:
    """What to ask of this backend for an article of the job's length (medium: FULL or SMALL)."""
    options = options or Options()
    if backend.small:
        return replace(SMALL, sections=SMALL_SECTIONS[options.length])
    length = options.size
    return replace(FULL, sections=length.sections, section_tokens=round(length.words * 2.8),
                   style_tokens=round(length.sections * length.words * 2.4))  # fmt: skip


class Reporter(Protocol):
    """How the flow changes its job; implemented by runner.JobReporter."""

    async def step(self, name: str) -> None: ...
    async def outline(self, titles: list[str]) -> None: ...
    async def section(self, index: int, text: str, done: bool) -> None: ...
    async def rewrite(self, index: int, text: str, done: bool) -> None: ...
    async def article(self, text: str, done: bool) -> None: ...
    async def usage(self, prompt_tokens: int, completion_tokens: int) -> None: ...
    def check_budget(self) -> None: ...  # raises (an LLMError) once the job's tokens are spent


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


@dataclass(frozen=True)
class Call:
    """What exec needs from the shared store: the job's brief, its reporter and the LLM."""

    topic: str
    options: Options
    report: Reporter
    model: llm.LLM

    @property
    def size(self) -> Sizes:
        return sizes(self.model.backend, self.options)


def call_for(shared: dict) -> Call:
    job = shared["job"]
    return Call(job.topic, job.brief, shared["report"], shared["llm"])


class GenerateOutline(RetryingNode):
    async def prep_async(self, shared: dict) -> tuple[Call, str] | None:
        job = shared["job"]
        await shared["report"].step("outline")
        planning_again = bool(job.redo and job.redo["what"] == "outline")
        if job.outline and not planning_again:  # resuming: the outline is already paid for
            return None
        return call_for(shared), (job.redo or {}).get("instruction", "")

    @retried
    async def exec_async(self, prep_res: tuple[Call, str] | None) -> list[str] | None:
        if prep_res is None:
            return None
        call, instruction = prep_res
        size, backend = call.size, call.model.backend
        extra: dict[str, Any] = {}
        if backend.grammar:  # one spare line: the topic echoed back or a repeat is dropped
            extra["extra_body"] = {"grammar": outline_grammar(size.sections + 1)}
        prompt = outline_prompt(call.topic, size.sections, call.options, instruction)
        call.report.check_budget()
        reply = await call.model.complete(prompt, max_tokens=size.outline_tokens,
                                          on_usage=call.report.usage, **extra)  # fmt: skip
        return parse_outline(reply.text, size.sections, topic=call.topic,
                             minimum=size.min_sections, cut_short=reply.cut_short,
                             small_model=size.small)  # fmt: skip

    async def exec_fallback_async(self, prep_res: tuple[Call, str] | None, exc: Exception):
        if prep_res is None or not isinstance(exc, OutlineError) or not prep_res[0].size.small:
            raise exc
        call = prep_res[0]
        log.warning("no usable outline from the model for %r; using a plain one", call.topic)
        return fallback_outline(call.topic, call.size.sections)

    async def post_async(self, shared: dict, prep_res: Any, titles: list[str] | None) -> str | None:
        if titles is None:
            return None
        await shared["report"].outline(titles)
        return "review" if shared["job"].brief.review_outline else None


class AwaitReview(AsyncNode):
    """Where the article flow stops when the outline is to be reviewed first: the runner leaves
    the job in `review` until a person approves the outline (or asks for another)."""

    async def post_async(self, shared: dict, prep_res: Any, exec_res: Any) -> str:
        return "review"


class WriteSections(AsyncParallelBatchNode, RetryingNode):
    """One LLM call per section, run concurrently up to `concurrency` at a time."""

    def __init__(self, attempts: int = 3, wait: float = 1.0, concurrency: int = 5):
        super().__init__(attempts=attempts, wait=wait)
        self.concurrency = concurrency

    async def prep_async(self, shared: dict) -> list[dict]:
        job = shared["job"]
        await shared["report"].step("sections")
        at_once = shared["llm"].backend.concurrency  # a one-at-a-time server: one at a time
        limit = asyncio.Semaphore(min(self.concurrency, at_once) if at_once else self.concurrency)
        return [
            {
                "call": call_for(shared),
                "index": index,
                "title": section["title"],
                "titles": list(job.outline),
                "limit": limit,
            }
            for index, section in enumerate(job.sections)
            if not section["done"]  # resuming: finished sections are not written twice
        ]

    @retried  # one section: a failed section is written again alone
    async def exec_async(self, item: dict) -> tuple[int, str]:
        call: Call = item["call"]
        async with item["limit"]:
            call.report.check_budget()  # others may have spent it while this one waited
            text = ""
            await call.report.section(item["index"], text, done=False)
            size = call.size
            prompt = section_prompt(call.topic, item["titles"], item["title"], small=size.small,
                                    options=call.options)  # fmt: skip
            async for piece in call.model.stream(prompt, max_tokens=size.section_tokens,
                                                 on_usage=call.report.usage,
                                                 **prose_options(size)):  # fmt: skip
                text += piece
                await call.report.section(item["index"], text, done=False)
            text = tidy(text, size)
            await call.report.section(item["index"], text, done=True)  # the section's one write
            return item["index"], text


class RewriteSection(RetryingNode):
    """One section of a finished article written again, following an optional instruction; the
    new text streams in and replaces the old one only when it is done (runner.JobReporter)."""

    async def prep_async(self, shared: dict) -> dict:
        job = shared["job"]
        await shared["report"].step("sections")
        index = job.redo["index"]
        instruction = job.redo.get("instruction", "")
        return {"call": call_for(shared), "index": index, "titles": list(job.outline),
                "old": job.sections[index], "instruction": instruction}  # fmt: skip

    @retried
    async def exec_async(self, item: dict) -> str:
        call: Call = item["call"]
        size, index, text = call.size, item["index"], ""
        call.report.check_budget()
        await call.report.rewrite(index, text, done=False)
        prompt = rewrite_prompt(call.topic, item["titles"], item["old"], item["instruction"],
                                call.options, small=size.small)  # fmt: skip
        async for piece in call.model.stream(prompt, max_tokens=size.section_tokens,
                                             on_usage=call.report.usage,
                                             **prose_options(size)):  # fmt: skip
            text += piece
            await call.report.rewrite(index, text, done=False)
        text = tidy(text, size)
        await call.report.rewrite(index, text, done=True)
        return text


class ApplyStyle(RetryingNode):
    async def prep_async(self, shared: dict) -> tuple[Call, list[dict]]:
        job = shared["job"]
        await shared["report"].step("style")
        sections = [{"title": s["title"], "text": s["text"]} for s in job.sections]
        return call_for(shared), sections

    @retried
    async def exec_async(self, prep_res: tuple[Call, list[dict]]) -> str:
        call, sections = prep_res
        size, report = call.size, call.report
        report.check_budget()
        await report.article("", done=False)
        if size.small:
            return await self._style_each_section(call, sections, size)
        text = ""
        prompt = style_prompt(draft_markdown(call.topic, sections), call.options)
        async for piece in call.model.stream(prompt, max_tokens=size.style_tokens,
                                             on_usage=call.report.usage):  # fmt: skip
            text += piece
            await report.article(text, done=False)
        return strip_chatter(text)

    async def _style_each_section(self, call: Call, sections: list[dict], size: Sizes) -> str:
        """A small model keeps an article's shape only if it sees one section at a time."""
        done = [f"# {call.topic}"]
        said: set[str] = set()  # what earlier sections said: an article says nothing twice
        for section in sections:
            heading, text = f"## {section['title']}", ""
            prompt = restyle_section_prompt(section["text"], call.options)
            call.report.check_budget()
            async for piece in call.model.stream(prompt, max_tokens=size.style_tokens,
                                                 on_usage=call.report.usage,
                                                 **prose_options(size)):  # fmt: skip
                text += piece
                await call.report.article("\n\n".join([*done, heading, text]), done=False)
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
    """What a call that writes prose adds: the profile's stop sequences, and `prose` (the LLM
    adds the backend's sampling for prose)."""
    options: dict[str, Any] = {"stop": list(size.prose_stop)} if size.prose_stop else {}
    return {**options, "prose": True}


def draft_markdown(topic: str, sections: list[dict]) -> str:
    parts = [f"# {topic}"]
    parts += [f"## {s['title']}\n\n{s['text']}" for s in sections]
    return "\n\n".join(parts) + "\n"


def for_readers(options: Options) -> str:
    """The sentences every prompt ends with when the person named an audience or a language."""
    parts = []
    if options.audience:
        parts.append(f"Write for this audience: {options.audience}.")
    if options.language:
        parts.append(f"Write in {options.language}.")
    return "".join(f"\n\n{part}" for part in parts)


def outline_prompt(topic: str, sections: int = 5, options: Options | None = None,
                   instruction: str = "") -> list[dict[str, str]]:  # fmt: skip
    """No example titles: a small model copies them verbatim as if they were its own."""
    options = options or Options()
    count = f"3 to {sections}" if sections > 3 else str(sections)
    wish = f"\n\nWhat the author asks of this outline: {instruction}" if instruction else ""
    return [
        {"role": "system", "content": "You plan the outline of short articles."},
        {
            "role": "user",
            "content": (
                f"Plan an article about: {topic}\n\n"
                f"Reply with {count} short section titles, one per line, each starting with "
                f"'- ', and nothing else.{wish}{for_readers(options)}"
            ),
        },
    ]


def section_prompt(topic: str, titles: list[str], title: str, small: bool = False,
                   options: Options | None = None) -> list[dict[str, str]]:  # fmt: skip
    options = options or Options()
    paragraphs = options.size.paragraphs
    if small:  # given the plan as well, a small model copies the plan out instead of writing
        return [
            {"role": "system", "content": "You write one section of an article at a time."},
            {
                "role": "user",
                "content": (
                    f'Write the section titled "{title}" of an article about {topic}: '
                    f"{paragraphs}, without a heading.{for_readers(options)}"
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
                f'Write the section titled "{title}": {paragraphs} of Markdown, without a '
                f"heading.{for_readers(options)}"
            ),
        },
    ]


def rewrite_prompt(topic: str, titles: list[str], old: dict, instruction: str,
                   options: Options, small: bool = False) -> list[dict[str, str]]:  # fmt: skip
    """A finished section written again: the old text, and what the author wants changed."""
    wish = instruction or "Write it again, better: clearer, more concrete, no repetition."
    context = "" if small else "Its sections are:\n" + "\n".join(f"- {t}" for t in titles) + "\n"
    return [
        {"role": "system", "content": "You write one section of an article at a time."},
        {
            "role": "user",
            "content": (
                f"The article is about: {topic}\n{context}\n"
                f'Here is the section titled "{old["title"]}":\n\n{old["text"]}\n\n'
                f"Rewrite this section. {wish} Reply with the new section only, "
                f"without a heading.{for_readers(options)}"
            ),
        },
    ]


def style_prompt(draft: str, options: Options | None = None) -> list[dict[str, str]]:
    return editor_prompt(
        "Rewrite this draft in a {tone} tone. Keep its '# ' title, every '## ' section heading "
        "and all of its facts. Reply with the article in Markdown and nothing else.",
        draft, options or Options())  # fmt: skip


def restyle_section_prompt(text: str, options: Options | None = None) -> list[dict[str, str]]:
    return editor_prompt(
        "Rewrite this text in a {tone} tone. Keep all of its facts. Reply with the rewritten "
        "text only.", text, options or Options())  # fmt: skip


def editor_prompt(ask: str, text: str, options: Options) -> list[dict[str, str]]:
    """The polishing prompts: what to do in the job's tone, for its readers, then the text."""
    content = f"{ask.format(tone=options.tone_words)}{for_readers(options)}\n\n{text}"
    return [
        {"role": "system", "content": "You are an editor who polishes articles."},
        {"role": "user", "content": content},
    ]


def create_article_flow(concurrency: int = 5, retries: int = 3, wait: float = 1.0) -> AsyncFlow:
    outline = GenerateOutline(attempts=retries, wait=wait)
    sections = WriteSections(attempts=retries, wait=wait, concurrency=concurrency)
    style = ApplyStyle(attempts=retries, wait=wait)
    outline >> sections >> style
    outline - "review" >> AwaitReview()
    return AsyncFlow(start=outline)


def create_section_flow(concurrency: int = 5, retries: int = 3, wait: float = 1.0) -> AsyncFlow:
    """One finished section written again (job.redo), then the article restyled from the
    sections as they now stand. `concurrency` is unused: one section is written."""
    rewrite = RewriteSection(attempts=retries, wait=wait)
    rewrite >> ApplyStyle(attempts=retries, wait=wait)
    return AsyncFlow(start=rewrite)
