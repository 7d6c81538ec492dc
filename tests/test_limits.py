"""Limits that hold: caps on waiting jobs and on starts per minute, on open event streams, and on
how long a request may take to arrive. Each is per client (address), so another address is fine.

The caps on jobs are counted in the app: tested in-process. Open streams and the read deadline
need real connections: tested against the app under uvicorn."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack

import httpx
import pytest

from tests.app_server import ROOT
from tests.fake_llm import free_port
from tests.in_process import another_client
from tests.jobs_api import create
from tests.sse import read_events, wait_for


def from_another_address(server) -> httpx.Client:
    """A client whose requests come from 127.0.0.2: another machine, as far as the app can tell."""
    return server.client(transport=httpx.HTTPTransport(local_address="127.0.0.2"))


def test_resuming_counts_against_the_cap_of_whoever_resumes(start_asgi, llm):
    llm.token_delay = 0.05
    owner = start_asgi(max_running_jobs=1, max_waiting_per_client=1)
    with another_client(owner, "127.0.0.2") as other:
        stopped = create(owner, "Stopped")["id"]
        assert owner.post(f"/api/jobs/{stopped}/cancel").status_code == 200
        running = create(owner, "Running")["id"]  # the owner's one job at a time
        refused = owner.post(f"/api/jobs/{stopped}/resume")
        assert refused.status_code == 429 and "articles waiting" in refused.json()["error"]
        assert owner.post(f"/jobs/{stopped}/resume").status_code == 429  # the Resume button too

        assert other.post(f"/api/jobs/{stopped}/resume").status_code == 202
        assert other.post("/api/jobs", json={"topic": "Theirs"}).status_code == 429  # theirs now
        assert owner.post(f"/api/jobs/{running}/cancel").status_code == 200
        assert owner.post("/api/jobs", json={"topic": "Mine again"}).status_code == 201


def test_job_starts_are_rate_limited_per_client_after_a_burst(start_asgi, llm):
    llm.token_delay = 0.05
    http = start_asgi(jobs_per_minute=3, max_waiting_per_client=50)
    with another_client(http, "127.0.0.2") as other:
        burst = [http.post("/api/jobs", json={"topic": f"Burst {i}"}) for i in range(3)]
        assert [r.status_code for r in burst] == [201, 201, 201]  # a burst up to the limit
        refused = http.post("/api/jobs", json={"topic": "One too many"})
        assert refused.status_code == 429 and "in the last minute" in refused.json()["error"]
        form = http.post("/jobs", data={"topic": "One too many"})
        assert form.status_code == 429 and 'id="topic-error"' in form.text
        stopped = burst[0].json()["id"]
        assert http.post(f"/api/jobs/{stopped}/cancel").status_code == 200
        resumed = http.post(f"/api/jobs/{stopped}/resume")  # a resume starts a job too
        assert resumed.status_code == 429 and "in the last minute" in resumed.json()["error"]
        assert other.post("/api/jobs", json={"topic": "Someone else"}).status_code == 201
        assert len(http.get("/api/jobs").json()["jobs"]) == 4


def test_open_event_streams_are_capped_per_client_and_in_total(start_app, llm):
    llm.token_delay = 0.2  # the job runs for the whole test
    server = start_app(DRAFTLINE_MAX_STREAMS_PER_CLIENT="2", DRAFTLINE_MAX_STREAMS="3")
    with server.client() as http, from_another_address(server) as other, ExitStack() as streams:
        job = create(http)["id"]
        events = f"/jobs/{job}/events"
        mine = [streams.enter_context(http.stream("GET", events)) for _ in range(2)]
        assert [s.status_code for s in mine] == [200, 200]
        refused = http.get(events)
        assert refused.status_code == 429 and "2 live pages open" in refused.text
        theirs = streams.enter_context(other.stream("GET", events))
        assert theirs.status_code == 200  # another address has its own allowance...
        everyone = other.get(events)  # ...until all of them together reach the total
        assert everyone.status_code == 429 and "as many live pages" in everyone.text

        mine[0].close()  # a page closed: its slot comes back
        wait_for(lambda: stream_status(http, events) == 200)
        assert http.post(f"/api/jobs/{job}/cancel").status_code == 200


def stream_status(http: httpx.Client, path: str) -> int:
    with http.stream("GET", path, headers={"Last-Event-ID": "0"}) as response:
        return response.status_code


@pytest.fixture
def draftline(tmp_path, llm) -> Iterator[str]:
    """The app as `draftline` (app.main) serves it, with a 1 s read deadline; yields its URL."""
    port = free_port()
    env = {**os.environ, "DRAFTLINE_PORT": str(port), "DRAFTLINE_READ_TIMEOUT": "1",
           "DRAFTLINE_STORE": f"sqlite:///{tmp_path / 'd.db'}", "OPENAI_BASE_URL": llm.base_url,
           "DRAFTLINE_MODEL": "fake", "DRAFTLINE_LLM_RETRY_WAIT": "0.05"}  # fmt: skip
    log = tmp_path / "draftline.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "draftline"], cwd=ROOT, env=env, stdout=out,
                                   stderr=subprocess.STDOUT)  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: process.poll() is None and answers(url), timeout=30)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=15)
    assert "Traceback" not in log.read_text(), log.read_text()


def answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def seconds_until_dropped(url: str, *parts: bytes, pause: float = 0.0) -> float:
    """Send `parts` (`pause` s apart), then wait; how long until the server hangs up."""
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        started = time.monotonic()
        for part in parts:
            sock.sendall(part)
            time.sleep(pause)
        while sock.recv(65536):  # anything the server answers first, then the end
            pass
        return time.monotonic() - started


def test_requests_that_never_finish_arriving_are_dropped(draftline, llm):
    host = f"Host: {draftline.removeprefix('http://')}\r\n".encode()
    half_headers = [b"GET / HTTP/1.1\r\n" + host]
    assert 0.5 < seconds_until_dropped(draftline, *half_headers) < 15
    half_body = [b"POST /api/jobs HTTP/1.1\r\n" + host + b"Content-Type: application/json\r\n"
                 b"Content-Length: 100\r\n\r\n", b'{"topic": "Tide']  # fmt: skip
    assert 0.5 < seconds_until_dropped(draftline, *half_body) < 15
    # A slow client that does finish is served, and an answer may take as long as it takes.
    slow = [b"GET /healthz HTTP/1.1\r\n", host, b"Connection: close\r\n\r\n"]
    assert seconds_until_dropped(draftline, *slow, pause=0.2) < 15
    llm.token_delay = 0.03  # the job's event stream stays open well past the 1 s deadline
    with httpx.Client(base_url=draftline, timeout=30) as http:
        job = create(http)["id"]
        started = time.monotonic()
        assert read_events(http, job)[-1].name == "done"
        assert time.monotonic() - started > 1.5
        assert http.get("/api/jobs").json()["jobs"][0]["topic"] == "Tide pools"  # not "Tide"
