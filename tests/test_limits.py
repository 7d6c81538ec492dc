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
