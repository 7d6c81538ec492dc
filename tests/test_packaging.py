"""The front door: the installed `draftline` command serves the app, wherever it is started."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import time

import httpx
import pytest

from fake_llm import free_port

IN_CI = os.environ.get("CI") == "true"


def test_draftline_command_serves_our_app_even_beside_the_llm_package(tmp_path, llm):
    command = shutil.which("draftline")
    if command is None:
        if IN_CI:
            pytest.fail("`draftline` is not installed: README's test command installs it")
        pytest.skip("`draftline` is not installed (pip install -e .)")
    port = free_port()
    env = {**os.environ, "DRAFTLINE_PORT": str(port), "OPENAI_BASE_URL": llm.base_url,
           "DRAFTLINE_MODEL": "fake", "DRAFTLINE_STORE": f"sqlite:///{tmp_path / 'd.db'}"}  # fmt: skip
    # Started from elsewhere, as a user would: the repository is not on sys.path.
    with subprocess.Popen([command], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT) as process:  # fmt: skip
        try:
            health = None
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and process.poll() is None:
                try:
                    health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).json()
                    break
                except httpx.HTTPError:
                    time.sleep(0.05)
            assert health is not None, process.stdout.read().decode(errors="replace")
            assert health["model"] == "fake" and health["llm_configured"] is True
        finally:
            process.terminate()
            process.wait(timeout=15)
    if IN_CI:  # CI installs the local extra, which brings the `llm` package this guards against
        assert importlib.util.find_spec("llm") is not None
