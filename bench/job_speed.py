"""How close a job's wall time is to the LLM's own critical path, and how fast the job page starts.

Runs the real app under uvicorn against the fake LLM with a fixed time per token. For each job:
  wall      = POST /jobs -> the `done` event on the job's SSE stream
  critical  = outline call + the longest section call + style call (as timed by the fake server)
  overhead  = wall / critical - 1        (the target is under 10 %)
  first byte = POST /jobs -> first byte of the job page (303, then GET /jobs/{id})

    python -m bench.job_speed [--jobs 5] [--token-delay 0.01] [--sections 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from tests.app_server import AppServer
from tests.fake_llm import FakeLLM
from tests.sse import iter_events


def run_job(client, fake: FakeLLM, topic: str) -> tuple[float, float, float]:
    fake.calls.clear()
    started = time.perf_counter()
    response = client.post("/jobs", data={"topic": topic})
    job_url = response.headers["location"]
    with client.stream("GET", job_url) as page:
        next(page.iter_raw(1))
        first_byte = time.perf_counter() - started
    with client.stream("GET", f"{job_url}/events") as stream:
        for event in iter_events(stream):
            if event.name == "done":
                break
    wall = time.perf_counter() - started
    duration = {kind: [c.finished - c.started for c in fake.calls_of(kind)]
                for kind in ("outline", "section", "style")}  # fmt: skip
    critical = duration["outline"][0] + max(duration["section"]) + duration["style"][0]
    return wall, critical, first_byte


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=5)
    parser.add_argument("--token-delay", type=float, default=0.01)
    parser.add_argument("--sections", type=int, default=5)
    args = parser.parse_args()

    fake = FakeLLM(token_delay=args.token_delay, sections=args.sections).start()
    with tempfile.TemporaryDirectory() as data:
        env = {"OPENAI_BASE_URL": fake.base_url, "DRAFTLINE_MODEL": "fake"}
        server = AppServer(Path(data), env).start()
        try:
            with server.client(follow_redirects=False) as client:
                run_job(client, fake, "Warm-up")
                results = [run_job(client, fake, f"Benchmark topic {i}") for i in range(args.jobs)]
        finally:
            server.stop()
            fake.stop()

    print(f"{args.jobs} jobs, {args.sections} sections each, "
          f"{args.token_delay * 1000:g} ms per token\n")  # fmt: skip
    print(f"{'job':>4} {'wall s':>8} {'critical s':>11} {'overhead':>9} {'first byte ms':>14}")
    for i, (wall, critical, first_byte) in enumerate(results, 1):
        print(f"{i:>4} {wall:>8.3f} {critical:>11.3f} {wall / critical - 1:>9.1%} "
              f"{first_byte * 1000:>14.1f}")  # fmt: skip
    overheads = [wall / critical - 1 for wall, critical, _ in results]
    first_bytes = [fb * 1000 for _, _, fb in results]
    print(f"\nmedian overhead over the LLM critical path: {statistics.median(overheads):.1%} "
          f"(max {max(overheads):.1%})")  # fmt: skip
    print(f"median POST /jobs -> first byte of job page: {statistics.median(first_bytes):.1f} ms "
          f"(max {max(first_bytes):.1f} ms)")  # fmt: skip


if __name__ == "__main__":
    main()
