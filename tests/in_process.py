"""The real app in this process: `create_app(settings)` behind Starlette's TestClient.

For the HTTP contract that needs no real server (status codes, pages, headers, limits counted in
the app). The client enters the app's lifespan, which runs on an event loop in a thread of its
own: jobs a request starts keep running there between requests, and they call the fake LLM over
the wire through the real openai client. Live event streams, signals, restarts and anything
uvicorn or h11 does are tested against the app under uvicorn (tests/app_server.py).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

from starlette.testclient import TestClient

from draftline.app import create_app
from draftline.config import Settings

BASE_URL = "http://127.0.0.1:8000"  # the Host the app is asked for: a loopback name it serves
PORT = 50000  # the client's port, as the app sees it


class GivenSettings(Settings):
    """Settings from the arguments alone: nothing from the environment of the shell running
    the tests, even in fixtures set up before `no_settings_from_the_shell` has run."""

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, **_others):
        return (init_settings,)


def settings_for(data_dir: Path, llm_url: str, **values) -> Settings:
    """What AppServer gives the app under uvicorn: the fake LLM, a store in `data_dir` and quick
    retries; the embedded model off. `values` override any of them."""
    defaults = {"openai_base_url": llm_url, "model": "fake", "local_model": "off",
                "llm_retry_wait": 0.05,
                "store_url": f"sqlite:///{data_dir / 'draftline.db'}"}  # fmt: skip
    return GivenSettings(**{**defaults, **values})


class Tracebacks(logging.Handler):
    """Every logged traceback, as "Traceback" in the real server's log would show it."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info or record.stack_info:
            self.seen.append(logging.Formatter().format(record))


@contextlib.contextmanager
def serve(settings: Settings, address: str = "127.0.0.1") -> Iterator[TestClient]:
    """A client of `create_app(settings)`, its lifespan running, whose requests come from
    `address`. An exception that escapes the app fails the request that caused it; a traceback
    that anything logs, a job's included, fails the test when the app has shut down."""
    tracebacks = Tracebacks()
    logging.getLogger().addHandler(tracebacks)
    try:
        with TestClient(create_app(settings), base_url=BASE_URL, client=(address, PORT),
                        follow_redirects=False) as client:  # fmt: skip
            yield client
    finally:
        logging.getLogger().removeHandler(tracebacks)
    assert not tracebacks.seen, "\n".join(tracebacks.seen)


@contextlib.contextmanager
def another_client(
    client: TestClient, address: str = "127.0.0.1", headers: dict[str, str] | None = None
) -> Iterator[TestClient]:
    """A second client of the app `client` runs (the same lifespan, the same event loop), with
    cookies of its own and these headers on every request, whose requests come from `address`:
    another machine if it differs."""
    other = TestClient(client.app, base_url=BASE_URL, client=(address, PORT), headers=headers,
                       follow_redirects=False)  # fmt: skip
    other.portal = client.portal  # not entered: entering would start the app a second time
    try:
        yield other
    finally:
        other.close()
