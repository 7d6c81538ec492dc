"""Limits that hold: caps on waiting jobs and on starts per minute, on open event streams, and on
how long a request may take to arrive. Each is per client (address), so another address is fine."""

from __future__ import annotations

import httpx

from jobs_api import create


def from_another_address(server) -> httpx.Client:
    """A client whose requests come from 127.0.0.2: another machine, as far as the app can tell."""
    return server.client(transport=httpx.HTTPTransport(local_address="127.0.0.2"))


def test_resuming_counts_against_the_cap_of_whoever_resumes(start_app, llm):
    llm.token_delay = 0.05
    server = start_app(DRAFTLINE_MAX_RUNNING_JOBS="1", DRAFTLINE_MAX_WAITING_PER_CLIENT="1")
    with server.client() as owner, from_another_address(server) as other:
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


def test_job_starts_are_rate_limited_per_client_after_a_burst(start_app, llm):
    llm.token_delay = 0.05
    server = start_app(DRAFTLINE_JOBS_PER_MINUTE="3", DRAFTLINE_MAX_WAITING_PER_CLIENT="50")
    with server.client() as http, from_another_address(server) as other:
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
