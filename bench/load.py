"""Many jobs and many viewers, on one app process or several sharing Redis.

Starts the fake LLM and the app processes, submits JOBS jobs at once (spread over the processes,
as a load balancer would) and opens VIEWERS event streams spread over the jobs and the processes
(raw asyncio sockets, so the client stays cheap), while a prober fetches GET / every 50 ms from
each process in turn. Reports events delivered per second, the delay from a node's report (the
event's publish time, sent as an SSE comment) to a viewer receiving it, GET / latency under load,
and the app processes' peak RSS and CPU seconds per job (and redis-server's).

    python -m bench.load [--jobs 100] [--viewers 1000] [--token-delay 0.02]
                         [--setup sqlite] [--setup redis:2] ...

Each --setup is `sqlite` (one process) or `redis:N` (N processes on one redis-server that the
bench starts, with AOF as README's recipe has it); several run one after the other in one run,
so their figures compare. The default compares sqlite, redis:1 and redis:2.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.figures import machine, memory_mb
from tests.app_server import AppServer
from tests.fake_llm import free_port
from tests.redis_server import RedisServer


@dataclass
class Figures:
    setup: str
    done: int
    others: str  # how the jobs that are not done ended, e.g. "3 interrupted"
    elapsed: float
    events: int
    delay_p50: float
    delay_p99: float
    get_p50: float
    get_p99: float
    rss_mb: float  # peak, all app processes together
    cpu_per_job: float  # app processes' CPU seconds (user + system) per job
    redis_cpu_per_job: float | None  # redis-server's, where there is one

    @property
    def rate(self) -> float:
        return self.events / self.elapsed


async def open_stream(port: int, job_id: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A job's event stream, on a raw socket: a client that costs the load next to nothing."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=2**20)
    request = f"GET /jobs/{job_id}/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
    writer.write(f"{request}Accept: text/event-stream\r\n\r\n".encode())
    await writer.drain()
    return reader, writer


async def viewer(port: int, job_id: str, delays: list[float], counts: list[int]) -> None:
    reader, writer = await open_stream(port, job_id)
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


def cpu_seconds(pid: int) -> float:
    """A process's CPU time so far (user + system), from Linux's /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def probe(urls: list[str], latencies: list[float], stop: asyncio.Event) -> None:
    clients = [httpx.AsyncClient(base_url=url) for url in urls]
    try:
        for http in itertools.cycle(clients):
            if stop.is_set():
                return
            started = time.perf_counter()
            assert (await http.get("/")).status_code == 200
            latencies.append(time.perf_counter() - started)
            await asyncio.sleep(0.05)
    finally:
        for http in clients:
            await http.aclose()


async def load(servers: list[AppServer], jobs: int, viewers: int, setup: str,
               redis: RedisServer | None) -> Figures:  # fmt: skip
    async with httpx.AsyncClient(timeout=60) as http:
        for server in servers:  # warm each process up
            for _ in range(5):
                await http.get(f"{server.url}/")
        cpu_before = sum(cpu_seconds(s.process.pid) for s in servers)
        redis_before = cpu_seconds(redis.process.pid) if redis else 0.0
        started = time.perf_counter()
        created = await asyncio.gather(*(
            http.post(f"{servers[i % len(servers)].url}/api/jobs", json={"topic": f"Load {i}"})
            for i in range(jobs)
        ))  # fmt: skip
        ids = [r.json()["id"] for r in created]
    delays: list[float] = []
    counts = [0]
    latencies: list[float] = []
    stop = asyncio.Event()
    prober = asyncio.create_task(probe([s.url for s in servers], latencies, stop))
    await asyncio.gather(*(
        viewer(servers[i % len(servers)].port, ids[i % jobs], delays, counts)
        for i in range(viewers)
    ))  # fmt: skip
    elapsed = time.perf_counter() - started
    stop.set()
    await prober
    cpu = sum(cpu_seconds(s.process.pid) for s in servers) - cpu_before
    redis_cpu = cpu_seconds(redis.process.pid) - redis_before if redis else None
    async with httpx.AsyncClient(base_url=servers[0].url) as http:
        statuses = [(await http.get(f"/api/jobs/{job_id}")).json()["status"] for job_id in ids]
    return Figures(
        setup=setup, done=statuses.count("done"), elapsed=elapsed, events=counts[0],
        others=", ".join(f"{n} {status}" for status, n in Counter(statuses).items()
                         if status != "done"),
        delay_p50=percentile(delays, 0.5), delay_p99=percentile(delays, 0.99),
        get_p50=statistics.median(latencies), get_p99=percentile(latencies, 0.99),
        rss_mb=sum(memory_mb(s.process.pid, "VmHWM") for s in servers), cpu_per_job=cpu / jobs,
        redis_cpu_per_job=redis_cpu / jobs if redis_cpu is not None else None,
    )  # fmt: skip


