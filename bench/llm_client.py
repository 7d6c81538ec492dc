"""What a streamed token costs the app to read, through each HTTP stack the openai client offers.

Starts the fake LLM in its own process (its CPU is not counted), then reads STREAMS streams at
once, TOKENS tokens each, as llm.LLM reads them (chunks as parsed JSON), through the openai
client on its default httpx2 pool and on aiohttp (`DefaultAioHttpClient`, what llm.py uses),
taking turns for ROUNDS rounds. Prints this process's CPU per token for each, and their ratio.

    python -m bench.llm_client [--streams 100] [--tokens 200] [--rounds 4]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time

import httpx
import openai

from bench.figures import machine
from tests.fake_llm import free_port
from tests.sse import wait_for

CLIENTS = {"httpx2": openai.DefaultAsyncHttpx2Client, "aiohttp": openai.DefaultAioHttpClient}


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
        await one()  # connect, warm up
        started = time.process_time()
        read = sum(await asyncio.gather(*(one() for _ in range(streams))))
        return (time.process_time() - started) / read
    finally:
        await client.close()


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
        costs: dict[str, list[float]] = {name: [] for name in CLIENTS}
        for _ in range(args.rounds):
            for name, http_client in CLIENTS.items():
                costs[name].append(asyncio.run(read_streams(base_url, http_client, args.streams,
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


if __name__ == "__main__":
    main()
