"""Word-level diffs: what a regeneration or an edit changed."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from draftline.diffs import changed_words, word_diff


def test_a_changed_word_is_removed_then_added():
    pieces = word_diff("The tide comes in twice a day.", "The tide comes in two times a day.")
    assert pieces == [("same", "The tide comes in "), ("removed", "twice "),
                      ("added", "two times "), ("same", "a day.")]  # fmt: skip
    assert changed_words(pieces) == (2, 1)


def test_identical_texts_have_no_changes():
    assert word_diff("Same text.", "Same text.") == [("same", "Same text.")]
    assert word_diff("", "") == []


@given(st.text(), st.text())
def test_a_diff_rejoins_into_both_texts(old, new):
    pieces = word_diff(old, new)
    assert "".join(text for op, text in pieces if op != "removed") == new
    assert "".join(text for op, text in pieces if op != "added") == old
