"""The real app, started as its own process under uvicorn, for tests and benches."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.fake_llm import free_port

ROOT = Path(__file__).resolve().parent.parent


class AppServer:
    """The real app, `python -m uvicorn --factory draftline.app:create_app`, in its own process on
    a free loopback port."""

    def __init__(self, data_dir: Path, env: dict[str, str], http: str = "h11"):
        self.data_dir = data_dir
        self.env = env
        # h11, as `draftline` serves (security.DeadlineH11Protocol), even where httptools is
        # installed and plain uvicorn would pick it
        self.http = http
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.log_path = data_dir / f"app-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "AppServer":
        self.port = free_port()
        env = {**os.environ, "DRAFTLINE_STORE": f"sqlite:///{self.data_dir / 'draftline.db'}",
               "DRAFTLINE_LLM_RETRY_WAIT": "0.05", **self.env}  # fmt: skip
        for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
            if name not in self.env:
                env.pop(name, None)
        with open(self.log_path, "ab") as log:  # the child keeps its own copy of the handle
            self.process = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "--factory", "draftline.app:create_app",
                 "--host", "127.0.0.1", "--port", str(self.port),
                 "--timeout-graceful-shutdown", "5", "--http", self.http],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"app exited early:\n{self.log()}")
            try:  # serving once it answers: 503 is a health report too (an LLM that cannot run)
                httpx.get(f"{self.url}/healthz", timeout=1)
                return self
            except httpx.HTTPError:
                time.sleep(0.05)
        self.kill()  # not left behind, holding its port and CPU
        raise RuntimeError(f"app did not become healthy:\n{self.log()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **kwargs)
