"""Progress, step indicators and the status line are derived from a job's stored facts."""

from __future__ import annotations

import pytest

from draftline.jobs import Job
from draftline.brief import TopicError, clean_topic


def job_with(**facts) -> Job:
    return Job(id="abcdefgh1234", topic="T", **facts)


def sections(done: int, total: int = 3) -> list[dict]:
    return [{"title": f"S{i}", "text": "x" * 10 if i < done else "", "done": i < done} for i in range(total)]


def test_progress_follows_the_seed_semantics():
    assert job_with(status="running", step="outline").progress == 0
    assert job_with(status="running", step="sections", outline=["a"] * 3, sections=sections(0)).progress == 33
    assert job_with(status="running", step="sections", outline=["a"] * 3, sections=sections(1)).progress == 44
    assert job_with(status="running", step="sections", outline=["a"] * 3, sections=sections(3)).progress == 66
    styling = job_with(status="running", step="style", outline=["a"] * 3, sections=sections(3), article="y" * 15)
    assert styling.progress == 66 + 33 // 2
    styling.article = "y" * 500  # styled text may be longer than the draft: never 100 until done
    assert styling.progress == 99
    assert job_with(status="done", outline=["a"], sections=sections(1, 1)).progress == 100


@pytest.mark.parametrize(
    ("status", "step", "expected"),
    [
        ("queued", None, ["pending", "pending", "pending"]),
        ("running", "outline", ["running", "pending", "pending"]),
        ("running", "sections", ["done", "running", "pending"]),
        ("failed", "style", ["done", "done", "failed"]),
        ("cancelled", "sections", ["done", "stopped", "pending"]),
        ("interrupted", "outline", ["stopped", "pending", "pending"]),
        ("done", None, ["done", "done", "done"]),
    ],
)
def test_step_states(status, step, expected):
    assert [state for _, _, state in job_with(status=status, step=step).step_states] == expected


def test_status_line_names_the_failure():
    assert job_with(status="failed", error="The model did not answer.").status_line == (
        "Failed: The model did not answer."
    )


@pytest.mark.parametrize(
    ("raw", "message"),
    [("", "enter a topic"), ("   \n\t ", "enter a topic"), ("x" * 201, "200 characters"),
     ("bell\x07", "control"), ("nul\x00", "control"),
     ("Invoice \u202egnp.exe", "invisible formatting"), ("a\u2066b\u2069", "invisible formatting"),
     ("zero\u200bwidth", "invisible formatting"), ("\ufeffBOM", "invisible formatting"),
     ("soft\u00adhyphen", "invisible formatting"), ("mark\u200f", "invisible formatting")],
)
def test_bad_topics_are_refused_with_a_clear_message(raw, message):
    with pytest.raises(TopicError, match=message):
        clean_topic(raw)


def test_topics_are_trimmed_and_whitespace_collapsed():
    assert clean_topic("  How   tides\nwork ") == "How tides work"
    assert clean_topic("x" * 200) == "x" * 200
    assert clean_topic("Famílias 👨‍👩‍👧 e marés") == "Famílias 👨‍👩‍👧 e marés"
    assert clean_topic("می\u200cخواهم") == "می\u200cخواهم"  # Persian keeps its non-joiner
    assert clean_topic("שלום עולם") == "שלום עולם"  # right-to-left text itself is fine
