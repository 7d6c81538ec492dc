"""The article flow: GenerateOutline -> WriteSections -> ApplyStyle.

Nodes read and write the shared store only in prep/post. Progress goes out through the `report`
object the job runner puts in the shared store; prep hands it to exec, so exec never touches the
store and a retried exec is safe. See docs/design.md for the shared store's shape.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any, Protocol

from pocketflow import AsyncFlow, AsyncNode, AsyncParallelBatchNode

import llm
from outline import OutlineError, parse_outline

log = logging.getLogger("draftline.flow")

OUTLINE_MAX_TOKENS = 300
SECTION_MAX_TOKENS = 700
STYLE_MAX_TOKENS = 3000


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
    async def prep_async(self, shared: dict) -> tuple[str, Reporter] | None:
        shared["report"].step("outline")
        if shared.get("outline"):  # resuming: the outline is already paid for
            return None
        return shared["topic"], shared["report"]

    async def exec_async(self, prep_res: tuple[str, Reporter] | None) -> list[str] | None:
        if prep_res is None:
            return None
        topic, _ = prep_res
        reply = await llm.complete(outline_prompt(topic), max_tokens=OUTLINE_MAX_TOKENS)
        return parse_outline(reply)

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
        limit = asyncio.Semaphore(self.concurrency)
        titles = shared["outline"]
        return [
            {
                "index": index,
                "title": section["title"],
                "topic": shared["topic"],
                "titles": titles,
                "report": shared["report"],
                "limit": limit,
            }
            for index, section in enumerate(shared["sections"])
            if not section["done"]  # resuming: finished sections are not written twice
        ]

    async def exec_async(self, item: dict) -> tuple[int, str]:
        report: Reporter = item["report"]
        async with item["limit"]:
            text = ""
            report.section(item["index"], text, done=False)
            prompt = section_prompt(item["topic"], item["titles"], item["title"])
            async for piece in llm.stream(prompt, max_tokens=SECTION_MAX_TOKENS):
                text += piece
                report.section(item["index"], text, done=False)
            text = text.strip()
            report.section(item["index"], text, done=True)
            return item["index"], text

    async def post_async(self, shared: dict, prep_res: list, results: list) -> None:
        for index, text in results:
            shared["sections"][index].update(text=text, done=True)


class ApplyStyle(RetryingNode):
    async def prep_async(self, shared: dict) -> tuple[str, Reporter]:
        shared["report"].step("style")
        return draft_markdown(shared["topic"], shared["sections"]), shared["report"]

    async def exec_async(self, prep_res: tuple[str, Reporter]) -> str:
        draft, report = prep_res
        text = ""
        report.article(text, done=False)
        async for piece in llm.stream(style_prompt(draft), max_tokens=STYLE_MAX_TOKENS):
            text += piece
            report.article(text, done=False)
        return text.strip()

    async def post_async(self, shared: dict, prep_res: Any, article: str) -> None:
        shared["article"] = article
        shared["report"].article(article, done=True)


def draft_markdown(topic: str, sections: list[dict]) -> str:
    parts = [f"# {topic}"]
    parts += [f"## {s['title']}\n\n{s['text']}" for s in sections]
    return "\n\n".join(parts) + "\n"


def outline_prompt(topic: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": "You plan the outline of short articles."},
        {
            "role": "user",
            "content": (
                f"Plan an article about: {topic}\n\n"
                "Reply with 3 to 5 section titles as a YAML list and nothing else:\n"
                "sections:\n  - <first section title>\n  - <second section title>"
            ),
        },
    ]


def section_prompt(topic: str, titles: list[str], title: str) -> list[dict[str, str]]:
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


def create_article_flow(concurrency: int = 5, retries: int = 3, wait: float = 1.0) -> AsyncFlow:
    outline = GenerateOutline(max_retries=retries, wait=wait)
    sections = WriteSections(max_retries=retries, wait=wait, concurrency=concurrency)
    style = ApplyStyle(max_retries=retries, wait=wait)
    outline >> sections >> style
    return AsyncFlow(start=outline)
