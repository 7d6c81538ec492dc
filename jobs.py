"""The job model: what a job is, and what follows from it.

A Job holds only facts (topic, status, step, outline, sections, article, error); progress, the
step indicators and the status line are derived from them, so every view of a job agrees.

Each change to a job is published as an Event under a key naming the part of the page it updates
("job", "outline", "section:2", "article", "done"). An event replaces that part's content, so only
the latest event per key is kept: the history stays bounded and replaying it is harmless. An
event carries facts (JSON), never HTML: pages are drawn where they are served (streams.py).
"""

from __future__ import annotations

import dataclasses
import json
import re
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from .brief import Options

STATUSES = ("queued", "running", "review", "done", "failed", "cancelled", "interrupted")
# Not running: nothing more will happen until a person acts. `review` waits for the outline to
# be approved; it holds no running slot, and a restart leaves it as it is.
FINAL_STATUSES = frozenset({"review", "done", "failed", "cancelled", "interrupted"})
STEPS = (("outline", "Outline"), ("sections", "Sections"), ("style", "Style"))
_STEP_NAMES = [name for name, _ in STEPS]
JOB_ID = re.compile(r"^[A-Za-z0-9_-]{8,32}$")


def new_job_id() -> str:
    return secrets.token_urlsafe(9)


@dataclass
class Job:
    id: str
    topic: str
    status: str = "queued"
    step: str | None = None
    outline: list[str] | None = None
    sections: list[dict] = field(default_factory=list)
    article: str = ""
    error: str | None = None
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    last_seq: int = 0
    client: str = ""
    queue_position: int | None = None  # 1 = next to start; set while queued
    options: dict = field(default_factory=dict)  # brief.Options as a record: length, tone, ...
    usage: dict = field(default_factory=dict)  # tokens paid for: prompt_tokens, completion_tokens
    # A part being written again for a job that was resting (`review` or `done`):
    # {"what": "outline" | "section", "index": n, "instruction": "shorter", "kept": {...}},
    # `kept` holding the section and article a section's rewrite replaces until it finishes.
    redo: dict | None = None

    @property
    def brief(self) -> Options:
        return Options.from_record(self.options)

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def progress(self) -> int:
        """0-33 % outline, 33-66 % sections (each finished one advances it), 66-100 % style."""
        if self.status == "done":
            return 100
        if not self.outline:
            return 0
        if self.step != "style":
            written = sum(1 for s in self.sections if s["done"])
            return 33 + (33 * written) // max(len(self.sections), 1)
        draft_length = sum(len(s["text"]) for s in self.sections) or 1
        return min(99, 66 + (33 * len(self.article)) // draft_length)

    @property
    def step_states(self) -> list[tuple[str, str, str]]:
        """(name, label, state) per step; state is pending, running, done, failed or stopped."""
        if self.status == "review":  # planned; nothing written yet
            return [(name, label, "done" if name == "outline" else "pending")
                    for name, label in STEPS]  # fmt: skip
        current = _STEP_NAMES.index(self.step) if self.step in _STEP_NAMES else -1
        stopped = {"running": "running", "failed": "failed"}.get(self.status, "stopped")
        states = []
        for index, (name, label) in enumerate(STEPS):
            if self.status == "done" or index < current:
                state = "done"
            elif index == current and self.status != "queued":
                state = stopped
            else:
                state = "pending"
            states.append((name, label, state))
        return states

    @property
    def sections_written(self) -> int:
        return sum(1 for s in self.sections if s["done"])

    @property
    def tokens(self) -> dict[str, int]:
        """The tokens the LLM reported for this job so far, every run and rewrite of it included
        (0 where its server reports none)."""
        return {key: self.usage.get(key, 0) for key in ("prompt_tokens", "completion_tokens")}

    def cost(self, prices: Prices | None) -> float | None:
        """What those tokens cost at `prices`, or None when no price is set."""
        return prices.cost(self.tokens) if prices else None

    @property
    def word_count(self) -> int:
        return len(self.article.split())

    @property
    def status_line(self) -> str:
        if self.status == "queued":
            if self.queue_position:
                return f"Waiting in line: number {self.queue_position}."
            return "Waiting to start…"
        if self.status == "running" and self.redo:
            if self.redo["what"] == "outline":
                return "Planning a new outline…"
            if self.step == "sections":
                return f"Rewriting section {self.redo['index'] + 1}…"
            return "Polishing the style again…"
        if self.status == "review":
            return "The outline is ready: change it if you like, then press Write it."
        if self.status == "running":
            if self.step == "sections":
                return f"Writing sections: {self.sections_written} of {len(self.sections)} done…"
            if self.step == "style":
                return "Polishing the style…"
            return "Planning the outline…"
        if self.status == "done":
            note = f" {self.error}" if self.error else ""  # a redo that did not finish
            return f"Ready: {self.word_count} words.{note}"
        if self.status == "failed":
            return f"Failed: {self.error}"
        if self.status == "cancelled":
            return "Cancelled. Everything written so far is kept."
        return "Interrupted by a server restart. Everything finished so far is kept."

    def to_record(self) -> dict[str, Any]:
        """Every fact, as JSON-able values: what a store keeps and an event carries. The lists
        and dicts are the job's own (dataclasses.asdict's deep copy costs more than the JSON it
        feeds): serialise the record, never change it."""
        return {name: getattr(self, name) for name in _FIELD_NAMES}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> "Job":
        return cls(**record)

    def event_data(self, key: str) -> str:
        """What an event with this key carries: the section it names, or every fact."""
        if key.startswith("section:"):
            index = int(key.partition(":")[2])
            return json.dumps({"index": index, **self.sections[index]})
        return json.dumps(self.to_record())

    def to_api(self, prices: Prices | None = None) -> dict:
        """The job as the JSON API shows it; its usage has a `cost` when `prices` are set."""
        cost = self.cost(prices)
        usage = self.tokens if cost is None else {**self.tokens, "cost": round(cost, 6)}
        return {
            "id": self.id,
            "topic": self.topic,
            "status": self.status,
            "progress": self.progress,
            "step": self.step,
            "outline": self.outline,
            "sections": [{"title": s["title"], "text": s["text"]} for s in self.sections],
            "article": self.article,
            "error": self.error,
            "options": self.brief.to_record(),
            "usage": usage,
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
        }


_FIELD_NAMES = tuple(f.name for f in dataclasses.fields(Job))


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Prices:
    """What 1,000 tokens cost in the operator's currency (DRAFTLINE_PRICE_PER_1K_INPUT and
    DRAFTLINE_PRICE_PER_1K_OUTPUT), None where unset. Prices are settings, never stored with a
    job: a cost is worked out where it is shown, at today's prices."""

    input: float | None = None  # prompt tokens
    output: float | None = None  # completion tokens

    def __bool__(self) -> bool:
        """Whether a cost can be shown: either price is set (an unset one counts as free)."""
        return self.input is not None or self.output is not None

    def cost(self, tokens: dict[str, int]) -> float:
        return (tokens["prompt_tokens"] * (self.input or 0.0)
                + tokens["completion_tokens"] * (self.output or 0.0)) / 1000  # fmt: skip


@dataclass(frozen=True)
class Event:
    seq: int
    key: str
    name: str
    data: str
    published_at: float = 0.0  # unix time, sent as an SSE comment so delivery delay can be measured


@dataclass(frozen=True)
class Version:
    """One numbered state of a finished article: styled, regenerated, edited or restored."""

    n: int
    kind: str  # what made it, as a person reads it: "styled", "edited", "restored v2", ...
    created_at: float
    article: str

    def to_api(self) -> dict:
        return {"n": self.n, "kind": self.kind, "created_at": _iso(self.created_at),
                "words": len(self.article.split()), "article": self.article}  # fmt: skip