def app_env(llm_url: str, jobs: int, viewers: int) -> dict[str, str]:
    """The app's settings for a load: every job and viewer is from 127.0.0.1, so its limits
    are raised to the load's size."""
    return {"OPENAI_BASE_URL": llm_url, "DRAFTLINE_MODEL": "fake",
            "DRAFTLINE_MAX_RUNNING_JOBS": str(jobs), "DRAFTLINE_MAX_WAITING_PER_CLIENT": str(jobs),
            "DRAFTLINE_JOBS_PER_MINUTE": str(jobs), "DRAFTLINE_MAX_STREAMS_PER_CLIENT": str(viewers),
            "DRAFTLINE_MAX_STREAMS": str(viewers), "DRAFTLINE_LOG_LEVEL": "warning"}  # fmt: skip


def run_setup(setup: str, args: argparse.Namespace, llm_url: str, data: Path) -> Figures:
    kind, _, count = setup.partition(":")
    processes = int(count or 1)
    if kind not in ("sqlite", "redis") or (kind == "sqlite" and processes != 1):
        raise SystemExit(f"--setup {setup}: use sqlite, or redis:N")
    env = app_env(llm_url, args.jobs, args.viewers)
    here = data / setup.replace(":", "-")
    here.mkdir()
    redis = None
    if kind == "redis":
        (here / "redis").mkdir()
        redis = RedisServer(here / "redis", persist=True).start()
        env["DRAFTLINE_STORE"] = redis.url()
    servers = []
    try:
        servers = [AppServer(here, env).start() for _ in range(processes)]
        return asyncio.run(load(servers, args.jobs, args.viewers, setup, redis))
    finally:
        for server in servers:
            server.stop()
        if redis is not None:
            redis.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--viewers", type=int, default=1000)
    parser.add_argument("--token-delay", type=float, default=0.02)
    parser.add_argument("--setup", action="append", metavar="sqlite|redis:N",
                        help="what to load (repeatable; default: sqlite, redis:1, redis:2)")
    args = parser.parse_args()
    setups = args.setup or ["sqlite", "redis:1", "redis:2"]

    fake_port = free_port()
    fake = subprocess.Popen([sys.executable, "-m", "tests.fake_llm", "--port", str(fake_port),
                             "--token-delay", str(args.token_delay)])  # fmt: skip
    results = []
    print(machine())
    print(f"{args.jobs} jobs, {args.viewers} viewers, {args.token_delay * 1000:g} ms per token")
    try:
        with tempfile.TemporaryDirectory() as data:
            for setup in setups:
                try:
                    results.append(run_setup(setup, args, f"http://127.0.0.1:{fake_port}/v1",
                                             Path(data)))  # fmt: skip
                except httpx.HTTPError as exc:  # overloaded: say so, and measure the rest
                    print(f"  {setup}: gave up, the app did not keep up ({exc!r})", flush=True)
                    continue
                print(f"  {setup}: done", flush=True)
    finally:
        fake.terminate()
        fake.wait()
    rows = [
        ("jobs done", lambda f: f"{f.done}/{args.jobs}"),
        ("the others", lambda f: f.others or "-"),
        ("wall time (s)", lambda f: f"{f.elapsed:.1f}"),
        ("events delivered", lambda f: f"{f.events:,}"),
        ("events/s", lambda f: f"{f.rate:,.0f}"),
        ("report -> viewer p50 (ms)", lambda f: f"{f.delay_p50 * 1000:.0f}"),
        ("report -> viewer p99 (ms)", lambda f: f"{f.delay_p99 * 1000:.0f}"),
        ("GET / p50 (ms)", lambda f: f"{f.get_p50 * 1000:.0f}"),
        ("GET / p99 (ms)", lambda f: f"{f.get_p99 * 1000:.0f}"),
        ("peak RSS, all processes (MB)", lambda f: f"{f.rss_mb:.0f}"),
        ("app CPU per job (s)", lambda f: f"{f.cpu_per_job:.3f}"),
        ("redis-server CPU per job (s)",
         lambda f: "-" if f.redis_cpu_per_job is None else f"{f.redis_cpu_per_job:.3f}"),
    ]
    print(f"{'':30}" + "".join(f"{f.setup:>12}" for f in results))
    for label, show in rows:
        print(f"{label:30}" + "".join(f"{show(f):>12}" for f in results))
    by_setup = {f.setup: f for f in results}
    if "redis:1" in by_setup:
        for setup, figures in by_setup.items():
            if setup != "redis:1":
                print(f"events/s, {setup} / redis:1: {figures.rate / by_setup['redis:1'].rate:.2f}")


if __name__ == "__main__":
    main()
