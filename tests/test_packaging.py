"""The front door: the installed `draftline` command serves the app, wherever it is started.

Each way README's readers install it (a plain `pip install`, `pip install -e`, `pipx install`) is
tried in a fresh virtual environment, beside a top-level `llm` package (the `llm` CLI that the
local extra brings in), and started from a directory that is not the repository.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.app_server import ROOT
from tests.fake_llm import FakeLLM, free_port

IN_CI = os.environ.get("CI") == "true"
# What a checkout holds that a build must not need (or would be slow to copy).
NOT_SOURCE = shutil.ignore_patterns(".git", "node_modules", "data", "test-artifacts", "build",
                                    "*.egg-info", "__pycache__", ".pytest_cache", ".hypothesis")  # fmt: skip
# A top-level `llm` that is not ours, as `pip install llm` would put it beside our package.
FOREIGN_LLM = "raise ImportError('this is the llm CLI package, not Draftline')\n"


def serve(command: list[str], cwd: Path, llm: FakeLLM, data: Path, env: dict | None = None):
    """Start `command`, check that it serves pages, templates and static files, then stop it."""
    port = free_port()
    env = {**os.environ, **(env or {}), "DRAFTLINE_PORT": str(port), "DRAFTLINE_MODEL": "fake",
           "OPENAI_BASE_URL": llm.base_url, "DRAFTLINE_STORE": f"sqlite:///{data / 'd.db'}"}  # fmt: skip
    env.pop("PYTHONPATH", None)
    url = f"http://127.0.0.1:{port}"
    with subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT) as process:  # fmt: skip
        try:
            health = None
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and process.poll() is None:
                try:
                    health = httpx.get(f"{url}/healthz", timeout=1).json()
                    break
                except httpx.HTTPError:
                    time.sleep(0.05)
            assert health is not None, process.stdout.read().decode(errors="replace")
            assert health["model"] == "fake" and health["llm_configured"] is True
            home = httpx.get(url, timeout=5)
            assert home.status_code == 200 and "Generate" in home.text
            assert httpx.get(f"{url}/static/draftline.css", timeout=5).status_code == 200
        finally:
            process.terminate()
            process.wait(timeout=15)


def fresh_venv(path: Path) -> Path:
    """A venv that sees the test run's packages (no network needed), with a foreign `llm`."""
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(path)], check=True)
    python = path / "bin" / "python"
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          check=True, capture_output=True, text=True).stdout.strip()  # fmt: skip
    (Path(site) / "llm").mkdir()
    (Path(site) / "llm" / "__init__.py").write_text(FOREIGN_LLM)
    return python


def pip(python: Path, *args: str) -> None:
    """Install without dependencies: the venv sees ours (pip fetches only the build backend)."""
    subprocess.run([python, "-m", "pip", "install", "--quiet", "--no-deps", *args], check=True)


def where_draftline_is(python: Path, cwd: Path) -> Path:
    out = subprocess.run([python, "-c", "import draftline.app; print(draftline.app.__file__)"],
                         cwd=cwd, check=True, capture_output=True, text=True)  # fmt: skip
    return Path(out.stdout.strip()).resolve()


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """A copy of the checkout, so that building leaves nothing behind in the repository."""
    copy = tmp_path_factory.mktemp("source") / "draftline"
    shutil.copytree(ROOT, copy, ignore=NOT_SOURCE)
    return copy


@pytest.fixture(scope="module")
def wheel(source: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out),
                    str(source)], check=True)  # fmt: skip
    (built,) = out.glob("draftline-*.whl")
    return built


@pytest.mark.slow
def test_a_built_wheel_serves_from_any_directory_beside_the_llm_package(wheel, tmp_path, llm):
    python = fresh_venv(tmp_path / "venv")
    pip(python, str(wheel))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert where_draftline_is(python, elsewhere).is_relative_to(tmp_path / "venv")
    serve([str(python.parent / "draftline")], elsewhere, llm, tmp_path)


@pytest.mark.slow
def test_an_editable_install_serves_from_any_directory_beside_the_llm_package(source, tmp_path,
                                                                              llm):  # fmt: skip
    python = fresh_venv(tmp_path / "venv")
    pip(python, "-e", str(source))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert where_draftline_is(python, elsewhere) == source / "app.py"
    serve([str(python.parent / "draftline")], elsewhere, llm, tmp_path)
    serve([str(python), "-m", "draftline"], elsewhere, llm, tmp_path)  # README's other way


@pytest.mark.slow
def test_pipx_install_serves_from_any_directory(wheel, tmp_path, llm):
    if importlib.util.find_spec("pipx") is None:
        if IN_CI:
            pytest.fail("pipx is not installed: the test extra brings it")
        pytest.skip("pipx is not installed (pip install -e '.[test]')")
    home, bin_dir = tmp_path / "pipx", tmp_path / "bin"
    env = {**os.environ, "PIPX_HOME": str(home), "PIPX_BIN_DIR": str(bin_dir)}
    subprocess.run([sys.executable, "-m", "pipx", "install", "--system-site-packages",
                    "--pip-args=--no-deps", str(wheel)],
                   check=True, env=env, capture_output=True)  # fmt: skip
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    serve([str(bin_dir / "draftline")], elsewhere, llm, tmp_path)


def test_the_installed_draftline_command_serves_our_app(tmp_path, llm):
    """README's own install, in the environment the tests run in."""
    command = shutil.which("draftline")
    if command is None:
        if IN_CI:
            pytest.fail("`draftline` is not installed: README's test command installs it")
        pytest.skip("`draftline` is not installed (pip install -e .)")
    serve([command], tmp_path, llm, tmp_path)
    if IN_CI:  # CI installs the local extra, which brings the real `llm` package
        assert importlib.util.find_spec("llm") is not None
