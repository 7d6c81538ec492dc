"""Creating and reading jobs through the JSON API, as the end-to-end tests do."""

from __future__ import annotations

import httpx

from draftline.jobs import FINAL_STATUSES
from tests.sse import wait_for


def create(client: httpx.Client, topic: str = "Tide pools") -> dict:
    response = client.post("/api/jobs", json={"topic": topic})
    assert response.status_code == 201, response.text
    return response.json()


def api(client: httpx.Client, job_id: str) -> dict:
    return client.get(f"/api/jobs/{job_id}").json()


def finished(client: httpx.Client, job_id: str, timeout: float = 30) -> dict:
    """The job once it rests (done, failed, ...: when its event stream sends `done`), polled
    through the JSON API where a test needs the end, not the stream."""
    return wait_for(lambda: (job := api(client, job_id))["status"] in FINAL_STATUSES and job,
                    timeout=timeout)  # fmt: skip
