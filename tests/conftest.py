"""Fixtures: a running fake LLM, an isolated data directory, a real redis-server, and the real
app, either in this process (`asgi`, `start_asgi`: for everything but live event streams,
signals and the wire) or under uvicorn in its own process (`client`, `app_server`,
`start_app`)."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from draftline.config import variables
from tests import in_process
from tests.app_server import AppServer
from tests.fake_llm import FakeLLM
from tests.redis_server import RedisServer, require_redis_server

# The browser tests' fixtures (chromium, browsing), for every test module that asks for them.
pytest_plugins = ["tests.browser"]


@pytest.fixture(autouse=True)
def no_settings_from_the_shell(monkeypatch) -> None:
    """Each test starts from the defaults: Settings() and the apps tests start read the
    environment, where the shell running the tests may have set some of them."""
    settings = set(variables())
    for name in list(os.environ):
        if name.upper() in settings:
            monkeypatch.delenv(name)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the app is asyncio code; never run it under trio


@pytest.fixture(scope="session")
def fake_llm() -> Iterator[FakeLLM]:
    fake = FakeLLM().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory) -> Iterator[RedisServer]:
    """One redis-server for the session; each test takes a database of its own (fresh_url)."""
    require_redis_server()
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def llm(fake_llm: FakeLLM) -> Iterator[FakeLLM]:
    """The shared fake, reset to quick deterministic answers for each test."""
    fake_llm.reset()
    yield fake_llm
    fake_llm.reset()


@pytest.fixture
def start_app(tmp_path: Path, fake_llm: FakeLLM):
    """Start the app with extra environment; stopped after the test."""
    servers: list[AppServer] = []

    def start(**env: str) -> AppServer:
        env = {"OPENAI_BASE_URL": fake_llm.base_url, "DRAFTLINE_MODEL": "fake", **env}
        server = AppServer(tmp_path, {k: v for k, v in env.items() if v is not None}).start()
        servers.append(server)
        return server

    yield start
    hung = []
    for server in servers:  # every one of them, before any complaint: none may outlive the test
        try:
            server.stop()
        except subprocess.TimeoutExpired:  # killed by stop(), after its grace
            hung.append(server.url)
    for server in servers:
        assert "Traceback" not in server.log(), server.log()
    assert not hung, f"did not stop within 15 s of SIGTERM: {hung}"


@pytest.fixture
def app_server(start_app, llm: FakeLLM) -> AppServer:
    return start_app()


@pytest.fixture
def client(app_server: AppServer) -> Iterator[httpx.Client]:
    with app_server.client() as http:
        yield http


@pytest.fixture
def start_asgi(tmp_path: Path, fake_llm: FakeLLM):
    """Build the app in this process with these settings (`Settings` field names) beside the
    test ones; returns a client of it, its lifespan running until the test ends."""
    with contextlib.ExitStack() as apps:

        def start(**settings) -> TestClient:
            built = in_process.settings_for(tmp_path, fake_llm.base_url, **settings)
            return apps.enter_context(in_process.serve(built))

        yield start


@pytest.fixture
def asgi(start_asgi, llm: FakeLLM) -> TestClient:
    """A client of the app built in this process, as `client` is of the app under uvicorn."""
    return start_asgi()
