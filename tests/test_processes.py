"""Several app processes on one Redis: any process serves any job, the line and the caps are
everyone's, and a process that dies loses nothing finished.

Each test starts real app processes under uvicorn (tests/app_server.py) on one database of the
session's real redis-server, with the fake LLM on the wire.
"""

from __future__ import annotations

import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.app_server import AppServer
from tests.fake_llm import FakeLLM
from tests.jobs_api import api, create, finished
from tests.redis_server import RedisServer
from tests.sse import iter_events, read_events, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def start_process(start_app, redis_server: RedisServer, llm: FakeLLM):
    """Start an app process on this test's Redis database (the same one for every call)."""
    url = redis_server.fresh_url()

    def start(**env: str) -> AppServer:
        return start_app(DRAFTLINE_STORE=url, **env)

    return start


def running_here(server: AppServer, job_id: str) -> bool:
    return f"job {job_id} running here" in server.log()


def test_a_job_started_on_one_process_streams_to_done_from_another(start_process, llm):
    a, b = start_process(), start_process()
    llm.token_delay = 0.01
    with a.client() as on_a, b.client() as on_b:
        job = create(on_a)
        events = read_events(on_b, job["id"])
        assert events[0].name == "update" and events[-1].name == "done"
        assert "Friendly:" in events[-1].data  # the styled article, drawn by B
        assert api(on_a, job["id"]) == api(on_b, job["id"])
        assert api(on_b, job["id"])["status"] == "done"
        pages = [http.get(f"/jobs/{job['id']}").text for http in (on_a, on_b)]
        assert pages[0] == pages[1] and "Friendly:" in pages[0]
        listed = [http.get("/api/jobs").json()["jobs"] for http in (on_a, on_b)]
        assert listed[0] == listed[1] and [j["id"] for j in listed[0]] == [job["id"]]


def test_a_viewer_that_reconnects_to_the_other_process_gets_exactly_what_it_missed(
    start_process, llm
):
    a, b = start_process(), start_process()
    llm.token_delay = 0.02
    with a.client() as on_a, b.client() as on_b:
        job = create(on_a)
        first = read_events(on_a, job["id"], limit=3)  # then the connection drops
        seen = first[-1].id
        rest = read_events(on_b, job["id"], last_event_id=seen)
        ids = [int(e.id) for e in rest]
        assert ids == sorted(set(ids)) and ids[0] > int(seen), ids  # nothing twice, in order
        assert rest[0].name == "update" and rest[-1].name == "done"
        # Replayed from the same cursor once the job is done, both send the same: the latest
        # event of each part after it (the log is compacted), every one of them sent live too.
        replays = [[(e.id, e.name, e.data) for e in read_events(http, job["id"], seen)]
                   for http in (on_a, on_b)]  # fmt: skip
        assert replays[0] == replays[1]
        assert set(replays[1]) <= {(e.id, e.name, e.data) for e in rest}


def test_cancel_on_one_process_stops_the_llm_calls_of_the_process_running_the_job(
    start_process, llm
):
    a = start_process()
    llm.token_delay = 0.2  # a section takes ~10 s
    with a.client() as on_a:
        job = create(on_a)
        wait_for(lambda: api(on_a, job["id"])["step"] == "sections", timeout=30)
        b = start_process()  # a process that starts later leaves A's job running
        assert api(on_a, job["id"])["status"] == "running"
        with b.client() as on_b:
            streaming = wait_for(lambda: [c for c in llm.calls_of("section") if not c.ended])
            asked = time.monotonic()
            cancelled = on_b.post(f"/api/jobs/{job['id']}/cancel")
            assert cancelled.status_code == 200, cancelled.text
            assert cancelled.json()["status"] == "cancelled"
            wait_for(lambda: all(c.ended for c in streaming), timeout=5)
            stopped_after = max(c.ended for c in streaming) - asked
            assert stopped_after < 1.5, f"A's LLM calls went on {stopped_after:.2f} s"
            assert api(on_a, job["id"])["status"] == "cancelled"
            # B resumes it; its outline is not paid for twice, wherever it runs now.
            llm.token_delay = 0.0
            outlines = len(llm.calls_of("outline"))
            assert on_b.post(f"/api/jobs/{job['id']}/resume").status_code == 202
            assert finished(on_b, job["id"])["status"] == "done"
            assert len(llm.calls_of("outline")) == outlines
            # And B deletes it, for every process.
            assert on_b.delete(f"/api/jobs/{job['id']}").status_code == 204
            assert on_a.get(f"/api/jobs/{job['id']}").status_code == 404


