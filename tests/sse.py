"""Reading a real text/event-stream the way a browser's EventSource does."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

import httpx


@dataclass
class Event:
    id: str | None
    name: str
    data: str

    @property
    def progress(self) -> int | None:
        match = re.search(r'<progress max="100" value="(\d+)"', self.data)
        return int(match.group(1)) if match else None


def iter_events(response: httpx.Response):
    """Parse events from a streaming response; comments (pings) are skipped."""
    fields: dict[str, list[str]] = {}
    for line in response.iter_lines():
        if line == "":
            if "data" in fields or "event" in fields:
                yield Event(
                    id=fields["id"][-1] if "id" in fields else None,
                    name=fields.get("event", ["message"])[-1],
                    data="\n".join(fields.get("data", [])),
                )
            fields = {}
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        fields.setdefault(name, []).append(value[1:] if value.startswith(" ") else value)


def read_events(
    client: httpx.Client,
    job_id: str,
    last_event_id: str | None = None,
    limit: int | None = None,
    timeout: float = 30,
) -> list[Event]:
    """Events until `done` (or `limit` events, then hang up, as a dropped connection would)."""
    headers = {"Last-Event-ID": last_event_id} if last_event_id is not None else {}
    events: list[Event] = []
    deadline = time.monotonic() + timeout
    with client.stream("GET", f"/jobs/{job_id}/events", headers=headers, timeout=timeout) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        for event in iter_events(response):
            events.append(event)
            if event.name == "done" or (limit is not None and len(events) >= limit):
                break
            assert time.monotonic() < deadline, "stream did not end in time"
    return events


def wait_for(predicate, timeout: float = 20, interval: float = 0.02):
    """Poll until `predicate()` returns something truthy; return it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")
