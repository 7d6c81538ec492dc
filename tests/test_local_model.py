"""The embedded default: SmolLM2-135M-Instruct through llama.cpp's server, started by the app.

The tests marked `needs_model` run the real model (no fake). They skip on a machine without the
`local` extra, except in CI (CI=true), where a missing model is a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import importlib.util
import os
import platform
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from draftline import llm, local_model, pocketflow_nodes
from draftline.config import Settings
from draftline.outline import fallback_outline, outline_grammar
from draftline.pocketflow_nodes import GenerateOutline, create_article_flow
from tests.reporting import Recorder, shared_for
from tests.sse import wait_for

INSTALLED = local_model.server_installed() and local_model.model_path("auto") is not None
needs_model = pytest.mark.skipif(
    not INSTALLED and os.environ.get("CI") != "true",
    reason="the embedded model is not installed: pip install -e '.[local]'",
)
TOPIC = "Why the sky is blue"


# The build: README's llama.cpp runs on any x86-64 CPU with AVX2, AMX machines included.

# Intel AMX's tile instructions: a -march=native build on an AMX CPU uses them, and they crash
# with a general protection fault on many servers and VMs that advertise AMX (llama.cpp #20824).
AMX = re.compile(r"\t(ldtilecfg|sttilecfg|tileloadd\w*|tilestored|tilerelease|tilezero|tdp\w+)\s")
AVX512 = re.compile(r"%zmm\d+|%k[1-7]\b")  # the registers only AVX-512 code uses


def amx_and_avx512_instructions(library: Path) -> set[str]:
    """Every AMX mnemonic and AVX-512 register in the library's machine code."""
    command = ["objdump", "-d", "--no-show-raw-insn", str(library)]
    code = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return {m.group(1) for m in AMX.finditer(code)} | {m.group(0) for m in AVX512.finditer(code)}


needs_objdump = pytest.mark.skipif(
    shutil.which("objdump") is None and os.environ.get("CI") != "true",
    reason="objdump (binutils) is not installed",
)


@needs_model
def test_the_installed_llama_cpp_is_the_portable_build_without_amx():
    import llama_cpp

    info = llama_cpp.llama_print_system_info().decode()
    assert "AMX" not in info, info
    if platform.machine() in ("x86_64", "AMD64"):
        # -DGGML_NATIVE=OFF: AVX2, FMA and F16C for any CPU of the last ten years, no AVX-512.
        assert all(f"{feature} = 1" in info for feature in ("AVX2", "FMA", "F16C")), info
        assert "AVX512" not in info, info


@needs_model
@needs_objdump
def test_no_library_of_the_installed_llama_cpp_holds_an_amx_or_avx512_instruction():
    package = importlib.util.find_spec("llama_cpp").submodule_search_locations[0]  # not loaded
    libraries = sorted((Path(package) / "lib").glob("*.so"))
    assert any(lib.name == "libggml-cpu.so" for lib in libraries), libraries
    for library in libraries:
        assert amx_and_avx512_instructions(library) == set(), library.name


@needs_objdump
@pytest.mark.skipif(platform.machine() != "x86_64", reason="AMX and AVX-512 are x86-64's")
@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed")
def test_the_instruction_check_finds_amx_and_avx512_code_where_there_is_some(tmp_path):
    source = tmp_path / "tiles.c"
    source.write_text(
        "#include <immintrin.h>\n"
        "void tiles(const void *config, const void *a, void *c) {\n"
        "  _tile_loadconfig(config); _tile_loadd(1, a, 64); _tile_loadd(2, a, 64);\n"
        "  _tile_dpbssd(0, 1, 2); _tile_stored(0, c, 64); _tile_release(); }\n"
        "__m512 add(__m512 x, __m512 y) { return _mm512_add_ps(x, y); }\n"
    )
    library = tmp_path / "libtiles.so"
    subprocess.run(["gcc", "-O2", "-shared", "-fPIC", "-mamx-tile", "-mamx-int8", "-mavx512f",
                    str(source), "-o", str(library)], check=True)  # fmt: skip
    found = amx_and_avx512_instructions(library)
    assert {"ldtilecfg", "tdpbssd", "tilestored", "tilerelease"} <= found, found
    assert any(name.startswith("%zmm") for name in found), found


