"""The article flow: GenerateOutline -> WriteSections -> ApplyStyle.

Nodes read and write the shared store only in prep/post. Progress goes out through the `report`
object the job runner puts in the shared store, and calls go to the `llm` object beside it (an
llm.LLM); prep hands both to exec, so exec never touches the store and a retried exec is safe.
See docs/design.md for the shared store's shape.

A small model (llm.backend.small: the embedded SmolLM2-135M) gets the same flow in smaller
pieces: a grammar-constrained outline of three titles with a plain fallback, one short section at a
time from a one-instruction prompt, and a restyle per section, since asked to restyle a whole
article it writes a summary instead.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from typing import Any, Protocol

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


def sizes(backend: llm.Backend) -> Sizes:
    return SMALL if backend.small else FULL


class Reporter(Protocol):
    """What the flow tells the outside world; implemented by runner.JobReporter."""

    def step(self, name: str) -> None: ...
    def outline(self, titles: list[str]) -> None: ...
    def section(self, index: int, text: str, done: bool) -> None: ...
    def article(self, text: str, done: bool) -> None: ...


class RetryingNode(AsyncNode):
    """Retries transient failures with exponential backoff, honouring a provider's Retry-After.

    This is the one retry layer: the openai client's own retries are off (llm.py).
    """

    def __init__(self, max_retries: int = 3, wait: float = 1.0):
        super().__init__(max_retries=max_retries, wait=wait)

    async def _exec(self, prep_res: Any) -> Any:
        for attempt in range(self.max_retries):
            try:
                return await self.exec_async(prep_res)
            except (llm.LLMError, OutlineError) as exc:
                transient = isinstance(exc, OutlineError) or exc.transient
                if not transient or attempt == self.max_retries - 1:
                    return await self.exec_fallback_async(prep_res, exc)
                delay = backoff(attempt, self.wait, getattr(exc, "retry_after", None))
                log.warning("%s: %s; retrying in %.1f s", type(self).__name__, exc, delay)
                await asyncio.sleep(delay)


def backoff(attempt: int, base: float, retry_after: float | None = None) -> float:
    if retry_after is not None:
        return min(retry_after, 60.0)
    return base * 2**attempt * random.uniform(0.75, 1.25)


class GenerateOutline(RetryingNode):
    async def prep_async(self, shared: dict) -> tuple[str, Reporter, llm.LLM] | None:
        shared["report"].step("outline")
        if shared.get("outline"):  # resuming: the outline is already paid for
            return None
        return shared["topic"], shared["report"], shared["llm"]

    async def exec_async(self, prep_res: tuple[str, Reporter, llm.LLM] | None) -> list[str] | None:
        if prep_res is None:
            return None
        topic, _, model = prep_res
        backend = model.backend
        size = sizes(backend)
        extra: dict[str, Any] = {}
        if backend.grammar:  # one spare line: the topic echoed back or a repeat is dropped
            extra["extra_body"] = {"grammar": outline_grammar(size.sections + 1)}
        prompt = outline_prompt(topic, size.sections)
        reply = await model.complete(prompt, max_tokens=size.outline_tokens, **extra)
        return parse_outline(reply.text, size.sections, topic=topic, minimum=size.min_sections,
                             cut_short=reply.cut_short, small_model=size.small)  # fmt: skip

    async def exec_fallback_async(self, prep_res: tuple[str, Reporter, llm.LLM] | None,
                                  exc: Exception):  # fmt: skip
        if prep_res is None or not isinstance(exc, OutlineError):
            raise exc
        topic, _, model = prep_res
        size = sizes(model.backend)
        if not size.small:
            raise exc
        log.warning("no usable outline from the model for %r; using a plain one", topic)
        return fallback_outline(topic, size.sections)

    async def post_async(self, shared: dict, prep_res: Any, titles: list[str] | None) -> None:
        if titles is None:
            return
        shared["outline"] = titles
        shared["sections"] = [{"title": t, "text": "", "done": False} for t in titles]
        shared["report"].outline(titles)


class WriteSections(AsyncParallelBatchNode, RetryingNode):
    """One LLM call per section, run concurrently up to `concurrency` at a time."""

    def __init__(self, max_retries: int = 3, wait: float = 1.0, concurrency: int = 5):
        super().__init__(max_retries=max_retries, wait=wait)
        self.concurrency = concurrency

    async def prep_async(self, shared: dict) -> list[dict]:
        shared["report"].step("sections")
        at_once = shared["llm"].backend.concurrency  # a one-at-a-time server: one at a time
        limit = asyncio.Semaphore(min(self.concurrency, at_once) if at_once else self.concurrency)
        titles = shared["outline"]
        return [
            {
                "index": index,
                "title": section["title"],
                "topic": shared["topic"],
                "titles": titles,
                "report": shared["report"],
                "llm": shared["llm"],
                "limit": limit,
            }
            for index, section in enumerate(shared["sections"])
            if not section["done"]  # resuming: finished sections are not written twice
        ]

    async def exec_async(self, item: dict) -> tuple[int, str]:
        report: Reporter = item["report"]
        model: llm.LLM = item["llm"]
        async with item["limit"]:
            text = ""
            report.section(item["index"], text, done=False)
            size = sizes(model.backend)
            prompt = section_prompt(item["topic"], item["titles"], item["title"], small=size.small)
            async for piece in model.stream(prompt, max_tokens=size.section_tokens,
                                            **prose_options(size)):  # fmt: skip
                text += piece
                report.section(item["index"], text, done=False)
            text = tidy(text, size)
            report.section(item["index"], text, done=True)
            return item["index"], text

    async def post_async(self, shared: dict, prep_res: list, results: list) -> None:
        for index, text in results:
            shared["sections"][index].update(text=text, done=True)


class ApplyStyle(RetryingNode):
    async def prep_async(self, shared: dict) -> tuple[str, list[dict], Reporter, llm.LLM]:
        shared["report"].step("style")
        sections = [{"title": s["title"], "text": s["text"]} for s in shared["sections"]]
        return shared["topic"], sections, shared["report"], shared["llm"]

    async def exec_async(self, prep_res: tuple[str, list[dict], Reporter, llm.LLM]) -> str:
        topic, sections, report, model = prep_res
        size = sizes(model.backend)
        report.article("", done=False)
        if size.small:
            return await self._style_each_section(topic, sections, report, size, model)
        text = ""
        prompt = style_prompt(draft_markdown(topic, sections))
        async for piece in model.stream(prompt, max_tokens=size.style_tokens):
            text += piece
            report.article(text, done=False)
        return strip_chatter(text)

    async def _style_each_section(
        self, topic: str, sections: list[dict], report: Reporter, size: Sizes, model: llm.LLM
    ) -> str:
        """A small model keeps an article's shape only if it sees one section at a time."""
        done = [f"# {topic}"]
        said: set[str] = set()  # what earlier sections said: an article says nothing twice
        for section in sections:
            heading, text = f"## {section['title']}", ""
            prompt = restyle_section_prompt(section["text"])
            async for piece in model.stream(prompt, max_tokens=size.style_tokens,
                                            **prose_options(size)):  # fmt: skip
                text += piece
                report.article("\n\n".join([*done, heading, text]), done=False)
            styled = tidy(text, size)
            if len(styled) < len(section["text"]) / 2:  # a summary, not a restyle: keep the draft
                styled = section["text"]
            done += [heading, tidy_small_prose(styled, said) or styled]
        return "\n\n".join(done)

    async def post_async(self, shared: dict, prep_res: Any, article: str) -> None:
        shared["article"] = article
        shared["report"].article(article, done=True)


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
    outline = GenerateOutline(max_retries=retries, wait=wait)
    sections = WriteSections(max_retries=retries, wait=wait, concurrency=concurrency)
    style = ApplyStyle(max_retries=retries, wait=wait)
    outline >> sections >> style
    return AsyncFlow(start=outline)
