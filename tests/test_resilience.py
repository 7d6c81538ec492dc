"""Nothing lost, nothing stuck: reconnects, many viewers, restarts, faults, cancel, limits.

Streams, restarts and signals need the app under uvicorn (`client`, `start_app`); the rest is
tested in-process (`asgi`, `start_asgi`), jobs running on the app's own event loop."""

from __future__ import annotations

import random
import signal
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from tests.html_checks import active_markup
from tests.jobs_api import api, create, finished
from tests.page_state import PageState
from tests.sse import iter_events, read_events, wait_for


def events_in_store(database: Path, job_id) -> list[str]:
    with sqlite3.connect(database) as db:
        return [key for (key,) in db.execute("SELECT key FROM events WHERE job_id = ?", (job_id,))]


# Reconnect and many viewers


def watch_with_random_drops(server, job_id: str, rng: random.Random) -> tuple[PageState, int]:
    """Follow a job like a browser on a bad network; return the page it ends with and the drops."""
    with server.client() as http:
        page = PageState(http.get(f"/jobs/{job_id}").text)
        last_id, drops = None, 0
        while True:
            # EventSource's own retry sends Last-Event-ID; htmx's reconnect and a refresh do not.
            resume_from = last_id if rng.random() < 0.5 else None
            if resume_from is None and last_id is not None:
                page = PageState(http.get(f"/jobs/{job_id}").text)  # a refresh starts over
            events = read_events(http, job_id, last_event_id=resume_from, limit=rng.randint(1, 4))
            for event in events:
                page.apply(event.data)
                last_id = event.id
            if events[-1].name == "done":
                return page, drops
            drops += 1