# The app on the local default, end to end.


@pytest.mark.slow
@needs_model
def test_the_local_default_writes_a_whole_article(start_app):
    server = start_app(OPENAI_BASE_URL=None, DRAFTLINE_MODEL=None, DRAFTLINE_LOCAL_MODEL="auto")
    with server.client() as http:
        health = http.get("/healthz").json()
        assert health == {**health, "backend": "local llama.cpp", "model": "SmolLM2-135M-Instruct",
                          "llm_configured": True}  # fmt: skip
        started = time.monotonic()
        job = http.post("/api/jobs", json={"topic": TOPIC}).json()

        def finished():
            current = http.get(f"/api/jobs/{job['id']}").json()
            return current if current["status"] not in ("queued", "running") else None

        final = wait_for(finished, timeout=150, interval=0.5)
        print(f"one article on the local default: {time.monotonic() - started:.1f} s")
        assert final["status"] == "done", final["error"]
        titles = final["outline"]
        assert 2 <= len(titles) <= 3
        assert len({t.casefold() for t in titles}) == len(titles), titles
        assert all(t.strip() and t.casefold() != TOPIC.casefold() for t in titles), titles
        assert [s["title"] for s in final["sections"]] == titles
        assert all(len(s["text"].split()) >= 10 for s in final["sections"]), final["sections"]
        article = final["article"]
        assert article.startswith(f"# {TOPIC}\n")
        assert all(f"## {t}" in article for t in titles)
        assert "SmolLM2-135M-Instruct" in http.get(f"/jobs/{job['id']}").text


@pytest.mark.slow
@pytest.mark.anyio
@needs_model
async def test_the_embedded_models_articles_read_cleanly():
    """README's promise for the embedded model, on two topics that used to read as broken."""
    from bench.local_quality import measure  # the bench's own counts, with a dictionary for titles

    async with running_model() as (_, chat):
        for topic in (TOPIC, "How lighthouses work"):
            shared = await shared_for(chat, topic)
            started = time.monotonic()
            await create_article_flow(retries=3, wait=0.5).run_async(shared)
            seconds = time.monotonic() - started
            figures = measure(shared["job"].article)
            print(f"{topic}: {seconds:.1f} s, {figures}")
            assert figures["repeated_paragraphs"] == 0, figures["flagged"]
            assert figures["repeated_sentences"] <= 1, figures["flagged"]
            assert figures["chatter_lines"] == 0, figures["flagged"]
            assert figures["garbled_titles"] == 0, figures["flagged"]
            assert figures["words"] >= 150, shared["job"].article
            # README's median is under 25 s (bench/local_quality.py); this leaves room for a
            # busy machine, where llama.cpp's threads slow down far more than the load suggests.
            assert seconds < 60


# The server process: cancellation, restarts, the outline grammar.


@contextlib.asynccontextmanager
async def running_model():
    """The embedded model's server, and an LLM that it points at itself, as the app does."""
    settings = Settings()  # no OPENAI_* endpoint (conftest clears the shell's)
    chat = llm.LLM(settings)
    model = await local_model.start(settings, chat.use)
    assert model is not None
    try:
        yield model, chat
    finally:
        await model.stop()
        await chat.aclose()


@pytest.mark.anyio
@needs_model
async def test_cancelling_a_stream_frees_the_model_at_once():
    async with running_model() as (_, chat):
        pieces: list[str] = []

        async def write_at_length():
            prompt = [{"role": "user", "content": "Tell a long story about the sea."}]
            # min_tokens: llama.cpp may not stop before 1500 tokens (~15 s) unless we hang up.
            async for piece in chat.stream(prompt, max_tokens=2000,
                                           extra_body={"min_tokens": 1500}):  # fmt: skip
                pieces.append(piece)

        task = asyncio.create_task(write_at_length())
        async with asyncio.timeout(30):
            while len(pieces) < 5:
                await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        started = time.monotonic()
        reply = await chat.complete([{"role": "user", "content": "Say hi."}], max_tokens=5)
        assert reply and time.monotonic() - started < 3.0  # not ~15 s behind the first story


