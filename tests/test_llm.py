"""llm.LLM: one object per app holds the backend, its client and the turns at the server."""

from __future__ import annotations

import ast
import asyncio
import base64
import os
import subprocess
import sys
from pathlib import Path

import openai
import pytest

import draftline.llm

from draftline.config import Settings
from draftline.llm import LLM, Backend, LLMError, LLMNotConfigured
from tests.fake_llm import free_port

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parent.parent
SAY_HI = [{"role": "user", "content": "Say hi."}]


async def test_calls_go_to_the_endpoint_the_settings_name(llm):
    chat = LLM(Settings(openai_base_url=llm.base_url, model="fake"))
    try:
        outline = await chat.complete(
            [{"role": "system", "content": "You plan the outline of short articles."},
             {"role": "user", "content": "Plan an article about: Tides"}], max_tokens=50,
        )  # fmt: skip
        assert "- Tides: part 1" in outline.text and not outline.cut_short
        pieces = [p async for p in chat.stream(SAY_HI, max_tokens=50)]
        assert len(pieces) > 1
        assert len(llm.calls) == 2
    finally:
        await chat.aclose()


async def test_without_an_endpoint_a_call_says_what_to_set():
    chat = LLM(Settings())
    assert not chat.backend.configured
    with pytest.raises(LLMNotConfigured, match="set OPENAI_API_KEY"):
        await chat.complete(SAY_HI, max_tokens=5)


async def test_using_another_backend_closes_the_old_client():
    chat = LLM(Settings(openai_base_url="http://127.0.0.1:9/v1"))
    old = chat.client()
    assert chat.client() is old  # one client, reused
    await chat.use(Backend("local llama.cpp", "tiny", "http://127.0.0.1:10/v1", True))
    assert old.is_closed() and chat.backend.model == "tiny"
    new = chat.client()
    assert new is not old and str(new.base_url) == "http://127.0.0.1:10/v1/"
    await chat.aclose()
    assert new.is_closed()


async def test_prepare_builds_the_client_before_the_first_call_and_the_call_reuses_it(
    llm, monkeypatch
):
    built = []
    real = openai.AsyncOpenAI
    monkeypatch.setattr(openai, "AsyncOpenAI", lambda **kw: built.append(kw) or real(**kw))
    LLM(Settings()).prepare()  # nothing configured: nothing built, and no error
    assert built == []
    chat = LLM(Settings(openai_base_url=llm.base_url, model="fake"))
    try:
        chat.prepare()
        assert len(built) == 1
        assert (await chat.complete(SAY_HI, max_tokens=5)).text
        await chat.use(Backend("local llama.cpp", "fake", llm.base_url, True))
        assert len(built) == 2  # a new backend: its client is built at once too
        assert (await chat.complete(SAY_HI, max_tokens=5)).text
        assert len(built) == 2
    finally:
        await chat.aclose()


async def test_an_unavailable_backend_fails_every_call_at_once():
    chat = LLM(Settings(), Backend("local llama.cpp", "tiny", "http://127.0.0.1:9/v1", True,
                                   unavailable="The embedded model cannot run."))  # fmt: skip
    with pytest.raises(LLMError, match="The embedded model cannot run.") as failure:
        await chat.complete(SAY_HI, max_tokens=5)
    assert failure.value.transient is False


async def test_each_call_hands_on_the_tokens_the_server_reports_streams_included(llm):
    chat, counted = LLM(Settings(openai_base_url=llm.base_url, model="fake")), []

    async def on_usage(prompt_tokens: int, completion_tokens: int) -> None:
        counted.append((prompt_tokens, completion_tokens))

    try:
        reply = await chat.complete(SAY_HI, max_tokens=50, on_usage=on_usage)
        pieces = [p async for p in chat.stream(SAY_HI, max_tokens=3, on_usage=on_usage)]
    finally:
        await chat.aclose()
    assert [call.request["stream_options"] for call in llm.calls] == [{"include_usage": True}] * 2
    assert counted == [call.usage for call in llm.calls] == [(2, 3), (2, 3)]  # one each
    assert reply.text == "Friendly: Say hi." and len(pieces) == 3  # usage is not text
    assert "on_usage" not in llm.calls[0].request  # ours, never the provider's


async def test_a_server_that_reports_no_usage_counts_nothing(llm):
    llm.reports_usage = False
    chat, counted = LLM(Settings(openai_base_url=llm.base_url, model="fake")), []

    async def on_usage(prompt_tokens: int, completion_tokens: int) -> None:
        counted.append((prompt_tokens, completion_tokens))

    try:
        pieces = [p async for p in chat.stream(SAY_HI, max_tokens=50, on_usage=on_usage)]
    finally:
        await chat.aclose()
    assert "".join(pieces) == "Friendly: Say hi." and counted == []


