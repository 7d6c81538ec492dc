"""Word-level differences between two texts, for showing what a regeneration or an edit changed.

Words are compared with their trailing whitespace, so a diff rejoins into the new text exactly
and line breaks stay where they were. The result is plain (op, text) pieces: templates escape
them, so LLM text never becomes markup on its way through.
"""

from __future__ import annotations

import re
from difflib import SequenceMatcher
from typing import Literal

Piece = tuple[Literal["same", "added", "removed"], str]
_WORDS = re.compile(r"\S+\s*|\s+")


def word_diff(old: str, new: str) -> list[Piece]:
    """`old` to `new` as runs of unchanged, removed and added words."""
    before, after = _WORDS.findall(old), _WORDS.findall(new)
    pieces: list[Piece] = []
    matcher = SequenceMatcher(a=before, b=after, autojunk=False)
    for op, a1, a2, b1, b2 in matcher.get_opcodes():
        if op == "equal":
            pieces.append(("same", "".join(after[b1:b2])))
            continue
        if a2 > a1:
            pieces.append(("removed", "".join(before[a1:a2])))
        if b2 > b1:
            pieces.append(("added", "".join(after[b1:b2])))
    return pieces


def changed_words(pieces: list[Piece]) -> tuple[int, int]:
    """How many words were added and removed."""
    added = sum(len(text.split()) for op, text in pieces if op == "added")
    removed = sum(len(text.split()) for op, text in pieces if op == "removed")
    return added, removed
