"""What it costs the app when many viewers connect at once, as after a restart or a shared link.

Starts the fake LLM (slow, so the jobs cost little meanwhile) and the app under uvicorn with
each --http parser in turn, submits JOBS jobs, then opens VIEWERS event streams at once and
waits for each one's first event, while fetching GET / every 20 ms. Prints, per parser and
round, the wall time until every viewer has its first event, the app's CPU seconds in that
time, and the slowest GET /; then the medians, and their ratios to the first parser's.

    python -m bench.connect [--jobs 100] [--viewers 1000] [--rounds 4] [--http h11 ...]

`draftline` serves with h11 (security.DeadlineH11Protocol: its deadline for half-sent requests
and its 16 KiB cap on headers are h11's); `--http httptools` needs `pip install httptools`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.figures import machine
from bench.load import app_env, cpu_seconds, open_stream
from tests.app_server import AppServer
from tests.fake_llm import free_port


async def first_event(port: int, job_id: str, arrived: list[int], close: asyncio.Event) -> None:
    reader, writer = await open_stream(port, job_id)
    while line := await reader.readline():
        if line.startswith(b"event: "):
            arrived.append(1)
            break
    await close.wait()  # held open until every viewer is in, as real pages would be
    writer.close()


async def connect(server: AppServer, jobs: int, viewers: int) -> tuple[float, float, float]:
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
        for _ in range(5):
            await http.get("/")
        created = [await http.post("/api/jobs", json={"topic": f"Load {i}"}) for i in range(jobs)]
        ids = [r.json()["id"] for r in created]
        await asyncio.sleep(1.5)  # every job running, its outline asked for
        arrived: list[int] = []
        close = asyncio.Event()
        cpu_before = cpu_seconds(server.process.pid)
        started = time.perf_counter()
        streams = [asyncio.create_task(first_event(server.port, ids[i % jobs], arrived, close))
                   for i in range(viewers)]  # fmt: skip
        slowest_get = 0.0
        while len(arrived) < viewers:
            sent = time.perf_counter()
            assert (await http.get("/")).status_code == 200
            slowest_get = max(slowest_get, time.perf_counter() - sent)
            await asyncio.sleep(0.02)
        elapsed = time.perf_counter() - started
        cpu = cpu_seconds(server.process.pid) - cpu_before
        close.set()
        await asyncio.gather(*streams)
    return elapsed, cpu, slowest_get


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--viewers", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--http", action="append", metavar="h11|httptools",
                        help="uvicorn's HTTP parser (repeatable; default: h11)")
    args = parser.parse_args()
    parsers = args.http or ["h11"]
    print(machine())
    fake_port = free_port()
    fake = subprocess.Popen([sys.executable, "-m", "tests.fake_llm", "--port", str(fake_port),
                             "--token-delay", "2.0"])  # fmt: skip
    env = app_env(f"http://127.0.0.1:{fake_port}/v1", args.jobs, args.viewers)
    figures: dict[str, list[tuple[float, float, float]]] = {p: [] for p in parsers}
    try:
        with tempfile.TemporaryDirectory() as data:
            for round_ in range(args.rounds):
                for http in parsers:
                    here = Path(data) / f"{http}-{round_}"
                    here.mkdir()
                    server = AppServer(here, env, http).start()
                    try:
                        figures[http].append(asyncio.run(connect(server, args.jobs, args.viewers)))
                    finally:
                        server.kill()
                    elapsed, cpu, get = figures[http][-1]
                    print(f"  {http:9} all in after {elapsed:.2f} s, app CPU {cpu:.2f} s, "
                          f"slowest GET / {get * 1000:.0f} ms", flush=True)
    finally:
        fake.terminate()
        fake.wait()
    medians = {p: [statistics.median(f[i] for f in figures[p]) for i in range(3)] for p in parsers}
    print(f"{args.viewers} viewers connecting to {args.jobs} running jobs, medians of "
          f"{args.rounds} rounds taking turns:")
    for p, (elapsed, cpu, get) in medians.items():
        print(f"  {p:9} {elapsed:.2f} s, app CPU {cpu:.2f} s ({cpu / args.viewers * 1000:.2f} ms "
              f"a viewer), slowest GET / {get * 1000:.0f} ms")
    _, first_cpu, first_get = medians[parsers[0]]
    for p, (_, cpu, get) in list(medians.items())[1:]:
        print(f"  {p} / {parsers[0]}: CPU {cpu / first_cpu:.2f}, "
              f"slowest GET / {get / first_get:.2f}")

if __name__ == "__main__":
    main()
