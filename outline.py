"""Turn a model's outline reply into section titles, leniently.

Models answer an outline request in many shapes: fenced or bare YAML, numbered or bulleted lists,
Markdown headings, with chatter around them. We read the list items and ignore the rest.
"""

from __future__ import annotations

import re

MAX_SECTIONS = 5
MAX_TITLE_LENGTH = 80

_FENCE = re.compile(r"```[a-zA-Z]*\n?(.*?)```", re.DOTALL)
_ITEM = re.compile(
    r"""^\s*(?:
        [-*+•]\s+ |                                 # - bullet
        \d{1,2}\s*[.)]\s+ |                         # 1. or 1)
        \#{1,6}\s+ |                                # ## heading
        (?:section|part)\s*\d{1,2}\s*[:.\-–]\s*     # Section 1: title
    )(?P<rest>.+)$""",
    re.IGNORECASE | re.VERBOSE,
)
_KEY_VALUE = re.compile(r"^(?:title|name|heading|section)\s*:\s*(?P<value>.+)$", re.IGNORECASE)
_BARE_KEY = re.compile(r"^\s*[A-Za-z_ ]{1,30}:\s*$")


class OutlineError(ValueError):
    """The reply held no usable list of titles."""


def parse_outline(reply: str, limit: int = MAX_SECTIONS) -> list[str]:
    """Return up to `limit` distinct titles, or raise OutlineError."""
    fenced = _FENCE.findall(reply)
    text = "\n".join(fenced) if fenced else reply
    titles: list[str] = []
    for line in text.splitlines():
        if _BARE_KEY.match(line):  # "sections:" and other YAML keys
            continue
        match = _ITEM.match(line)
        if match is None:
            continue
        title = clean_title(match.group("rest"))
        if title:
            titles.append(title)
    titles = distinct(titles)[:limit]
    if not titles:
        raise OutlineError("The model's outline held no list of section titles.")
    return titles


def clean_title(raw: str) -> str:
    value = raw.strip()
    key_value = _KEY_VALUE.match(value)
    if key_value:
        value = key_value.group("value")
    value = value.strip().strip("\"'`").strip()
    value = re.sub(r"^\*\*(.+?)\*\*:?", r"\1", value)  # **Bold**: rest -> Bold
    value = value.strip("*_ ").rstrip(":").strip()
    if len(value) > MAX_TITLE_LENGTH:  # a sentence of prose, not a title
        return ""
    return value


def distinct(titles: list[str]) -> list[str]:
    seen: set[str] = set()
    unique = []
    for title in titles:
        key = re.sub(r"\W+", " ", title).strip().casefold()
        if key and key not in seen:
            seen.add(key)
            unique.append(title)
    return unique