@pytest.mark.anyio
@needs_model
async def test_a_server_that_dies_is_restarted():
    async with running_model() as (model, chat):
        first = chat.backend.base_url
        model.process.kill()
        async with asyncio.timeout(30):
            while chat.backend.base_url == first:
                await asyncio.sleep(0.1)
        assert model.restarts == 1
        assert await chat.complete([{"role": "user", "content": "Say hi."}], max_tokens=5)


@pytest.mark.anyio
@needs_model
async def test_the_small_models_outlines_are_distinct_titles():
    async with running_model() as (_, chat):
        assert chat.backend.grammar and chat.backend.small
        for topic in ("Caring for a houseplant", "The history of the bicycle", TOPIC):
            shared = await shared_for(chat, topic)
            await GenerateOutline(attempts=3, wait=0).run_async(shared)
            titles = shared["job"].outline
            assert 2 <= len(titles) <= 3, titles
            assert len({t.casefold() for t in titles}) == len(titles), titles
            assert not any(t.casefold() == topic.casefold() or "<" in t for t in titles), titles


@needs_model
def test_the_outline_grammar_compiles_in_llama_cpp():
    import llama_cpp

    assert llama_cpp.LlamaGrammar.from_string(outline_grammar(4), verbose=False)


# A model that cannot run on this machine (a fake llama.cpp server; no model needed).

FAKE_LLAMA = Path(__file__).parent / "fake_llama"  # a stand-in for llama_cpp.server


@pytest.fixture
def fake_gguf(tmp_path, monkeypatch) -> Path:
    """The child `python -m draftline.local_model` will start the fake server instead of llama.cpp's."""
    monkeypatch.setenv("PYTHONPATH", str(FAKE_LLAMA))
    path = tmp_path / "fake.gguf"
    path.write_bytes(b"GGUF")
    return path


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("mode", "problem"),
    [
        ("crash", "llama.cpp's server was killed by SIGSEGV (signal 11) at its first generation"),
        ("crash-at-start", "llama.cpp's server was killed by SIGILL (signal 4) while starting"),
        ("mute", "llama.cpp's server is running, but its first generation came back empty"),
    ],
)
async def test_a_model_that_cannot_write_is_unavailable_and_calls_fail_at_once(
    fake_gguf, monkeypatch, caplog, mode, problem
):
    monkeypatch.setenv("FAKE_LLAMA", mode)
    settings = Settings(local_model=str(fake_gguf))
    chat = llm.LLM(settings)
    model = local_model.LocalModel(fake_gguf, settings, chat.use)
    await model.start()
    try:
        assert model.unavailable is not None, model.output()
        assert model.unavailable.problem == problem
        assert model.process.returncode is not None  # nothing left running, nothing restarting
        assert model.restarts == 0 and model._watchdog is None
        reason = chat.backend.unavailable
        assert reason.startswith(f"The embedded model cannot run on this machine: {problem}.")
        assert local_model.REBUILD_COMMAND in reason and "OPENAI_BASE_URL" in reason
        started = time.monotonic()
        with pytest.raises(llm.LLMError) as failure:
            await chat.complete([{"role": "user", "content": "Say hi."}], max_tokens=5)
        assert not failure.value.transient and str(failure.value) == reason
        assert time.monotonic() - started < 0.1
        assert problem in caplog.text  # the log names the signal
    finally:
        await model.stop()


@pytest.mark.anyio
async def test_a_model_that_writes_is_ready(fake_gguf, monkeypatch):
    monkeypatch.setenv("FAKE_LLAMA", "ok")
    settings = Settings(local_model=str(fake_gguf))
    chat = llm.LLM(settings)
    model = local_model.LocalModel(fake_gguf, settings, chat.use)
    await model.start()
    try:
        assert model.unavailable is None and chat.backend.unavailable is None
        assert chat.backend.base_url == model.base_url
        assert await chat.complete([{"role": "user", "content": "Say hi."}], max_tokens=5)
    finally:
        await model.stop()
        await chat.aclose()


