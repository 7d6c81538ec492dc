"""What a streamed token costs the app to read, through each HTTP stack the openai client offers.

Starts the fake LLM in its own process (its CPU is not counted), then reads STREAMS streams at
once, TOKENS tokens each, as llm.LLM reads them (chunks as parsed JSON), through the openai
client on its default httpx2 pool and on aiohttp (`DefaultAioHttpClient`, what llm.py uses),
and through llm.LLM itself, with its streams read in batches (llm.GATHER_FROM streams open or
more) and as they come, taking turns for ROUNDS rounds. Prints this process's CPU per token for
each, and the ratios.

    python -m bench.llm_client [--streams 100] [--tokens 200] [--rounds 4]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

import httpx
import openai

from bench.figures import machine
from draftline import llm
from draftline.config import Settings
from tests.fake_llm import free_port
from tests.sse import wait_for

CLIENTS = {"httpx2": openai.DefaultAsyncHttpx2Client, "aiohttp": openai.DefaultAioHttpClient}
GATHER_FROM = llm.GATHER_FROM
READERS = {"batches": True, "as-come": False}  # llm.LLM's streams, read in batches or not


async def read_streams(base_url: str, http_client: type, streams: int, tokens: int) -> float:
    """CPU seconds per token for `streams` streams read at once, on a fresh client."""
    client = openai.AsyncOpenAI(api_key="not-needed", base_url=base_url, max_retries=0,
                                http_client=http_client())  # fmt: skip
    words = " ".join(["word"] * tokens)  # the fake echoes the prompt back, a token per word
    request = {"model": "fake", "stream": True, "max_tokens": tokens + 10,
               "messages": [{"role": "user", "content": words}]}  # fmt: skip

    async def one() -> int:
        response = await client.post("/chat/completions", body=request, cast_to=object, stream=True,
                                     stream_cls=openai.AsyncStream[object])  # fmt: skip
        return len([chunk async for chunk in response if chunk.get("choices")])

    try:
        return await cpu_per_token(one, streams)
    finally:
        await client.close()


async def read_through_llm(base_url: str, gather: bool, streams: int, tokens: int) -> float:
    """CPU seconds per token for `streams` streams read at once through llm.LLM."""
    llm.GATHER_FROM = GATHER_FROM if gather else sys.maxsize
    chat = llm.LLM(Settings(openai_base_url=base_url, model="fake"))
    messages = [{"role": "user", "content": " ".join(["word"] * tokens)}]

    async def one() -> int:
        return len([piece async for piece in chat.stream(messages, max_tokens=tokens + 10)])

    try:
        return await cpu_per_token(one, streams)
    finally:
        await chat.aclose()


async def cpu_per_token(one: Callable[[], Awaitable[int]], streams: int) -> float:
    """This process's CPU seconds per token for `streams` runs of `one` (a stream read whole,
    its tokens counted) at once, after one run alone to connect and warm up."""
    await one()
    started = time.process_time()
    read = sum(await asyncio.gather(*(one() for _ in range(streams))))
    return (time.process_time() - started) / read


def _answers(url: str) -> bool:
    try:
        httpx.get(url, timeout=1)
    except httpx.HTTPError:
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    port = free_port()
    fake = subprocess.Popen([sys.executable, "-m", "tests.fake_llm", "--port", str(port),
                             "--token-delay", "0.01"])  # fmt: skip
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        wait_for(lambda: _answers(f"http://127.0.0.1:{port}/"), timeout=10)
        costs: dict[str, list[float]] = {name: [] for name in (*CLIENTS, *READERS)}
        for _ in range(args.rounds):
            for name, http_client in CLIENTS.items():
                costs[name].append(asyncio.run(read_streams(base_url, http_client, args.streams,
                                                            args.tokens)))  # fmt: skip
            for name, gather in READERS.items():
                costs[name].append(asyncio.run(read_through_llm(base_url, gather, args.streams,
                                                                args.tokens)))  # fmt: skip
    finally:
        fake.terminate()
        fake.wait()
    print(machine())
    print(f"{args.streams} streams at once, {args.tokens} tokens each, 10 ms per token, "
          f"{args.rounds} rounds taking turns")  # fmt: skip
    medians = {name: statistics.median(values) for name, values in costs.items()}
    for name, values in costs.items():
        print(f"  {name:8} CPU per token: median {medians[name] * 1e6:.0f} us "
              f"(rounds: {', '.join(f'{v * 1e6:.0f}' for v in values)})")
    print(f"  aiohttp / httpx2: {medians['aiohttp'] / medians['httpx2']:.2f}")
    print(f"  LLM in batches / as they come: {medians['batches'] / medians['as-come']:.2f}")


if __name__ == "__main__":
    main()
