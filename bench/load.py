"""Many jobs and many viewers on one process.

Starts the fake LLM and the app as separate processes, submits JOBS jobs at once and opens
VIEWERS event streams spread over them (raw asyncio sockets, so the client stays cheap), while a
prober fetches GET / every 50 ms. Reports events delivered per second, the delay from a node's
report (the event's publish time, sent as an SSE comment) to a viewer receiving it, GET / latency
under load, and the app's peak RSS.

    python -m bench.load [--jobs 100] [--viewers 1000] [--token-delay 0.02]
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

from bench.figures import memory_mb
from tests.app_server import AppServer
from tests.fake_llm import free_port


async def viewer(port: int, job_id: str, delays: list[float], counts: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=2**20)
    request = f"GET /jobs/{job_id}/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
    writer.write(f"{request}Accept: text/event-stream\r\n\r\n".encode())
    await writer.drain()
    published, name = None, None
    try:
        while line := await reader.readline():
            text = line.decode().rstrip("\r\n")
            if text.startswith(": t="):
                published = float(text[4:])
            elif text.startswith("event: "):
                name = text[7:]
            elif text == "" and name is not None:
                counts[0] += 1
                if published is not None:
                    delays.append(time.time() - published)
                if name == "done":
                    return
                published, name = None, None
    finally:
        writer.close()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def probe(url: str, latencies: list[float], stop: asyncio.Event) -> None:
    async with httpx.AsyncClient(base_url=url) as http:
        while not stop.is_set():
            started = time.perf_counter()
            assert (await http.get("/")).status_code == 200
            latencies.append(time.perf_counter() - started)
            await asyncio.sleep(0.05)


async def run(server: AppServer, jobs: int, viewers: int) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
        idle: list[float] = []
        for _ in range(20):
            started = time.perf_counter()
            await http.get("/")
            idle.append(time.perf_counter() - started)
        started = time.perf_counter()
        created = await asyncio.gather(
            *(http.post("/api/jobs", json={"topic": f"Load {i}"}) for i in range(jobs))
        )
        ids = [r.json()["id"] for r in created]
    delays: list[float] = []
    counts = [0]
    latencies: list[float] = []
    stop = asyncio.Event()
    prober = asyncio.create_task(probe(server.url, latencies, stop))
    await asyncio.gather(
        *(viewer(server.port, ids[i % jobs], delays, counts) for i in range(viewers))
    )
    elapsed = time.perf_counter() - started
    stop.set()
    await prober
    async with httpx.AsyncClient(base_url=server.url) as http:
        statuses = [(await http.get(f"/api/jobs/{job_id}")).json()["status"] for job_id in ids]

    print(f"{jobs} jobs, {viewers} viewers, one app process; "
          f"all jobs done: {statuses.count('done')}/{jobs}")  # fmt: skip
    print(f"wall time                         {elapsed:8.1f} s")
    rate = counts[0] / elapsed
    print(f"events delivered                  {counts[0]:8d}  ({rate:,.0f} events/s)")
    print(f"report -> viewer delay  p50       {percentile(delays, 0.5) * 1000:8.1f} ms")
    print(f"report -> viewer delay  p99       {percentile(delays, 0.99) * 1000:8.1f} ms")
    print(f"GET / idle              p50       {statistics.median(idle) * 1000:8.1f} ms")
    print(f"GET / under load        p50       {statistics.median(latencies) * 1000:8.1f} ms")
    print(f"GET / under load        p99       {percentile(latencies, 0.99) * 1000:8.1f} ms  "
          f"({len(latencies)} requests)")  # fmt: skip
    print(f"app peak RSS                      {memory_mb(server.process.pid, 'VmHWM'):8.1f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--viewers", type=int, default=1000)
    parser.add_argument("--token-delay", type=float, default=0.02)
    args = parser.parse_args()

    fake_port = free_port()
    fake = subprocess.Popen([sys.executable, "-m", "tests.fake_llm", "--port", str(fake_port),
                             "--token-delay", str(args.token_delay)])  # fmt: skip
    env = {"OPENAI_BASE_URL": f"http://127.0.0.1:{fake_port}/v1", "DRAFTLINE_MODEL": "fake",
           "DRAFTLINE_MAX_RUNNING_JOBS": str(args.jobs),
           "DRAFTLINE_MAX_WAITING_PER_CLIENT": str(args.jobs),
           "DRAFTLINE_JOBS_PER_MINUTE": str(args.jobs),  # every job and viewer is from 127.0.0.1
           "DRAFTLINE_MAX_STREAMS_PER_CLIENT": str(args.viewers),
           "DRAFTLINE_MAX_STREAMS": str(args.viewers),
           "DRAFTLINE_LOG_LEVEL": "warning"}  # fmt: skip
    with tempfile.TemporaryDirectory() as data:
        server = AppServer(Path(data), env).start()
        try:
            asyncio.run(run(server, args.jobs, args.viewers))
        finally:
            server.stop()
            fake.terminate()
            fake.wait()


if __name__ == "__main__":
    main()