def test_the_app_explains_a_model_that_cannot_run_and_fails_jobs_at_once(start_app, fake_gguf):
    server = start_app(OPENAI_BASE_URL=None, DRAFTLINE_MODEL=None,
                       DRAFTLINE_LOCAL_MODEL=str(fake_gguf), PYTHONPATH=str(FAKE_LLAMA),
                       FAKE_LLAMA="crash")  # fmt: skip
    with server.client() as http:
        health = http.get("/healthz")
        assert health.status_code == 503
        assert health.json()["status"] == "unavailable"
        assert "killed by SIGSEGV (signal 11)" in health.json()["reason"]

        home = http.get("/").text
        assert "The embedded model cannot run on this machine" in home
        assert html.escape(local_model.REBUILD_COMMAND, quote=False) in home
        assert "OPENAI_BASE_URL" in home

        job = http.post("/api/jobs", json={"topic": "Why the sky is blue"}).json()
        final = wait_for(lambda: (j := http.get(f"/api/jobs/{job['id']}").json())["status"]
                         not in ("queued", "running") and j, timeout=20, interval=0.05)  # fmt: skip
        assert final["status"] == "failed"
        assert final["error"] == health.json()["reason"]
    log = server.log()
    assert log.count("killed by SIGSEGV (signal 11)") == 1  # said once, never restarted
    assert "retrying" not in log  # the job failed at once, without waiting on retries


# When the local default applies (no model needed).


@pytest.mark.anyio
@pytest.mark.parametrize(
    "settings",
    [
        Settings(openai_base_url="http://127.0.0.1:9/v1"),
        Settings(openai_api_key="sk-test"),
        Settings(local_model="off"),
    ],
)
async def test_no_local_model_when_an_endpoint_is_set_or_it_is_off(settings):
    assert await local_model.start(settings, never_called) is None


@pytest.mark.anyio
async def test_a_missing_model_file_is_a_clear_error(tmp_path):
    with pytest.raises(local_model.LocalModelError, match="names no file"):
        await local_model.start(Settings(local_model=str(tmp_path / "nothing.gguf")), never_called)


def test_settings_read_the_local_model_and_its_threads(monkeypatch):
    assert (Settings.from_env().local_model, Settings.from_env().local_threads) == ("auto", 0)
    monkeypatch.setenv("DRAFTLINE_LOCAL_MODEL", "off")
    monkeypatch.setenv("DRAFTLINE_LOCAL_THREADS", "3")
    settings = Settings.from_env()
    assert (settings.local_model, settings.local_threads) == ("off", 3)


# The flow on a small model, with llm stubbed.

SMALL = llm.Backend("local llama.cpp", "tiny", "http://127.0.0.1:9/v1", True,
                    grammar=True, small=True, concurrency=1)  # fmt: skip
BIG = llm.Backend("openai", "gpt", "https://example.invalid/v1", True)


class Report(Recorder):
    """Also counts the sections being written at once."""

    def __init__(self, store, job):
        super().__init__(store, job)
        self.writing: set[int] = set()
        self.most_writing = 0

    async def section(self, index, text, done):
        (self.writing.discard if done else self.writing.add)(index)
        self.most_writing = max(self.most_writing, len(self.writing))
        await super().section(index, text, done)


async def never_called(backend: llm.Backend) -> None:
    raise AssertionError(f"no backend to use here, got {backend}")


class StubLLM:
    """What the flow uses of an llm.LLM: its backend, complete() and stream()."""

    def __init__(self, outline: str, section: str = "Waves. They roll.", style: str | None = None):
        self.outline, self.section, self.style = outline, section, style
        self.outline_calls: list[dict] = []
        self.stream_calls: list[dict] = []

    async def complete(self, messages, max_tokens, on_usage=None, **extra):
        self.outline_calls.append({"max_tokens": max_tokens, **extra})
        return llm.Reply(self.outline)

    async def stream(self, messages, max_tokens, on_usage=None, **extra):
        self.stream_calls.append(extra)
        editing = "editor" in messages[0]["content"]
        draft = messages[-1]["content"].split("\n\n", 1)[-1]
        text = (self.style or draft) if editing else self.section
        for word in text.split(" "):
            await asyncio.sleep(0)
            yield word + " "


