"""Creating and reading jobs through the JSON API, as the end-to-end tests do."""

from __future__ import annotations

import httpx


def create(client: httpx.Client, topic: str = "Tide pools") -> dict:
    response = client.post("/api/jobs", json={"topic": topic})
    assert response.status_code == 201, response.text
    return response.json()


def api(client: httpx.Client, job_id: str) -> dict:
    return client.get(f"/api/jobs/{job_id}").json()