def test_a_process_killed_mid_job_loses_nothing_finished(start_process, llm):
    a = start_process(DRAFTLINE_SECTION_CONCURRENCY="1")  # one section after the other
    llm.token_delay = 0.01
    llm.section_words = 300  # ~3 s a section
    with a.client() as on_a:
        job = create(on_a)
        wait_for(lambda: _sections_done(on_a, job["id"]) >= 1, timeout=30)
        b = start_process(DRAFTLINE_SECTION_CONCURRENCY="1")
        before = api(on_a, job["id"])
        a.kill()  # kill -9, while the next section is being written
        assert before["status"] == "running" and before["step"] == "sections"
    killed = time.monotonic()
    with b.client() as on_b:
        lost = wait_for(lambda: (j := api(on_b, job["id"]))["status"] == "interrupted" and j,
                        timeout=20)  # fmt: skip
        took = time.monotonic() - killed
        assert took < 15, f"interrupted after {took:.1f} s"
        done_before = _sections_done(on_b, job["id"])
        assert lost["outline"] == before["outline"] and done_before >= 1
        assert [s["text"] for s in lost["sections"]][:1] == [s["text"] for s in before["sections"]][:1]
        calls = len(llm.calls)
        llm.token_delay = 0.0
        assert on_b.post(f"/api/jobs/{job['id']}/resume").status_code == 202
        events = read_events(on_b, job["id"])
        assert events[-1].name == "done"
        ended = api(on_b, job["id"])
        assert ended["status"] == "done" and ended["article"]
        paid = [c.kind for c in llm.calls[calls:]]
        assert "outline" not in paid  # the outline and finished sections are not paid twice
        assert paid.count("section") == len(before["outline"]) - done_before
        assert paid.count("style") == 1


def test_the_line_and_its_places_are_the_same_from_every_process(start_process, llm):
    a = start_process(DRAFTLINE_MAX_RUNNING_JOBS="1")
    b = start_process(DRAFTLINE_MAX_RUNNING_JOBS="1")
    llm.token_delay = 0.05
    with a.client() as on_a, b.client() as on_b:
        jobs = [create(on_a if n % 2 else on_b, f"Topic {n}")["id"] for n in range(4)]
        wait_for(lambda: sum(api(on_a, j)["status"] == "running" for j in jobs) == 2)
        waiting = [j for j in jobs if api(on_a, j)["status"] == "queued"]
        assert len(waiting) == 2  # one running per process, two in line
        for http in (on_a, on_b):
            pages = [http.get(f"/jobs/{j}").text for j in waiting]
            assert "Waiting in line: number 1." in pages[0], pages[0]
            assert "Waiting in line: number 2." in pages[1], pages[1]
        for job_id in jobs:
            assert finished(on_b, job_id, timeout=60)["status"] == "done"
        assert running_here(a, jobs[0]) + running_here(b, jobs[0]) == 1


def test_a_clients_cap_counts_its_jobs_on_every_process(start_process, llm):
    a = start_process(DRAFTLINE_MAX_WAITING_PER_CLIENT="2")
    b = start_process(DRAFTLINE_MAX_WAITING_PER_CLIENT="2")
    llm.token_delay = 0.05
    with a.client() as on_a, b.client() as on_b:
        create(on_a, "One")
        create(on_b, "Two")
        third = on_a.post("/api/jobs", json={"topic": "Three"})
        assert third.status_code == 429 and "2 articles waiting" in third.json()["error"]