async def test_a_stream_that_goes_quiet_fails_within_the_timeout_as_transient(llm):
    llm.token_delay = 2.0  # the headers come at once, then each token after 2 s
    chat = LLM(Settings(openai_base_url=llm.base_url, model="fake", llm_timeout=0.3))
    started = asyncio.get_running_loop().time()
    try:
        with pytest.raises(LLMError, match="did not answer within 0.3 s") as failure:
            [p async for p in chat.stream(SAY_HI, max_tokens=50)]
    finally:
        await chat.aclose()
    assert failure.value.transient
    assert asyncio.get_running_loop().time() - started < 1.5


async def test_a_refused_connection_fails_at_once_as_lost_not_as_a_timeout():
    chat = LLM(Settings(openai_base_url=f"http://127.0.0.1:{free_port()}/v1", llm_timeout=30))
    started = asyncio.get_running_loop().time()
    try:
        with pytest.raises(LLMError, match="Lost the connection to the LLM") as failure:
            [p async for p in chat.stream(SAY_HI, max_tokens=50)]
    finally:
        await chat.aclose()
    assert failure.value.transient
    assert asyncio.get_running_loop().time() - started < 5


async def test_a_user_and_password_in_the_base_url_go_as_basic_auth_in_place_of_the_key():
    heads = []

    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        heads.append((await reader.readuntil(b"\r\n\r\n")).decode())
        writer.write(b"HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\n"
                     b"content-length: 2\r\nconnection: close\r\n\r\n{}")  # fmt: skip
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(refuse, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    chat = LLM(Settings(openai_base_url=f"http://ann:p%40ss@127.0.0.1:{port}/v1",
                        openai_api_key="sk-key"))  # fmt: skip
    try:
        with pytest.raises(LLMError, match="refused our credentials"):
            await chat.complete(SAY_HI, max_tokens=5)
    finally:
        await chat.aclose()
        server.close()
    lines = heads[0].lower().split("\r\n")
    assert lines[0] == "post /v1/chat/completions http/1.1"
    assert f"host: 127.0.0.1:{port}" in lines
    assert "authorization: basic " + base64.b64encode(b"ann:p@ss").decode().lower() in lines
    assert "sk-key" not in heads[0]


async def test_a_caller_slower_than_the_timeout_between_pieces_still_gets_every_piece(llm):
    # The deadline is the server's: time the caller spends with a piece is not counted.
    chat = LLM(Settings(openai_base_url=llm.base_url, model="fake", llm_timeout=0.2))
    pieces = []
    try:
        async for piece in chat.stream(SAY_HI, max_tokens=50):
            pieces.append(piece)
            await asyncio.sleep(0.3)
    finally:
        await chat.aclose()
    assert "".join(pieces) == "Friendly: Say hi."


LONG_DRAFT = [{"role": "user", "content": "Style it.\n\n" + " ".join(f"w{i}" for i in range(30))}]


async def reads_of_one_stream(chat: LLM) -> tuple[str, int]:
    """The reply, and how many reads it came in: pieces within 10 ms of each other came in one."""
    loop, arrivals, pieces = asyncio.get_running_loop(), [], []
    async for piece in chat.stream(LONG_DRAFT, max_tokens=100):
        arrivals.append(loop.time())
        pieces.append(piece)
    reads = 1 + sum(later - earlier > 0.01 for earlier, later in zip(arrivals, arrivals[1:]))
    return "".join(pieces), reads


async def test_with_many_streams_open_each_is_read_in_batches(llm, monkeypatch):
    llm.token_delay = 0.03  # 31 tokens over about 0.9 s
    chat = LLM(Settings(openai_base_url=llm.base_url, model="fake"))
    try:
        alone, reads_alone = await reads_of_one_stream(chat)  # fewer than GATHER_FROM open
        monkeypatch.setattr(draftline.llm, "GATHER_FROM", 1)
        monkeypatch.setattr(draftline.llm, "GATHER_PAUSE", 0.2)
        gathered, reads_gathered = await reads_of_one_stream(chat)
    finally:
        await chat.aclose()
    assert gathered == alone == "Friendly: " + " ".join(f"w{i}" for i in range(30))
    assert reads_alone >= 20, reads_alone  # a token a read
    # About one read every 0.2 s; as many as tokens if the connection under openai's client
    # could not be found (llm._transport_of), and streams were read as they came.
    assert reads_gathered <= 8, reads_gathered


async def test_a_connection_paused_between_reads_reads_again_once_its_stream_ends(llm, monkeypatch):
    # It goes back to the pool: left paused, the next call on it would wait out the pause.
    monkeypatch.setattr(draftline.llm, "GATHER_FROM", 1)
    monkeypatch.setattr(draftline.llm, "GATHER_PAUSE", 0.3)
    llm.token_delay = 0.01
    ended = []
    real_stop = draftline.llm._Gathering.stop
    monkeypatch.setattr(draftline.llm._Gathering, "stop",
                        lambda gathering: ended.append(gathering) or real_stop(gathering))  # fmt: skip
    chat = LLM(Settings(openai_base_url=llm.base_url, model="fake"))
    try:
        reply, reads = await reads_of_one_stream(chat)
        transport = ended[0].transport
        assert reads > 1 and not transport.is_closing() and transport.is_reading()
        assert (await chat.complete(SAY_HI, max_tokens=50)).text == "Friendly: Say hi."
    finally:
        await chat.aclose()


async def test_streamed_chunks_reach_the_caller_as_parsed_without_building_models(llm, monkeypatch):
    # openai runs every chunk through construct_type unless the stream's item type is `object`:
    # ~75 us a token for a model, still some for `dict`. Under load that was the app's CPU.
    import openai._base_client

    built = []
    real = openai._base_client.construct_type
    monkeypatch.setattr(openai._base_client, "construct_type",
                        lambda **kw: built.append(kw) or real(**kw))  # fmt: skip
    chat = LLM(Settings(openai_base_url=llm.base_url, model="fake"))
    try:
        pieces = [p async for p in chat.stream(SAY_HI, max_tokens=50)]
    finally:
        await chat.aclose()
    assert "".join(pieces) == "Friendly: Say hi."
    assert built == []


async def test_an_error_from_on_usage_reaches_the_caller_as_it_was(llm):
    chat = LLM(Settings(openai_base_url=llm.base_url, model="fake"))

    async def refuse(prompt_tokens: int, completion_tokens: int) -> None:
        raise LLMError("over budget", transient=False)

    try:
        with pytest.raises(LLMError, match="over budget"):
            [p async for p in chat.stream(SAY_HI, max_tokens=50, on_usage=refuse)]
        with pytest.raises(TimeoutError):  # not turned into "the model did not answer"
            await chat.complete(SAY_HI, max_tokens=50, on_usage=_time_out)
    finally:
        await chat.aclose()


async def _time_out(prompt_tokens: int, completion_tokens: int) -> None:
    raise TimeoutError("the job's deadline")


def imports(path: Path) -> set[str]:
    """The modules `path` imports: `openai`, `.config`, and `.llm` for `from . import llm`."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add("." * node.level + node.module)
        elif isinstance(node, ast.ImportFrom):
            found |= {"." * node.level + alias.name for alias in node.names}
    return found


def test_llm_py_alone_imports_openai_and_knows_nothing_of_the_local_model():
    importers = {path.name for path in ROOT.glob("*.py") if "openai" in imports(path)}
    assert importers == {"llm.py"}
    assert ".local_model" in imports(ROOT / "app.py")  # the check sees relative imports
    assert not {".local_model", "draftline.local_model"} & imports(ROOT / "llm.py")


async def test_prose_calls_carry_the_backends_prose_sampling_on_top_of_its_own(llm):
    backend = Backend("local llama.cpp", "fake", llm.base_url, True,
                      extra_body={"temperature": 0.2, "repeat_penalty": 1.1},
                      prose_body={"repeat_penalty": 1.15})  # fmt: skip
    chat = LLM(Settings(), backend)
    try:
        await chat.complete(SAY_HI, max_tokens=5)
        await chat.complete(SAY_HI, max_tokens=5, prose=True)
        _ = [p async for p in chat.stream(SAY_HI, max_tokens=5, prose=True,
                                          extra_body={"min_tokens": 1})]  # fmt: skip
    finally:
        await chat.aclose()
    plain, prose, streamed = (call.request for call in llm.calls)
    assert (plain["temperature"], plain["repeat_penalty"]) == (0.2, 1.1)
    assert (prose["temperature"], prose["repeat_penalty"]) == (0.2, 1.15)
    assert (streamed["repeat_penalty"], streamed["min_tokens"]) == (1.15, 1)  # the call's wins
    assert "prose" not in prose  # ours, never the provider's


def smoke(**env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "draftline.llm"], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=30)  # fmt: skip


def test_python_m_llm_makes_one_call_to_the_configured_endpoint(llm):
    done = smoke(OPENAI_BASE_URL=llm.base_url, DRAFTLINE_MODEL="fake")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Friendly: In one sentence, what is a lighthouse for?")
    assert done.stderr == f"openai-compatible: fake at {llm.base_url}\n"
    assert len(llm.calls) == 1


def test_python_m_llm_without_an_endpoint_says_what_to_set():
    done = smoke()
    assert done.returncode == 1
    assert done.stderr.startswith("draftline.llm: set OPENAI_API_KEY or OPENAI_BASE_URL.")
    assert "Traceback" not in done.stderr
