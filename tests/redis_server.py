"""A real `redis-server` (Debian's package) for the tests, in its own process on a free loopback
port, keeping nothing on disk. On CI (CI=true), where .ci/run installs it, a missing redis-server
fails the tests that need it; on a developer's machine they skip with the reason."""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import redis

from tests.fake_llm import free_port

REDIS_SERVER = Path(shutil.which("redis-server") or "/usr/bin/redis-server")


def require_redis_server() -> None:
    if not REDIS_SERVER.exists():
        reason = f"{REDIS_SERVER} not found: apt-get install redis-server (see .ci/run)"
        on_ci = os.environ.get("CI", "").lower() in ("1", "true", "yes")
        (pytest.fail if on_ci else pytest.skip)(reason)


class RedisServer:
    """`redis-server` on 127.0.0.1; stop() and start() again keep its port, and lose its data
    as a restart without persistence does, unless `persist` turns on README's AOF."""

    def __init__(self, data_dir: Path, persist: bool = False):
        self.data_dir = data_dir
        self.persist = persist
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self._databases = itertools.cycle(range(1, 16))

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> RedisServer:
        with open(self.data_dir / "redis.log", "ab") as log:
            self.process = subprocess.Popen(
                [str(REDIS_SERVER), "--port", str(self.port), "--bind", "127.0.0.1",
                 "--dir", str(self.data_dir), "--save", "",
                 "--appendonly", "yes" if self.persist else "no",
                 "--daemonize", "no"],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited early:\n{self.log()}")
            try:
                with redis.Redis(port=self.port, socket_timeout=1) as client:
                    client.ping()
                return self
            except redis.ConnectionError:
                time.sleep(0.02)
        raise RuntimeError(f"redis-server did not answer:\n{self.log()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(10)

    def kill(self) -> None:
        """kill -9: nothing is flushed or saved on the way out."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def fresh_url(self) -> str:
        """The URL of a database emptied for one test (they take turns among 1-15)."""
        db = next(self._databases)
        with redis.Redis(port=self.port, db=db) as client:
            client.flushdb()
        return self.url(db)

    def log(self) -> str:
        return (self.data_dir / "redis.log").read_text(errors="replace")
