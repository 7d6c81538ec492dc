"""A disk that fills up mid-job: nothing stuck, no traceback, a clear message, 503 until there is
room again. The store lives on a small tmpfs of its own, which the test fills for real."""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.jobs_api import api, create
from tests.sse import read_events, wait_for

NOT_SAVED = "could not save this article"
CANNOT_SAVE = "cannot save right now"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs: room for the store's first megabytes, then full when `fill` says so."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(disk)],
                             capture_output=True, text=True)  # fmt: skip
    if mounted.returncode != 0:
        reason = f"cannot mount a tmpfs here (it needs root): {mounted.stderr.strip()}"
        (pytest.fail if os.environ.get("CI", "").lower() in ("1", "true") else pytest.skip)(reason)
    try:
        yield disk
    finally:
        subprocess.run(["umount", "--lazy", str(disk)], check=False)


def fill(disk: Path) -> Path:
    """Take every byte left on `disk`, as a full disk would; returns the file to free it."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 20, 1 << 16, 1 << 12, 1 << 9, 1):
            try:
                while os.write(fd, bytes(size)):
                    pass
            except OSError:  # ENOSPC: try a smaller piece
                continue
    finally:
        os.close(fd)
    return filler


def test_a_full_disk_fails_the_job_clearly_and_answers_503_until_there_is_room(
    small_disk, start_app, llm  # the disk first: unmounted only once the app has stopped
):
    llm.token_delay, llm.section_words = 0.05, 200  # the sections take seconds to write
    server = start_app(DRAFTLINE_STORE=f"sqlite:///{small_disk / 'draftline.db'}")
    with server.client() as http:
        job = create(http)["id"]
        received: list = []

        def watch() -> None:
            with server.client() as own:
                received.extend(read_events(own, job, timeout=60))

        viewer = threading.Thread(target=watch)
        viewer.start()
        wait_for(lambda: any(len(s["text"]) > 20 for s in api(http, job)["sections"]), timeout=30)
        filler = fill(small_disk)

        viewer.join(timeout=60)
        assert not viewer.is_alive(), "the viewer's stream never ended"
        assert received[-1].name == "done" and NOT_SAVED in received[-1].data
        assert NOT_SAVED in read_events(http, job)[-1].data  # a new viewer learns it at once

        health = http.get("/healthz")
        assert health.status_code == 503 and CANNOT_SAVE in health.json()["reason"]
        refused = [http.post("/api/jobs", json={"topic": "Another"}),
                   http.post(f"/api/jobs/{job}/cancel"), http.delete(f"/api/jobs/{job}")]
        for response in refused:
            assert response.status_code == 503, response.text
            assert CANNOT_SAVE in response.json()["error"]
        page = http.post("/jobs", data={"topic": "Another"})
        assert page.status_code == 503 and CANNOT_SAVE in page.text and "<html" in page.text
        htmx = http.post("/jobs", data={"topic": "Another"}, headers={"HX-Request": "true"})
        assert htmx.status_code == 503 and 'id="topic-error"' in htmx.text  # beside the field
        assert http.post(f"/jobs/{job}/delete").status_code == 503
        assert http.get(f"/jobs/{job}").status_code == 200  # reading still works

        filler.unlink()  # room again: the job can be stopped for good, and writing goes on
        assert http.get("/healthz").status_code == 200
        assert http.post(f"/api/jobs/{job}/cancel").json()["status"] == "cancelled"
        llm.token_delay, llm.section_words = 0, 40
        assert http.post(f"/api/jobs/{job}/resume").status_code == 202
        assert read_events(http, job)[-1].name == "done" and api(http, job)["status"] == "done"
    assert "could not write to" in server.log()  # the owner's log says what went wrong
