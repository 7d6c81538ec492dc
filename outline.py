"""Read a model's replies leniently: section titles from an outline, prose without chatter.

Models answer an outline request in many shapes: fenced or bare YAML, numbered or bulleted lists,
Markdown headings, `<<Title>>`, "Section 1: ..." lines, with chatter around them. We read the list
items and ignore the rest. A model as small as SmolLM2-135M also copies the prompt's example titles,
repeats one title, echoes the article's topic as a section, and ends titles mid-phrase; those
are dropped or trimmed here, and `fallback_outline` gives a plain outline when nothing usable is
left. A good model's titles are kept whole: "What a Fresnel lens is" ends on a function word on
purpose, so only a title that was really cut short loses its dangling words.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

MAX_SECTIONS = 5
MAX_TITLE_LENGTH = 80
SHORT_TITLE_LENGTH = 40  # past this, a title's subtitle is dropped

_FENCE = re.compile(r"```[a-zA-Z]*\n?(.*?)```", re.DOTALL)
_ITEM = re.compile(
    r"""^\s*(?:
        [-*+•]\s+ |                                         # - bullet
        \d{1,2}\s*[.)]\s+ |                                 # 1. or 1)
        \#{1,6}\s+ |                                        # ## heading
        (?=(?:\*\*)?(?:section|part|chapter)\s*\d{1,2}(?:\*\*)?(?:\s*[:.)]|\s+[-–—]))  # Part 1:
    )(?P<rest>.+)$""",
    re.IGNORECASE | re.VERBOSE,
)
_ANGLED = re.compile(r"^\s*<<\s*(?P<rest>[^<>]+?)\s*>>\s*$")  # <<Title>>: SmolLM2's own habit
_KEY_VALUE = re.compile(r"^(?:title|name|heading|section)\s*:\s*(?P<value>.+)$", re.IGNORECASE)
_BARE_KEY = re.compile(r"^\s*[A-Za-z_ ]{1,30}:\s*$")
# "Section 1:", "Part 2 -", "Article 3.", "A:", "The first section title:" before the real title.
_LABEL = re.compile(
    r"""^(?:
        (?:the\s+)?(?:\w+\s+)?(?:section|part|chapter|article|step)
            (?:\s+(?:title|\d{1,2}|[ivx]{1,4}))?
            (?:\s*[:.)]|\s+[-–—]) |
        [A-E]\s*[:)]
    )\s*""",
    re.IGNORECASE | re.VERBOSE,
)
_BARE_LABEL = re.compile(r"^(?:section|part|chapter|article|step)\s*\d{0,2}$", re.IGNORECASE)
_PLACEHOLDER = re.compile(r"^<.*>$|^\[.*\]$|\.\.\.|…")
# The prompt itself, repeated back as if it were a title.
_ECHO = re.compile(
    r"\bsection titles?\b|\bstarting with\b|\bone per line\b|\b(?:short )?article (?:about|on)\b"
    r"|\bthis article\b|\boutline\b",
    re.IGNORECASE,
)
# A small model's title with words run together or cut off, and titles that are remarks about
# formatting ("Available in the following format") rather than about the subject.
_GARBLED = re.compile(
    r"[a-z][,.;:!?][a-z]"  # "blue,p": punctuation inside a word
    r"|'(?:s|t|re|ve|ll|d|m)[a-z]{2,}"  # "that'sselved": a contraction run into the next word
    r"|([a-z])\1\1"  # "withitalll"
    r"|[a-z]{17,}"  # "breathtakinglyblue": longer than the words titles are made of
    r"|(?:of|in|to|on|for|and|with|from)the(?!s[iy]|r|m|n|y)"  # "takingcareofthe", "inthe"
    r"|\bthe(?:of|and|in|to)\b",
    re.IGNORECASE,
)
_FORMAT_REMARK = re.compile(
    r"\b(?:format(?:ted|ting)?|bullet points?|bold text|markdown|rewritten|paragraphs?|"
    r"word count|numbered list|available in the following)\b"
    r"|\b(?:sub)?headings?\b(?! (?:out|to|into|for|home|off|back)\b)",  # not "Heading home"
    re.IGNORECASE,
)
RUN_TOGETHER_LETTERS = 9  # "aswellaside": a lowercase word this long that no dictionary knows


@functools.cache
def _dictionary():
    """pyspellchecker's English words (it comes with the `local` extra), or None without it."""
    try:
        from spellchecker import SpellChecker
    except ImportError:
        return None
    return SpellChecker(language="en")