def test_dropped_streams_always_reassemble_the_final_page(app_server, llm):
    llm.token_delay, llm.section_words = 0.01, 30
    with app_server.client() as http:
        jobs = [create(http, f"Topic {i}")["id"] for i in range(10)]
    results: dict[str, tuple[PageState, int]] = {}

    def watch(job_id: str, seed: int) -> None:
        results[job_id] = watch_with_random_drops(app_server, job_id, random.Random(seed))

    threads = [threading.Thread(target=watch, args=(job_id, i)) for i, job_id in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert sum(drops for _, drops in results.values()) >= 50
    with app_server.client() as http:
        for job_id in jobs:
            assert api(http, job_id)["status"] == "done"
            final = PageState(http.get(f"/jobs/{job_id}").text)
            assert results[job_id][0].parts == final.parts


def test_stored_event_history_is_bounded_per_job(app_server, client, llm):
    llm.token_delay, llm.sections, llm.section_words = 0.005, 5, 80  # hundreds of streamed updates
    job = create(client)
    events = read_events(client, job["id"])
    keys = events_in_store(app_server.data_dir / "draftline.db", job["id"])
    assert sorted(keys) == sorted(["job", "outline", "article", "done"] + [f"section:{i}" for i in range(5)])
    assert int(events[-1].id) > 3 * len(keys)  # far more events were sent than are kept


def test_many_viewers_do_not_slow_the_job(app_server, client, llm):
    llm.token_delay = 0.01
    started = time.monotonic()
    read_events(client, create(client, "Alone")["id"])
    alone = time.monotonic() - started

    job = create(client, "Crowded")
    finished: list[str] = []

    def viewer(leave_early: bool) -> None:
        with app_server.client() as http:
            events = read_events(http, job["id"], limit=2 if leave_early else None)
            finished.append(events[-1].name)

    viewers = [threading.Thread(target=viewer, args=(i % 3 == 0,)) for i in range(40)]
    started = time.monotonic()
    for thread in viewers:
        thread.start()
    read_events(client, job["id"])
    crowded = time.monotonic() - started
    for thread in viewers:
        thread.join(timeout=30)
    assert finished.count("done") == 40 - len(range(0, 40, 3))
    assert crowded < alone * 1.5 + 0.5, (alone, crowded)


# Restart and shutdown


def test_kill_9_mid_job_then_restart_keeps_work_and_resume_completes(start_app, llm):
    llm.token_delay, llm.section_words = 0.02, 10
    server = start_app()
    with server.client() as http:
        finished = create(http, "Finished before the crash")["id"]
        read_events(http, finished)
        llm.section_words = 200  # sections 2 and 3 now take seconds; section 1 is quick
        victim = create(http, "Killed mid-job")["id"]
        wait_for(lambda: any(s["text"] and len(s["text"]) > 20 for s in api(http, victim)["sections"][1:])
                 and api(http, victim)["sections"][0]["text"].endswith("."))  # fmt: skip
        before = api(http, victim)
    server.kill()
    calls_before = {kind: len(llm.calls_of(kind)) for kind in ("outline", "section", "style")}

    server.start()
    with server.client() as http:
        assert api(http, finished)["status"] == "done"
        after = api(http, victim)
        assert after["status"] == "interrupted"
        assert after["outline"] == before["outline"]
        assert after["sections"][0] == before["sections"][0]  # the finished section survived
        assert read_events(http, victim)[-1].name == "done"  # nothing left waiting
        page = http.get(f"/jobs/{victim}").text
        assert "Resume</button>" in page and "sse-connect" not in page

        llm.section_words = 10
        assert http.post(f"/jobs/{victim}/resume").status_code == 303
        read_events(http, victim)
        resumed = api(http, victim)
    assert resumed["status"] == "done"
    assert len(llm.calls_of("outline")) == calls_before["outline"]  # not paid for twice
    assert len(llm.calls_of("section")) - calls_before["section"] == 2  # only the unfinished two
    assert resumed["sections"][0] == before["sections"][0]


def test_sigterm_interrupts_jobs_ends_streams_with_done_and_exits(start_app, llm):
    llm.token_delay = 0.05
    server = start_app()
    with server.client() as http:
        job = create(http)["id"]
        received: list = []

        def listen() -> None:
            with server.client() as viewer, viewer.stream("GET", f"/jobs/{job}/events") as stream:
                for event in iter_events(stream):
                    received.append(event)

        listener = threading.Thread(target=listen)
        listener.start()
        wait_for(lambda: api(http, job)["step"] == "sections")
    started = time.monotonic()
    assert server.stop(signal.SIGTERM) in (0, -signal.SIGTERM)  # uvicorn re-raises it when done
    assert time.monotonic() - started < 5
    assert "Application shutdown complete" in server.log()  # graceful, not killed
    listener.join(timeout=5)
    assert received[-1].name == "done" and "interrupted" in received[-1].data

    server.start()
    with server.client() as http:
        assert api(http, job)["status"] == "interrupted"


# A flaky or slow LLM


def test_thirty_percent_failing_calls_still_finish_nearly_every_job(start_asgi, llm):
    llm.fail_rate = 0.3
    http = start_asgi(llm_timeout=1, llm_retries=5, max_running_jobs=10)
    jobs = [create(http, f"Flaky {i}")["id"] for i in range(20)]
    final = wait_for(lambda: (s := [api(http, j) for j in jobs]) and all(
        j["status"] in ("done", "failed") for j in s) and s, timeout=120)  # fmt: skip
    faults = [c.fault for c in llm.calls if c.fault]
    assert {"500", "429", "drop", "hang"} <= set(faults)  # every kind of fault was met
    done = sum(j["status"] == "done" for j in final)
    assert done >= 18, [j["error"] for j in final if j["status"] == "failed"]


def test_a_failed_step_shows_why_and_retry_continues_from_it(client, llm):
    llm.error_status, llm.error_kinds = 500, ("style",)
    job = create(client)["id"]
    assert read_events(client, job)[-1].name == "done"
    failed = api(client, job)
    assert failed["status"] == "failed" and failed["step"] == "style"
    assert failed["error"] == "The LLM provider had an internal error (500)."
    page = client.get(f"/jobs/{job}").text
    assert "internal error (500)" in page and "Retry</button>" in page

    llm.error_status = None
    resumed = client.post(f"/api/jobs/{job}/resume")
    assert resumed.status_code == 202 and resumed.json()["status"] == "queued"
    read_events(client, job)
    assert api(client, job)["status"] == "done"
    assert len(llm.calls_of("outline")) == 1 and len(llm.calls_of("section")) == 3


def test_a_job_past_its_deadline_fails_instead_of_waiting_forever(start_app, llm):
    llm.token_delay = 0.5
    server = start_app(DRAFTLINE_JOB_DEADLINE="1.5")
    with server.client() as http:
        job = create(http)["id"]
        started = time.monotonic()
        assert read_events(http, job)[-1].name == "done"
        assert time.monotonic() - started < 4
        final = api(http, job)
    assert final["status"] == "failed" and "DRAFTLINE_JOB_DEADLINE" in final["error"]


# Cancel, limits, history


def test_cancel_stops_llm_calls_promptly_and_keeps_what_was_written(asgi, llm):
    llm.token_delay = 0.05
    job = create(asgi)["id"]
    wait_for(lambda: any(len(s["text"]) > 30 for s in api(asgi, job)["sections"]))
    started = time.monotonic()
    cancelled = asgi.post(f"/api/jobs/{job}/cancel")
    assert time.monotonic() - started < 1
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    calls = len(llm.calls)
    time.sleep(0.3)
    assert len(llm.calls) == calls  # no new calls
    assert all(c.finished == 0.0 for c in llm.calls_of("section"))  # in-flight streams were cut
    kept = api(asgi, job)
    assert any(len(s["text"]) > 30 for s in kept["sections"])
    assert "Resume</button>" in asgi.get(f"/jobs/{job}").text


def test_jobs_beyond_the_cap_wait_in_line_and_show_their_place(start_asgi, llm):
    llm.token_delay = 0.01
    http = start_asgi(max_running_jobs=1)
    jobs = [create(http, f"Queue {i}")["id"] for i in range(3)]
    assert api(http, jobs[2])["status"] == "queued"
    assert "number 2" in http.get(f"/jobs/{jobs[2]}").text
    finished(http, jobs[2])
    assert [api(http, j)["status"] for j in jobs] == ["done"] * 3


def test_a_client_with_too_many_waiting_jobs_gets_429(start_asgi, llm):
    llm.token_delay = 0.05
    http = start_asgi(max_running_jobs=1, max_waiting_per_client=2)
    create(http, "One"), create(http, "Two")
    refused = http.post("/api/jobs", json={"topic": "Three"})
    assert refused.status_code == 429 and "2 articles waiting" in refused.json()["error"]
    form = http.post("/jobs", data={"topic": "Three"})
    assert form.status_code == 429 and 'id="topic-error"' in form.text


@pytest.mark.parametrize(
    ("action", "state"), [("cancel", "done"), ("resume", "running"), ("resume", "done")]
)
def test_actions_in_the_wrong_state_are_409_with_a_reason(asgi, llm, action, state):
    llm.token_delay = 0.05 if state == "running" else 0
    job = create(asgi)["id"]
    if state == "done":
        finished(asgi, job)
    response = asgi.post(f"/api/jobs/{job}/{action}")
    assert response.status_code == 409 and response.json()["error"]
    page = asgi.post(f"/jobs/{job}/{action}")
    assert page.status_code == 409 and response.json()["error"] in page.text


def test_history_lists_newest_first_paginates_and_deletes(asgi, llm, tmp_path):
    ids = [create(asgi, f"History {i:02}")["id"] for i in range(23)]
    for job in ids:
        finished(asgi, job)
    first = asgi.get("/jobs").text
    assert first.index("History 22") < first.index("History 21")
    assert "Page 1 of 2" in first and "History 02" not in first
    assert "History 02" in asgi.get("/jobs?page=2").text
    assert asgi.get("/jobs?page=banana").status_code == 200
    assert asgi.get("/jobs?page=99999999999999999999999").status_code == 200
    listing = asgi.get("/api/jobs?page=99999999999999999999999").json()
    assert listing["page"] == listing["pages"] == 2 and len(listing["jobs"]) == 3

    assert asgi.post(f"/jobs/{ids[0]}/delete").status_code == 303
    assert asgi.get(f"/jobs/{ids[0]}").status_code == 404
    assert events_in_store(tmp_path / "draftline.db", ids[0]) == []
    assert asgi.delete(f"/api/jobs/{ids[1]}").status_code == 204
    assert asgi.get(f"/api/jobs/{ids[1]}").status_code == 404


def test_deleting_a_running_job_ends_its_viewers_streams(app_server, client, llm):
    llm.token_delay = 0.05
    job = create(client)["id"]
    wait_for(lambda: api(client, job)["status"] == "running")
    received: list = []

    def listen() -> None:
        with app_server.client() as http, http.stream("GET", f"/jobs/{job}/events") as stream:
            received.extend(iter_events(stream))  # grows as events arrive, until the server ends it

    listener = threading.Thread(target=listen)
    listener.start()
    wait_for(lambda: received, timeout=5)  # the snapshot arrived: this viewer is connected
    assert client.delete(f"/api/jobs/{job}").status_code == 204
    listener.join(timeout=5)
    assert not listener.is_alive()
    assert received[-1].name == "done" and "deleted" in received[-1].data
    assert client.get(f"/jobs/{job}/events").status_code == 404


def test_hostile_topics_are_inert_everywhere_they_are_shown(client, llm):
    benign = create(client, "Benign")["id"]
    read_events(client, benign)
    paths = ("/", "/jobs", f"/jobs/{benign}")
    expected = {path: active_markup(client.get(path).text) for path in paths}  # our own htmx wiring
    topic = '<script>alert(1)</script><img src=x onerror=alert(2)> <a href="javascript:x">j</a>'
    job = create(client, topic)["id"]
    events = read_events(client, job)
    for path in ("/", "/jobs"):
        assert active_markup(client.get(path).text) == expected[path], path
    # The job page: our scripts, and one steering form of ours per finished section.
    finished = client.get(f"/api/jobs/{job}").json()
    forms = len(finished["sections"]) if finished["status"] == "done" else 0
    assert active_markup(client.get(f"/jobs/{job}").text) == ["script"] * 2 + ["form[hx-post]"] * forms
    # Events carry only our own wiring too: the finished page's steering forms, one a section.
    assert all(set(active_markup(e.data)) <= {"form[hx-post]"} for e in events)
    assert "&lt;script&gt;alert(1)" in client.get("/jobs").text


def test_non_utf8_and_binary_bodies_are_refused_with_a_message(asgi):
    def post(path: str, body: bytes, content_type: str) -> int:
        return asgi.post(path, content=body, headers={"content-type": content_type}).status_code

    form, json_type = "application/x-www-form-urlencoded", "application/json"
    assert post("/jobs", b"topic=%FF%FE", form) == 400
    assert post("/jobs", b"\xff\xfe\x00", form) == 400
    assert post("/api/jobs", b"\xff\x00", json_type) == 400
    assert post("/api/jobs", b"{}", "text/plain") == 415
    assert post("/api/jobs", b"x" * 100_000, json_type) == 413
    lone_surrogate = b'{"topic": "\\ud800"}'  # valid JSON, but not a string we can store
    assert post("/api/jobs", lone_surrogate, json_type) == 422
    assert asgi.post("/api/jobs", json=["topic"]).status_code == 422
    assert asgi.post("/jobs/..%2F..%2Fetc/cancel").status_code == 404
