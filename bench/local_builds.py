"""Compare builds of llama.cpp for the embedded model, measured in one run, turn by turn.

    python bench/local_builds.py --build native=/tmp/venv-native/bin/python \
                                 --build portable=/tmp/venv-portable/bin/python --rounds 3

Each `--build NAME=PYTHON` names an interpreter whose environment has Draftline's `local` extra
installed with one build of llama-cpp-python (e.g. one venv built with
CMAKE_ARGS="-DLLAVA_BUILD=OFF", the default -march=native build, and one with
"-DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF"). Every round
runs bench/local_default.py once under each build, in alternating order, so that whatever else
the shared machine is doing falls on both alike; the table gives each figure's median over the
rounds and the ratio of each build to the first.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
FIGURES = (
    ("generation_tokens_per_s", "tokens/s writing"),
    ("prompt_tokens_per_s", "tokens/s reading the prompt"),
    ("server_start_s", "server ready (s)"),
    ("article_seconds_median", "one article (s)"),
    ("server_resident_mb", "server resident (MB)"),
)


def run_once(python: str, articles: int) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        command = [python, str(HERE / "local_default.py"), "--articles", str(articles),
                   "--json", out.name]  # fmt: skip
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        return json.loads(Path(out.name).read_text())


def system_info(python: str) -> str:
    code = "import llama_cpp; print(llama_cpp.llama_print_system_info().decode().strip())"
    return subprocess.run([python, "-c", code], capture_output=True, text=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build", action="append", required=True, metavar="NAME=PYTHON")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--articles", type=int, default=2, help="articles per build per round")
    parser.add_argument("--json", type=Path, help="also write every run's figures here")
    args = parser.parse_args()
    builds = dict(item.split("=", 1) for item in args.build)
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    for name, python in builds.items():
        print(f"{name}: {system_info(python)}")
    runs: dict[str, list[dict]] = {name: [] for name in builds}
    order = list(builds)
    for round_number in range(args.rounds):
        for name in order if round_number % 2 == 0 else order[::-1]:
            result = run_once(builds[name], args.articles)
            runs[name].append(result)
            print(f"round {round_number + 1}, {name}: "
                  f"{result['generation_tokens_per_s']} tokens/s, "
                  f"article {result['article_seconds_median']} s", flush=True)  # fmt: skip
    first = order[0]
    print(f"\n{'figure (median of rounds)':32}" + "".join(f"{n:>14}" for n in order)
          + "".join(f"{n + '/' + first:>20}" for n in order[1:]))  # fmt: skip
    for key, label in FIGURES:
        medians = {n: statistics.median(r[key] for r in runs[n]) for n in order}
        row = f"{label:32}" + "".join(f"{medians[n]:>14.1f}" for n in order)
        row += "".join(f"{medians[n] / medians[first]:>20.2f}" for n in order[1:])
        print(row)
    if args.json:
        args.json.write_text(json.dumps(runs, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
