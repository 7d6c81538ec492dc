"""Bench the embedded default: tokens/s and the wall time of one article on this machine.

    python -m bench.local_default              # 3 articles, 3 token-rate runs
    python -m bench.local_default --articles 5 --json bench/local_default.json

It starts SmolLM2-135M-Instruct through llama.cpp's server exactly as the app does (local_model.py),
then measures:
- generation speed: completion tokens / wall time of non-streamed section-sized calls, and prompt
  processing speed from a long prompt;
- one article: the real flow (GenerateOutline -> WriteSections -> ApplyStyle) with the app's
  default settings, on a job that its real reporter keeps in an in-memory store
  (tests/reporting.py), timed from the first call to the finished article;
- the server's start-up time and resident memory.
Needs `pip install -e '.[local]'`; run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path

from bench.embedded import Embedded, embedded_model, run_article_flow
from bench.figures import machine, memory_mb
from draftline.llm import LLM
from draftline.pocketflow_nodes import section_prompt
from tests.reporting import shared_for

TOPICS = ("How sourdough starters work", "A beginner's guide to tide pools", "Why the sky is blue",
          "The history of the bicycle", "Caring for a houseplant")  # fmt: skip


async def token_rate(chat: LLM, runs: int) -> dict:
    client = chat.client()
    model = chat.backend.model
    body = chat.backend.extra_body
    tokens = seconds = 0.0
    for run in range(runs):
        title = f"Feeding your starter, day {run + 1}"
        prompt = section_prompt("How sourdough starters work", [], title, small=True)
        started = time.monotonic()
        reply = await client.chat.completions.create(
            model=model, messages=prompt, max_tokens=256, extra_body={**body, "min_tokens": 200}
        )  # fmt: skip
        seconds += time.monotonic() - started
        tokens += reply.usage.completion_tokens
    text = "The tide comes in and goes out. " * 120
    long_prompt = [{"role": "user", "content": f"Summarise: {text}"}]
    started = time.monotonic()
    reply = await client.chat.completions.create(model=model, messages=long_prompt, max_tokens=1)
    prompt_seconds = time.monotonic() - started
    return {
        "generation_tokens_per_s": round(tokens / seconds, 1),
        "generation_tokens": int(tokens),
        "prompt_tokens_per_s": round(reply.usage.prompt_tokens / prompt_seconds, 1),
    }


async def one_article(embedded: Embedded, topic: str) -> dict:
    shared = await shared_for(embedded.chat, topic)
    run = await run_article_flow(shared, embedded.settings)
    job = shared["job"]
    return {
        "topic": topic,
        **run,
        "sections": len(job.outline or []),
        "article_words": len(job.article.split()),
    }


async def main(args: argparse.Namespace) -> dict:
    async with embedded_model() as embedded:
        result = {
            **machine(),
            "model": embedded.name,
            "server_start_s": embedded.start_s,
            **await token_rate(embedded.chat, args.token_runs),
        }
        topics = [TOPICS[i % len(TOPICS)] for i in range(args.articles)]
        articles = [await one_article(embedded, topic) for topic in topics]
        result["server_resident_mb"] = memory_mb(embedded.model.process.pid)
        result["article_seconds_median"] = statistics.median(a["seconds"] for a in articles)
        result["articles"] = articles
        return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--articles", type=int, default=3)
    parser.add_argument("--token-runs", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    result = asyncio.run(main(args))
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