def _run_together(title: str) -> bool:
    """A lowercase word of RUN_TOGETHER_LETTERS or more that the dictionary does not know: the
    small model glued words together ("aswellaside"). Capitalised words may be names."""
    dictionary = _dictionary()
    if dictionary is None:
        return False
    words = re.findall(r"\b[a-z]+\b", re.sub(r"'s\b", "", title))
    long_words = [w for w in words if len(w) >= RUN_TOGETHER_LETTERS]
    return bool(long_words) and len(dictionary.known(long_words)) < len(set(long_words))


# Words a title cut off mid-phrase ends on ("The science behind sourdough and their role in").
_DANGLING = frozenset(
    "a an and are as at be but by for from has have in into is its of on or our so than that the "
    "their this to was were which while who with your".split()
)


class OutlineError(ValueError):
    """The reply held no usable list of titles."""


def parse_outline(
    reply: str,
    limit: int = MAX_SECTIONS,
    *,
    topic: str = "",
    examples: Iterable[str] = (),
    minimum: int = 1,
    cut_short: bool = False,
    small_model: bool = False,
) -> list[str]:
    """Return up to `limit` distinct titles, or raise OutlineError if fewer than `minimum` are left.

    Titles that only repeat the topic or one of the prompt's `examples` are dropped: a model that
    copies its instructions has not planned anything. Dangling words ("... and their role in") are
    trimmed from the last title of a reply that max_tokens `cut_short`, and from every title of a
    `small_model`, which ends titles mid-phrase of its own accord (and at the grammar's word cap)
    and rambles on after a colon.
    """
    fenced = _FENCE.findall(reply)
    text = "\n".join(fenced) if fenced else reply
    ignored = {_key(t) for t in (topic, *examples) if _key(t)}
    items = [
        match.group("rest")
        for line in text.splitlines()
        if not _BARE_KEY.match(line)  # "sections:" and other YAML keys
        and (match := _ITEM.match(line) or _ANGLED.match(line))
    ]
    titles: list[str] = []
    for number, item in enumerate(items, 1):
        trim = small_model or (cut_short and number == len(items))
        title = clean_title(item, topic=topic, trim_dangling=trim, drop_subtitle=small_model)
        if title and _key(title) not in ignored:
            titles.append(title)
    titles = distinct(titles)[:limit]
    if len(titles) < max(1, minimum):
        raise OutlineError("The model's outline held no list of section titles.")
    return titles


def clean_title(
    raw: str, *, topic: str = "", trim_dangling: bool = False, drop_subtitle: bool = False
) -> str:
    """The title in one list item, or "" when the item is not a usable title.

    `trim_dangling` drops the function words a title cut off mid-phrase ends on; `drop_subtitle`
    (for the small model) keeps only "Short title" of a long "Short title: a subtitle that rambles
    on", and refuses a garbled title or a remark about formatting.
    """
    value = raw.strip()
    key_value = _KEY_VALUE.match(value)
    if key_value:
        value = key_value.group("value")
    value = value.strip().strip("\"'`").strip()
    value = re.sub(r"^\*\*([^*]+?)\*\*\s*(?::|\s[-–—])\s.*$", r"\1", value)  # **Bold**: x
    value = value.replace("**", "").strip("*_ ")
    value = _LABEL.sub("", value, count=1).strip()
    if _BARE_LABEL.match(value) or _PLACEHOLDER.search(value) or _ECHO.search(value):
        return ""
    value = value.strip("\"'`<> ").rstrip(":;,.-–— ").strip()
    if trim_dangling:
        words = value.split()
        while len(words) > 1 and words[-1].casefold().strip(",;:") in _DANGLING:
            words.pop()
        value = " ".join(words).rstrip(":;,.-–— ")
    value = _shorten(value, topic, drop_subtitle)
    if len(value) > MAX_TITLE_LENGTH:  # a sentence of prose, not a title
        return ""
    if drop_subtitle and (
        _GARBLED.search(value) or _FORMAT_REMARK.search(value) or _run_together(value)
    ):
        return ""  # the small model's: better another outline, or the plain one, than this
    return value[:1].upper() + value[1:]


