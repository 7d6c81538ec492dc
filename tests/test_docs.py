"""README is the front door: every setting is documented there."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from draftline.config import variables

README = (Path(__file__).parent.parent / "README.md").read_text()
VARIABLES = variables()  # read from config.Settings, where each default is written once


def as_written(default: object) -> str | None:
    """A default as README writes it: `60` for 60.0; None for an empty one, "(unset)"."""
    if default is None or default in ("", ()):
        return None
    return f"{default:g}" if isinstance(default, float) else str(default)


@pytest.mark.parametrize("name", VARIABLES)
def test_every_setting_is_documented_with_its_default(name):
    row = next((line for line in README.splitlines() if line.startswith(f"| `{name}`")), None)
    assert row is not None, f"{name} is missing from README's settings table"
    default = as_written(VARIABLES[name])
    assert (f"| `{default}` |" in row) if default else ("| (unset) |" in row), row


# Every way README installs the embedded model builds llama.cpp for any CPU, never for this one.

CI_SCRIPT = (Path(__file__).parent.parent / ".ci" / "run").read_text()
PORTABLE = '-DGGML_NATIVE=OFF'


def readme_commands() -> list[str]:
    """Each line of README's shell blocks and each `inline` command that runs pip."""
    blocks = re.findall(r"```sh\n(.*?)```", README, re.DOTALL)
    lines = [line for block in blocks for line in block.splitlines()]
    return [c for c in lines + re.findall(r"`([^`\n]*pip install[^`\n]*)`", README) if "pip" in c]


def test_every_readme_command_that_installs_llama_cpp_builds_it_without_cpu_specific_code():
    installs = [c for c in readme_commands() if "local]" in c or "llama-cpp-python" in c]
    assert len(installs) >= 4, installs  # quick start, tests, the table, the rebuild
    for command in installs:
        assert f'CMAKE_ARGS="-DLLAVA_BUILD=OFF {PORTABLE}"' in command, command


def test_ci_runs_readmes_test_command_verbatim_after_dropping_any_cached_build():
    test_command = next(c for c in readme_commands() if "python -m pytest" in c)
    lines = [line.strip() for line in CI_SCRIPT.splitlines()]
    assert test_command in lines
    run = lines.index(test_command)
    assert any("pip cache remove llama_cpp_python" in line for line in lines[:run])
    assert any("pip uninstall" in line and "llama-cpp-python" in line for line in lines[:run])


def test_readme_gives_the_rebuild_command_the_app_shows():
    from draftline.local_model import REBUILD_COMMAND

    assert REBUILD_COMMAND in README
