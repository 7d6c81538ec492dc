"""Cleaning up the embedded model's replies, on replies SmolLM2-135M-Instruct really gave.

The files in tests/fixtures/smollm2/ were recorded with `bench/local_quality.py --record` from the
app's own prompts; none was edited. No model is needed here.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from draftline.outline import OutlineError, parse_outline, tidy_small_prose
from draftline.pocketflow_nodes import FULL, SMALL, tidy

FIXTURES = Path(__file__).parent / "fixtures" / "smollm2"


def reply(name: str) -> str:
    return (FIXTURES / f"{name}.txt").read_text()


def sentences(text: str) -> list[str]:
    """Sentences of eight words or more, whitespace collapsed: the ones a reader sees repeated."""
    found = re.split(r"(?<=[.!?])\s+", " ".join(text.split()))
    return [s for s in found if len(s.split()) >= 8]


def repeated(text: str) -> list[str]:
    return [s for s, n in Counter(sentences(text)).items() if n > 1]


@pytest.mark.parametrize(
    "name", ["sky-section-repeats-its-first-paragraph", "sky-restyle-says-it-three-times"]
)
def test_verbatim_repeats_are_dropped_and_everything_said_once_is_kept(name):
    raw = reply(name)
    assert repeated(raw), "the recorded reply repeats itself"
    clean = tidy_small_prose(raw)
    assert repeated(clean) == []
    assert set(sentences(clean)) == set(sentences(raw))  # each sentence still there, once
    assert clean.split(". ")[0] == " ".join(raw.split()).split(". ")[0]  # the first one stays


def test_a_paragraph_said_twice_is_kept_once():
    clean = tidy_small_prose(reply("sky-section-repeats-its-first-paragraph"))
    paragraphs = clean.split("\n\n")
    assert len(paragraphs) == len(set(paragraphs)) == 3  # the fourth was the first again


def test_the_model_talking_about_its_rewrite_is_dropped_and_the_text_kept():
    raw = reply("lighthouse-restyle-talks-about-itself")
    clean = tidy_small_prose(raw)
    for chatter in ("This is a rewritten version", "I added personal touches", "I also made"):
        assert chatter in raw and chatter not in clean
    assert "conversational tone" not in clean
    assert clean.endswith("Lighthouse keepers have been doing this for thousands of years. "
                          "They're still doing it today.")  # fmt: skip


def test_titles_with_words_run_together_are_refused_so_the_outline_is_asked_again():
    raw = reply("sky-outline-runs-words-together")  # "breathtakinglyblue,p", "withitalll"
    with pytest.raises(OutlineError):
        parse_outline(raw, 3, topic="Why the sky is blue", minimum=2, small_model=True)


@pytest.mark.parametrize(
    "title",
    [
        "The art of creating a breathtaking canvas, one that'sselvedtobesoar",
        "Available in the following format",
        "The light ofthe sun reaches every cornerof earth",
        "Bold text with bullet points",
        "The benefits of using sourdough for health reasons, aswellaside",
    ],
)
def test_garbled_titles_and_formatting_remarks_are_not_the_small_models_titles(title):
    with pytest.raises(OutlineError):
        parse_outline(f"- {title}\n", small_model=True)
    assert parse_outline(f"- {title}\n") == [title]  # a good model's titles are its own business


def test_ordinary_titles_of_the_small_model_are_kept():
    titles = "- A cat's whiskers\n- Rock'n'roll and the sea\n- Step-by-step: a first loaf\n"
    assert parse_outline(titles, small_model=True) == [
        "A cat's whiskers", "Rock'n'roll and the sea", "Step-by-step: a first loaf"]  # fmt: skip


def test_a_good_models_text_is_left_as_it_wrote_it():
    text = (
        "Repetition is a device, and good writers use it on purpose every single day.\n\n"
        "Repetition is a device, and good writers use it on purpose every single day.\n\n"
        "Its conversational tone, as requested by readers, is what they remember.\n\n"
        "The end."
    )
    assert tidy(text, FULL) == text
    assert tidy(text, SMALL) == (
        "Repetition is a device, and good writers use it on purpose every single day.\n\nThe end."
    )


def test_markdown_blocks_are_kept_whole():
    text = "## Tools\n\n- a jar with a lid\n- flour and water\n\nFeed it daily. Keep it warm."
    assert tidy_small_prose(text) == text


def test_what_an_earlier_section_said_is_not_said_again_later():
    said: set[str] = set()
    first = tidy_small_prose(reply("sky-section-repeats-its-first-paragraph"), said)
    again = tidy_small_prose(reply("sky-section-repeats-its-first-paragraph"), said)
    assert first and again == ""