def _shorten(title: str, topic: str, drop_subtitle: bool) -> str:
    """ "Topic: what this section is" -> the part after the colon (the topic is the article's own
    title); with `drop_subtitle`, "Short title: a long subtitle that rambles on" -> the part before
    it."""
    head, sep, tail = title.partition(": ")
    if not sep or not tail.strip():
        return title
    if topic and _key(head) == _key(topic):
        return clean_title(tail, drop_subtitle=drop_subtitle) or title
    if drop_subtitle and len(title) > SHORT_TITLE_LENGTH and len(head.split()) >= 2:
        return head.strip()
    return title


def distinct(titles: list[str]) -> list[str]:
    seen: set[str] = set()
    unique = []
    for title in titles:
        key = _key(title)
        if key and key not in seen:
            seen.add(key)
            unique.append(title)
    return unique


def fallback_outline(topic: str, count: int = 3) -> list[str]:
    """A plain outline derived from the topic, for when the model never gave a usable one."""
    subject = topic.strip().rstrip(".?!") or "The topic"
    titles = [f"{subject}: an overview", "The key ideas", "Why it matters", "Common questions",
              "Where to learn more"]  # fmt: skip
    return titles[: max(1, min(count, len(titles)))]


def outline_grammar(count: int) -> str:
    """A llama.cpp GBNF grammar for exactly `count` lines of "- Title" of at most twelve words, so a
    rambling model is cut off at a word boundary (parse_outline then trims a dangling "of the").
    A word is at most fourteen characters ("photosynthesis") with punctuation only at its end: the
    model cannot run words together into "breathtakinglyblue,p" or "that'sselvedtobesoar"."""
    return (
        f"root ::= item{{{count}}}\n"
        'item ::= "- " first (" " word){0,11} "\\n"\n'
        "first ::= [A-Z0-9] [A-Za-z0-9'-]{0,13} [,:]?\n"
        "word ::= [A-Za-z0-9] [A-Za-z0-9'-]{0,13} [,:]?\n"
    )


def _key(title: str) -> str:
    return re.sub(r"\W+", " ", title).strip().casefold()


# Chatter: what a model says around the text it was asked for.

# "Sure! Here is your article:", "Certainly!", "Here's the rewritten text:"
_OPENING = re.compile(
    r"^(?:(?:sure|certainly|of course|absolutely|okay|ok|alright)\s*[!,.]\s*)?"
    r"(?:here(?:'s| is| are)\b[^\n]{0,120}:|[^\n]{0,120}[!:])$",
    re.IGNORECASE,
)
_CLOSING = re.compile(
    r"^(?:i hope|hope this|let me know|feel free|if you (?:have|need|want|would like)|"
    r"is there anything|i've (?:tried|written|rewritten|kept)|i have (?:tried|written|rewritten)|"
    r"in this (?:article|section), i(?:'ve| have)?|note:|\(note)",
    re.IGNORECASE,
)
_HASHTAGS = re.compile(r"^(?:#\w+\s*)+$")
_WRAPPING_FENCE = re.compile(r"^```[a-zA-Z]*\n(?P<body>.*?)\n?```$", re.DOTALL)
_SENTENCE_END = re.compile(r"""[.!?]["')\]]*(?=\s|$)""")


