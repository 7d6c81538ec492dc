"""A fake OpenAI-compatible server: deterministic replies, configurable latency, injected faults.

Tests start it on a free 127.0.0.1 port in a thread and point the real app (and the real openai
client) at it. It tells the three kinds of call apart by their system prompt, as a real model
would by reading it. Run it alone for demos and benches:

    python -m tests.fake_llm --port 9100 --token-delay 0.02
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import re
import socket
import threading
import time
from dataclasses import dataclass, field

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

HOSTILE = (
    '<script>alert("xss")</script> <img src=x onerror="alert(1)"> '
    '<a href="javascript:alert(2)">click me</a> [md link](javascript:alert(3)) '
    '<div hx-get="/api/jobs" hx-trigger="load">htmx bait</div> '
    '<iframe src="https://example.com"></iframe> ![pixel](http://example.com/track.png)'
)
FAULTS = ("500", "429", "429-retry-after", "drop", "hang")


@dataclass
class Call:
    kind: str
    started: float
    finished: float = 0.0  # when it sent its last piece
    ended: float = 0.0  # when its stream ended, whole or cut off by the client (stream calls)
    fault: str | None = None
    request: dict = field(default_factory=dict)  # the JSON body, as the client sent it
    usage: tuple[int, int] | None = None  # (prompt_tokens, completion_tokens) it reported


@dataclass
class FakeLLM:
    """Knobs a test may turn while the server runs."""

    token_delay: float = 0.0  # seconds between streamed tokens
    sections: int = 3  # titles in the outline reply
    section_words: int = 40  # words in the first section; each later one has 10 more
    fail_rate: float = 0.0  # share of calls that fail with one of `faults`
    faults: tuple[str, ...] = FAULTS
    hostile: bool = False  # replies carry HTML, scripts, hx-* attributes and javascript: links
    outline_reply: str | None = None  # reply to outline calls verbatim (e.g. garbage)
    error_status: int | None = None  # answer calls of `error_kinds` with this status
    error_kinds: tuple[str, ...] = ("outline", "section", "style")
    reports_usage: bool = True  # False: ignore stream_options, as llama.cpp's server does
    seed: int = 1234
    calls: list[Call] = field(default_factory=list)
    port: int = 0

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def reset(self) -> None:
        fresh = FakeLLM(port=self.port)
        for name in ("token_delay", "sections", "section_words", "fail_rate", "faults",
                     "hostile", "outline_reply", "error_status", "error_kinds",
                     "reports_usage"):  # fmt: skip
            setattr(self, name, getattr(fresh, name))
        self._random = random.Random(self.seed)
        self.calls.clear()

    def calls_of(self, kind: str) -> list[Call]:
        return [c for c in self.calls if c.kind == kind]

    # Replies

    def reply(self, kind: str, prompt: str) -> str:
        if kind == "outline":
            if self.outline_reply is not None:
                return self.outline_reply
            topic = _between(prompt, "Plan an article about: ", "\n")
            titles = [f"{topic}: part {i + 1}" for i in range(self.sections)]
            if self.hostile:
                titles[0] = f"{titles[0]} {HOSTILE}"
            items = "\n".join(f"  - {t}" for t in titles)
            return f"Here is the outline:\n```yaml\nsections:\n{items}\n```"
        if kind == "section" and "Rewrite this section." in prompt:  # a finished one, again
            title = _between(prompt, 'Here is the section titled "', '"')
            wish = _between(prompt, "Rewrite this section. ", " Reply with")
            return f"This part covers {title} anew ({wish}). Shorter now."
        if kind == "section":
            title = _between(prompt, 'Write the section titled "', '"')
            words = self.section_words + 10 * self._section_index(prompt, title)
            body = " ".join(f"word{i}" for i in range(words))
            text = f"This part covers {title}. {body}."
            return f"{text} {HOSTILE}" if self.hostile else text
        draft = prompt.split("\n\n", 1)[1] if "\n\n" in prompt else prompt
        styled = re.sub(r"(?m)^(?!#)(\S.*)$", r"Friendly: \1", draft.strip())
        return f"{styled}\n\n{HOSTILE}" if self.hostile else styled

    @staticmethod
    def _section_index(prompt: str, title: str) -> int:
        titles = re.findall(r"(?m)^- (.+)$", prompt)
        return titles.index(title) if title in titles else 0

    # Server

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/v1/chat/completions", self._chat, methods=["POST"]),
            Route("/v1/models", lambda r: JSONResponse({"data": [{"id": "fake"}]})),
        ])  # fmt: skip

    async def _chat(self, request: Request) -> Response:
        body = await request.json()
        messages = body["messages"]
        system = next((m["content"] for m in messages if m["role"] == "system"), "")
        kind = "outline" if "outline" in system else "section" if "one section" in system else "style"
        prompt = messages[-1]["content"]
        call = Call(kind, time.monotonic(), request=body)
        self.calls.append(call)
        if self.error_status and kind in self.error_kinds:
            call.fault = str(self.error_status)
            return JSONResponse({"error": {"message": "injected"}}, status_code=self.error_status)
        fault = self._random.choice(self.faults) if self._random.random() < self.fail_rate else None
        call.fault = fault
        if fault == "500":
            return JSONResponse({"error": {"message": "injected failure"}}, status_code=500)
        if fault == "429":
            return JSONResponse({"error": {"message": "slow down"}}, status_code=429)
        if fault == "429-retry-after":
            return JSONResponse({"error": {"message": "slow down"}}, status_code=429,
                                headers={"Retry-After": "0"})  # fmt: skip
        if fault == "hang":
            await asyncio.sleep(3600)
        text = self.reply(kind, prompt)
        tokens = re.findall(r"\S+\s*|\s+", text)
        finish = "stop"
        if body.get("max_tokens") and len(tokens) > body["max_tokens"]:  # as a real server stops
            tokens, finish = tokens[: body["max_tokens"]], "length"
        # Deterministic counts: a word of the messages is a prompt token, a piece sent is one out.
        usage = (sum(len(m["content"].split()) for m in messages), len(tokens))
        if not body.get("stream"):
            await asyncio.sleep(self.token_delay * len(tokens))
            call.finished, call.usage = time.monotonic(), usage
            return JSONResponse(_completion("".join(tokens), finish, usage))
        wanted = self.reports_usage and (body.get("stream_options") or {}).get("include_usage")
        pieces = self._stream(tokens, call, drop=fault == "drop", finish=finish,
                              usage=usage if wanted else None)  # fmt: skip
        return StreamingResponse(pieces, media_type="text/event-stream")

    async def _stream(self, tokens: list[str], call: Call, drop: bool, finish: str = "stop",
                      usage: tuple[int, int] | None = None):  # fmt: skip
        try:
            for index, token in enumerate(tokens):
                if drop and index == len(tokens) // 2:
                    raise ConnectionResetError("injected: stream dropped")
                if self.token_delay:
                    await asyncio.sleep(self.token_delay)
                yield f"data: {json.dumps(_chunk({'content': token}))}\n\n"
            yield f"data: {json.dumps(_chunk({}, finish=finish))}\n\n"
            if usage is not None:  # as OpenAI sends it: one more chunk, with usage, no choices
                call.usage = usage
                yield f"data: {json.dumps({**_chunk({}), 'choices': [], 'usage': _usage(usage)})}\n\n"
            yield "data: [DONE]\n\n"
            call.finished = time.monotonic()
        finally:
            call.ended = time.monotonic()

    def start(self) -> "FakeLLM":
        logging.getLogger("uvicorn.error").setLevel(logging.CRITICAL)  # injected drops are expected
        self.port = self.port or free_port()
        # The stock asyncio loop whatever is installed, so the fake costs the same beside any app.
        config = uvicorn.Config(self.app(), host="127.0.0.1", port=self.port, log_config=None,
                                loop="asyncio")  # fmt: skip
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("fake LLM did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            self._server.force_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)


def _between(text: str, start: str, end: str) -> str:
    head = text.split(start, 1)[-1]
    return head.split(end, 1)[0].strip()


def _chunk(delta: dict, finish: str | None = None) -> dict:
    return {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": int(time.time()),
            "model": "fake", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}  # fmt: skip


def _completion(text: str, finish: str, usage: tuple[int, int]) -> dict:
    return {"id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
            "model": "fake", "choices": [{"index": 0, "finish_reason": finish,
            "message": {"role": "assistant", "content": text}}],
            "usage": _usage(usage)}  # fmt: skip


def _usage(usage: tuple[int, int]) -> dict:
    prompt, completion = usage
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--token-delay", type=float, default=0.02)
    parser.add_argument("--sections", type=int, default=3)
    parser.add_argument("--fail-rate", type=float, default=0.0)
    args = parser.parse_args()
    fake = FakeLLM(token_delay=args.token_delay, sections=args.sections, fail_rate=args.fail_rate)
    uvicorn.run(fake.app(), host="127.0.0.1", port=args.port, log_level="warning", loop="asyncio")