def small_shared(stub: StubLLM, backend: llm.Backend = SMALL, topic="Tides"):
    stub.backend = backend
    return shared_for(stub, topic, reporter=Report)


@pytest.mark.anyio
async def test_a_small_model_gets_a_plain_outline_after_retries():
    stub = StubLLM(outline="The tide is a fascinating topic that has captivated people.")
    shared = await small_shared(stub)
    await create_article_flow(retries=3, wait=0).run_async(shared)
    assert len(stub.outline_calls) == 3
    assert shared["job"].outline == fallback_outline("Tides", 3)


@pytest.mark.anyio
async def test_only_a_grammar_backend_is_sent_the_grammar_and_calls_are_capped():
    stub = StubLLM(outline="- Tides\n- Moon\n- Moon\n- Shore\n- Waves\n")
    shared = await small_shared(stub)
    await create_article_flow(retries=1).run_async(shared)
    assert shared["job"].outline == ["Moon", "Shore", "Waves"]  # topic and repeat dropped, three kept
    call = stub.outline_calls[0]
    assert "root ::= item{4}" in call["extra_body"]["grammar"]
    assert call["max_tokens"] == pocketflow_nodes.SMALL.outline_tokens

    stub.outline_calls.clear()
    await create_article_flow(retries=1).run_async(await small_shared(stub, BIG))
    assert "extra_body" not in stub.outline_calls[0]


@pytest.mark.anyio
async def test_a_small_model_writes_one_section_at_a_time():
    shared = await small_shared(StubLLM(outline="- Moon\n- Shore\n- Waves\n"))
    await create_article_flow(concurrency=5, retries=1).run_async(shared)
    assert shared["report"].most_writing == 1


@pytest.mark.anyio
async def test_a_small_model_restyles_each_section_under_our_own_headings():
    section = "## Moon\n\nThe moon pulls the sea. It does so twice a day, and the shore"
    shared = await small_shared(StubLLM(outline="- Moon\n- Shore\n", section=section))
    await create_article_flow(retries=1).run_async(shared)
    # The section lost its own heading and the sentence max_tokens cut short.
    assert shared["job"].sections[0]["text"] == "The moon pulls the sea."
    assert shared["job"].article == (
        "# Tides\n\n## Moon\n\nThe moon pulls the sea.\n\n## Shore\n\nThe moon pulls the sea."
    )
    assert shared["report"].articles[1][0].startswith("# Tides\n\n## Moon\n\n")  # streamed as it goes


@pytest.mark.anyio
async def test_a_restyle_that_only_summarises_keeps_the_draft():
    section = "The moon pulls the sea. " * 10
    summary = "Sure! Here it is:\nMoon."
    shared = await small_shared(StubLLM(outline="- Moon\n- Shore\n", section=section, style=summary))
    await create_article_flow(retries=1).run_async(shared)
    draft = section.strip()
    assert shared["job"].article == f"# Tides\n\n## Moon\n\n{draft}\n\n## Shore\n\n{draft}"


@pytest.mark.anyio
async def test_only_a_small_models_prose_calls_stop_at_its_sign_offs():
    stub = StubLLM(outline="- Moon\n- Shore\n")
    await create_article_flow(retries=1).run_async(await small_shared(stub, SMALL))
    assert len(stub.stream_calls) == 4  # two sections, two restyles
    prose = {"stop": list(pocketflow_nodes.SMALL.prose_stop), "prose": True}
    assert all(call == prose for call in stub.stream_calls)
    assert "stop" not in stub.outline_calls[0] and "prose" not in stub.outline_calls[0]

    stub = StubLLM(outline="- Moon\n- Shore\n")
    await create_article_flow(retries=1).run_async(await small_shared(stub, BIG))
    assert stub.stream_calls == [{"prose": True}, {"prose": True}, {}]  # sections, then style


def test_the_small_model_samples_as_its_authors_advise_with_a_penalty_on_prose_only():
    backend = local_model.LocalModel(Path("m.gguf"), Settings(), never_called).backend()
    assert backend.extra_body == {"temperature": 0.2, "top_p": 0.9, "repeat_penalty": 1.1}
    assert backend.prose_body == {"repeat_penalty": 1.15}
