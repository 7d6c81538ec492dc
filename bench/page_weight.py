"""What a finished job page weighs on the wire: its HTML, its CSS and both htmx files, gzipped.

Runs the real app under uvicorn against the fake LLM, writes one article, then fetches the job
page and every file it links to, as a browser would. A file the app serves gzipped counts as the
bytes it sent; one it serves plain counts as its gzip size (level 6, what proxies use by
default), since any server in front of Draftline compresses text. The budget is 60 KB.

    python -m bench.page_weight [--sections 3]
"""

from __future__ import annotations

import argparse
import gzip
import re
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from tests.app_server import AppServer
from tests.fake_llm import FakeLLM

BUDGET = 60_000  # bytes, compressed
ASSET = re.compile(r'<(?:link|script)\b[^>]*?\b(?:href|src)="((?:https?://[^/"]+)?/static/[^"]+)"')


def weigh(client: httpx.Client, job_path: str) -> list[tuple[str, int, int]]:
    """(path, plain bytes, compressed bytes) for the job page and each static file it loads."""
    page = client.get(job_path, headers={"Accept-Encoding": "gzip"})
    page.raise_for_status()
    rows = [(job_path, *_sizes(page))]
    for url in ASSET.findall(page.text):
        path = urlsplit(url).path
        response = client.get(path, headers={"Accept-Encoding": "gzip"})
        response.raise_for_status()
        rows.append((path, *_sizes(response)))
    return rows


def _sizes(response: httpx.Response) -> tuple[int, int]:
    if response.headers.get("content-encoding") == "gzip":
        return len(response.content), response.num_bytes_downloaded
    return len(response.content), len(gzip.compress(response.content, compresslevel=6))


def report(rows: list[tuple[str, int, int]]) -> str:
    width = max(len(path) for path, _, _ in rows)
    lines = [f"{'file':<{width}}  {'plain':>8}  {'gzipped':>8}"]
    lines += [f"{path:<{width}}  {plain:>8,}  {packed:>8,}" for path, plain, packed in rows]
    plain, packed = sum(r[1] for r in rows), sum(r[2] for r in rows)
    lines.append(f"{'total':<{width}}  {plain:>8,}  {packed:>8,}   (budget {BUDGET:,})")
    return "\n".join(lines)


def finished_job(client: httpx.Client, topic: str = "Tide pools", timeout: float = 60) -> str:
    """Write one article through the JSON API; the path of its job page once it is done."""
    job = client.post("/api/jobs", json={"topic": topic}).json()
    deadline = time.monotonic() + timeout
    while client.get(f"/api/jobs/{job['id']}").json()["status"] != "done":
        if time.monotonic() > deadline:
            raise TimeoutError("the article was not finished in time")
        time.sleep(0.05)
    return f"/jobs/{job['id']}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sections", type=int, default=3)
    args = parser.parse_args()
    fake = FakeLLM(sections=args.sections).start()
    with tempfile.TemporaryDirectory() as data:
        env = {"OPENAI_BASE_URL": fake.base_url, "DRAFTLINE_MODEL": "fake"}
        server = AppServer(Path(data), env).start()
        try:
            with server.client() as client:
                rows = weigh(client, finished_job(client))
        finally:
            server.stop()
            fake.stop()
    print(report(rows))
    total = sum(r[2] for r in rows)
    verdict = "within" if total <= BUDGET else "OVER"
    print(f"\nJob page + CSS + htmx: {total / 1000:.1f} KB gzipped, {verdict} the 60 KB budget")
    sys.exit(0 if total <= BUDGET else 1)


if __name__ == "__main__":
    main()
