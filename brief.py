"""What a person asks for: a topic, and how to write about it. Checked before anything is stored.

Every check says what to fix, and names the field it belongs to, so a form can show the message
beside that field and the API can answer 422 with it.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

MAX_TOPIC_LENGTH = 200
MAX_AUDIENCE_LENGTH = 100
MAX_LANGUAGE_LENGTH = 40
MAX_TITLES = 10
MAX_TITLE_LENGTH = 120
MAX_INSTRUCTION_LENGTH = 300
MAX_ARTICLE_LENGTH = 200_000  # characters: a long article is some 20,000
# Invisible format characters (Unicode category Cf) are refused: bidi overrides and isolates can
# make a topic display as other text in the history. Only the joiners are kept, which emoji
# sequences (👩‍💻) and Persian or Indic writing need, and which cannot reorder text.
JOINERS = frozenset("\u200c\u200d")


@dataclass(frozen=True)
class Length:
    label: str
    sections: int  # at most this many sections (the small embedded model writes fewer)
    words: int  # about this many words per section
    paragraphs: str  # how a section's prompt puts it


LENGTHS = {
    "short": Length("Short", sections=3, words=150, paragraphs="one or two short paragraphs"),
    "medium": Length("Medium", sections=5, words=250, paragraphs="two or three short paragraphs"),
    "long": Length("Long", sections=7, words=400, paragraphs="four or five paragraphs"),
}
# A tone's name, and how the prompts put it ("in a warm, conversational tone").
TONES = {
    "warm": "warm, conversational",
    "neutral": "clear, neutral",
    "formal": "formal, precise",
    "playful": "playful, light-hearted",
    "technical": "precise, technical",
}


class BriefError(ValueError):
    """One or more fields we cannot write from: `errors` maps each field to what to fix."""

    def __init__(self, errors: dict[str, str]):
        super().__init__(next(iter(errors.values())))
        self.errors = errors


class TopicError(BriefError):
    """A topic we cannot write about; the message is shown next to the field."""

    def __init__(self, message: str):
        super().__init__({"topic": message})


@dataclass(frozen=True)
class Options:
    """How to write the article; the defaults are what Draftline always did."""

    length: str = "medium"
    tone: str = "warm"
    audience: str = ""  # free text: "nurses", "ten-year-olds"
    language: str = ""  # free text: "French"; empty means the topic's own language
    review_outline: bool = False  # stop after the outline until a person approves it

    @property
    def size(self) -> Length:
        return LENGTHS[self.length]

    @property
    def tone_words(self) -> str:
        return TONES[self.tone]

    def to_record(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_record(cls, record: Mapping[str, Any] | None) -> "Options":
        known = {name: value for name, value in (record or {}).items() if name in OPTION_NAMES}
        return cls(**known)


OPTION_NAMES = frozenset(Options.__dataclass_fields__)


def clean_topic(raw: str) -> str:
    """Collapse whitespace and check the topic, or raise TopicError saying what to fix."""
    topic = " ".join(raw.split())
    if not topic:
        raise TopicError("Please enter a topic.")
    if problem := _line_problem(topic, "topic", MAX_TOPIC_LENGTH):
        raise TopicError(problem)
    return topic


def clean_brief(topic: str, fields: Mapping[str, Any]) -> tuple[str, Options]:
    """The topic and options checked together: a BriefError names every bad field at once."""
    errors: dict[str, str] = {}
    options = Options()
    try:
        topic = clean_topic(topic)
    except BriefError as exc:
        errors.update(exc.errors)
    try:
        options = clean_options(fields)
    except BriefError as exc:
        errors.update(exc.errors)
    if errors:
        raise BriefError(errors)
    return topic, options


def clean_options(raw: Mapping[str, Any]) -> Options:
    """Options from a form's or a JSON body's fields (missing ones keep their defaults), or a
    BriefError naming every field that is wrong."""
    errors: dict[str, str] = {}
    values: dict[str, Any] = {}
    for name, choices in (("length", LENGTHS), ("tone", TONES)):
        value = raw.get(name)
        if value in (None, ""):
            continue
        if not isinstance(value, str) or value not in choices:
            errors[name] = f"Choose the {name} from: {', '.join(choices)}."
        else:
            values[name] = value
    for name, limit in (("audience", MAX_AUDIENCE_LENGTH), ("language", MAX_LANGUAGE_LENGTH)):
        value = raw.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            errors[name] = f"The {name} must be text."
            continue
        value = " ".join(value.split())
        if problem := _line_problem(value, name, limit):
            errors[name] = problem
        else:
            values[name] = value
    review = raw.get("review_outline")
    if review is not None:
        if isinstance(review, bool):
            values["review_outline"] = review
        elif review in ("on", "true", "1", ""):  # an HTML checkbox sends "on"
            values["review_outline"] = review != ""
        else:
            errors["review_outline"] = "review_outline must be true or false."
    if errors:
        raise BriefError(errors)
    return Options(**values)


def clean_titles(raw: Any) -> list[str]:
    """An outline as a person edited it: 1 to 10 titles of 1 to 120 characters each."""
    if not isinstance(raw, list) or not all(isinstance(title, str) for title in raw):
        raise BriefError({"titles": "Send the titles as a list of strings."})
    titles = [" ".join(title.split()) for title in raw]
    if not 1 <= len(titles) <= MAX_TITLES:
        raise BriefError({"titles": f"An outline has 1 to {MAX_TITLES} sections "
                                    f"(this one has {len(titles)})."})  # fmt: skip
    for number, title in enumerate(titles, 1):
        if not title:
            raise BriefError({"titles": f"Section {number} needs a title."})
        if problem := _line_problem(title, f"title of section {number}", MAX_TITLE_LENGTH):
            raise BriefError({"titles": problem})
    return titles


def clean_instruction(raw: Any) -> str:
    """What to do differently when writing something again ("shorter"); may be empty."""
    if raw is None:
        return ""
    if not isinstance(raw, str):
        raise BriefError({"instruction": "The instruction must be text."})
    instruction = " ".join(raw.split())
    if problem := _line_problem(instruction, "instruction", MAX_INSTRUCTION_LENGTH):
        raise BriefError({"instruction": problem})
    return instruction


def clean_article(raw: Any) -> str:
    """An article edited by hand: Markdown, any number of lines, nothing unprintable."""
    if not isinstance(raw, str):
        raise BriefError({"article": "Send the article as a string of Markdown."})
    article = raw.replace("\r\n", "\n").strip()
    if not article:
        raise BriefError({"article": "The article is empty; write something, or delete the job."})
    if len(article) > MAX_ARTICLE_LENGTH:
        raise BriefError({"article": f"Please keep the article under {MAX_ARTICLE_LENGTH:,} "
                                     f"characters (this one has {len(article):,})."})  # fmt: skip
    lines_ok = "".join(article.split("\n")).replace("\t", " ")
    if problem := _line_problem(lines_ok, "article", MAX_ARTICLE_LENGTH):
        raise BriefError({"article": problem})
    return article


def _line_problem(text: str, what: str, limit: int) -> str | None:
    """What is wrong with one line of text a person typed, or None."""
    if len(text) > limit:
        return f"Please keep the {what} to {limit} characters (this one has {len(text)})."
    if any(unicodedata.category(ch) in ("Cc", "Cs", "Co", "Cn") for ch in text):
        return f"The {what} contains control or unprintable characters; please retype it."
    if any(unicodedata.category(ch) == "Cf" and ch not in JOINERS for ch in text):
        return (
            f"The {what} contains invisible formatting characters (such as right-to-left "
            "overrides), which can make it display as something else; please retype it."
        )
    return None