def strip_chatter(text: str, *, drop_heading: bool = False) -> str:
    """Drop what the model said around its answer: "Sure! Here is your article:", "I hope this
    helps!", a fence around the whole reply, trailing hashtags. `drop_heading` also removes leading
    Markdown headings (a section's title is already on the page). The answer itself is untouched."""
    text = text.strip()
    fence = _WRAPPING_FENCE.match(text)
    if fence:
        text = fence.group("body").strip()
    lines = text.split("\n")
    while lines:
        first = lines[0].strip()
        if not first or (_OPENING.match(first) and _is_opening(first)) or (
            drop_heading and re.match(r"#{1,6}\s", first)
        ):
            lines.pop(0)
        else:
            break
    while lines:
        last = lines[-1].strip()
        if not last or _HASHTAGS.match(last):
            lines.pop()
            continue
        start = max((i + 1 for i, line in enumerate(lines) if not line.strip()), default=0)
        if _CLOSING.match(" ".join(line.strip() for line in lines[start:])):
            del lines[start:]
            continue
        break
    return "\n".join(lines).strip()


def _is_opening(line: str) -> bool:
    """An interjection ("Sure!") or an announcement ("Here is ...:"), never a first sentence."""
    lowered = line.casefold()
    return lowered.startswith("here") or bool(
        re.match(r"(?:sure|certainly|of course|absolutely|okay|ok|alright)\s*[!,.]", lowered)
    )


def trim_to_sentence(text: str) -> str:
    """Cut a reply that stopped mid-sentence (it hit max_tokens) back to its last full sentence."""
    text = text.rstrip()
    if not text or _SENTENCE_END.search(text[-3:]) or text.endswith(("```", "|")):
        return text
    ends = list(_SENTENCE_END.finditer(text))
    if not ends:
        return text
    return text[: ends[-1].end()].rstrip()


# A small model's prose: it repeats itself word for word, and talks about the text it wrote.

REPEAT_WORDS = 8  # a repeated sentence this long is a stutter; shorter ones can be style
_SENTENCE = re.compile(r"""(?:(?<=[.!?])|(?<=[.!?]["')\]]))\s+(?=["'(\[]?[A-Z0-9])""")
_STRUCTURE = re.compile(r"^\s*(?:#|[-*+]\s|\d{1,2}[.)]\s|\||>|```)")  # Markdown, kept whole
# A sentence about the text or the request rather than the subject: "This rewritten text offers a
# range of options", "I added personal touches", "Note: ...", "in a warm, conversational tone".
_META = re.compile(
    r"\brewrit(?:e|es|ten|ing)\b|\brewrote\b|\b(?:original|given|provided|revised) (?:text|version)"
    r"|\bthis (?:text|version|revision)\b|\bconversational tone\b|\bwarm(?:er)? tone\b"
    r"|\bas (?:you )?requested\b|\bi(?:'ve| have)? (?:also )?(?:added|made|kept|tried|changed|"
    r"included|used|rewritten|revised)\b|\bi hope\b|\bhope this helps\b|\blet me know\b"
    r"|\bfeel free to (?:ask|reach|contact)"
    r"|\bhere(?:'s| is| are)\b[^.!?]*\b(?:text|version|rewrite|draft|article|section|paragraphs?)\b"
    r"|\bin the following format\b|\bbullet points?\b|\bbold text\b|\bas an ai\b"
    r"|\byour (?:request|text|article)\b|^\(?(?:please )?note\s*:|^(?:sure|certainly|of course)\b"
    r"|\bsection titled\b|\bwithout a heading\b|\btwo or three short paragraphs\b"  # the prompt
    r"|\ball of its facts\b|\brewrite this\b",
    re.IGNORECASE,
)


def tidy_small_prose(text: str, seen: set[str] | None = None) -> str:
    """Drop the sentences a small model repeats word for word (the first one stays) and those in
    which it talks about its own text. Headings, lists and other Markdown blocks are kept whole,
    unless a whole block is a repeat; paragraphs left empty go. `seen` carries what earlier parts
    of the article said, and is updated."""
    seen = set() if seen is None else seen
    blocks = []
    for block in re.split(r"\n[ \t]*\n", text.strip()):
        if _STRUCTURE.match(block):
            sentences = [block]
        else:
            sentences = [s for s in _SENTENCE.split(" ".join(block.split())) if not _META.search(s)]
        kept = []
        for sentence in sentences:
            key = _key(sentence)
            if len(key.split()) >= REPEAT_WORDS and key in seen:
                continue
            seen.add(key)
            kept.append(sentence)
        if kept:
            blocks.append(" ".join(kept))
    return "\n\n".join(blocks)