def test_more_than_one_worker_on_sqlite_is_refused_with_a_message(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "DRAFTLINE_STORE": f"sqlite:///{tmp_path / 'x.db'}",
           "DRAFTLINE_LOCAL_MODEL": "off"}  # fmt: skip
    ran = subprocess.run([sys.executable, "-m", "draftline", "--workers", "2"], env=env,
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert ran.returncode != 0
    assert "DRAFTLINE_STORE=redis://" in ran.stderr and "--workers 2" in ran.stderr
    assert "Traceback" not in ran.stderr


def test_a_second_process_on_the_same_sqlite_file_is_refused(start_app, llm, tmp_path):
    first = start_app()
    second = AppServer(tmp_path, {"OPENAI_BASE_URL": llm.base_url, "DRAFTLINE_MODEL": "fake"})
    with pytest.raises(RuntimeError, match="exited early") as refused:
        second.start()
    assert "Another Draftline process is already using" in str(refused.value)
    assert "DRAFTLINE_STORE=redis://" in str(refused.value)
    with first.client() as http:
        assert http.get("/healthz").status_code == 200


def test_draftline_with_workers_serves_on_redis(redis_server, llm, tmp_path):
    from tests.fake_llm import free_port

    port = free_port()
    env = {"PATH": "/usr/bin:/bin", "DRAFTLINE_STORE": redis_server.fresh_url(),
           "OPENAI_BASE_URL": llm.base_url, "DRAFTLINE_MODEL": "fake",
           "DRAFTLINE_PORT": str(port)}  # fmt: skip
    with open(tmp_path / "workers.log", "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "draftline", "--workers", "2"],
                                   env=env, stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: _answers(f"{url}/healthz"), timeout=30)
        with httpx.Client(base_url=url, timeout=30) as http:
            job = create(http)
            with http.stream("GET", f"/jobs/{job['id']}/events") as stream:
                names = [e.name for e in iter_events(stream)]
            assert names[-1] == "done" and api(http, job["id"])["status"] == "done"
    finally:
        process.terminate()
        process.wait(20)
    logged = (tmp_path / "workers.log").read_text()
    assert logged.count("Application startup complete") == 2, logged
    assert "Traceback" not in logged, logged


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _sections_done(http: httpx.Client, job_id: str) -> int:
    """Sections finished (not just begun), as the job's page shows them."""
    return http.get(f"/jobs/{job_id}").text.count('class="section is-done"')


def test_a_redis_restart_loses_nothing_finished(tmp_path, start_app, llm):
    """kill -9 redis-server mid-load, then start it again on the same data (README's AOF): the
    finished articles are all there, the running jobs end interrupted or done, and viewers,
    waiting through it, get `done`; meanwhile pages answer 503 with a message."""
    (tmp_path / "redis").mkdir()
    redis = RedisServer(tmp_path / "redis", persist=True).start()
    try:
        a, b = (start_app(DRAFTLINE_STORE=redis.url()) for _ in range(2))
        with a.client() as on_a, b.client() as on_b:
            done = [finished(on_a, create(on_a, f"Done {n}")["id"]) for n in range(3)]
            llm.token_delay = 0.05
            running = [create(on_b, f"Running {n}")["id"] for n in range(4)]
            wait_for(lambda: all(api(on_a, j)["status"] == "running" for j in running))
            with ThreadPoolExecutor(len(running)) as viewers:
                ends = [viewers.submit(_last_event_through_outages, b.url, j) for j in running]
                time.sleep(0.5)
                redis.kill()
                away = wait_for(lambda: (page := on_a.get("/")).status_code == 503 and page)
                assert "cannot reach its Redis store" in away.text and "Traceback" not in away.text
                answer = on_b.get(f"/api/jobs/{running[0]}")
                assert answer.status_code == 503 and "Redis" in answer.json()["error"]
                time.sleep(1)
                llm.token_delay = 0.0
                redis.start()
                assert [e.result(timeout=60) for e in ends] == ["done"] * len(running)
            for job in done:
                kept = api(on_b, job["id"])
                assert (kept["status"], kept["article"]) == ("done", job["article"])
            ended = [finished(on_a, j, timeout=30)["status"] for j in running]
            assert set(ended) <= {"interrupted", "done"}, ended
            assert on_a.get("/").status_code == on_b.get("/").status_code == 200
        for server in (a, b):  # while Redis is there to say goodbye to
            server.stop()
            assert "Application shutdown complete" in server.log()
    finally:
        redis.stop()


def _last_event_through_outages(url: str, job_id: str) -> str:
    """A viewer that, like a browser, reconnects (with Last-Event-ID) whenever its stream ends
    without `done`; the name of the last event it gets."""
    last_id, deadline = None, time.monotonic() + 60
    with httpx.Client(base_url=url, timeout=30) as http:
        while time.monotonic() < deadline:
            try:
                for event in read_events(http, job_id, last_event_id=last_id, timeout=60):
                    last_id = event.id or last_id
                    if event.name == "done":
                        return "done"
            except (httpx.HTTPError, AssertionError):
                pass  # refused (503) or cut off while Redis was away: try again
            time.sleep(0.2)
    return "no done"
