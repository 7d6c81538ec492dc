"""What a person may ask an article about: the topic, checked before anything is stored."""

from __future__ import annotations

import unicodedata

MAX_TOPIC_LENGTH = 200
# Invisible format characters (Unicode category Cf) are refused: bidi overrides and isolates can
# make a topic display as other text in the history. Only the joiners are kept, which emoji
# sequences (👩‍💻) and Persian or Indic writing need, and which cannot reorder text.
JOINERS = frozenset("\u200c\u200d")


class TopicError(ValueError):
    """A topic we cannot write about; the message is shown next to the field."""


def clean_topic(raw: str) -> str:
    """Collapse whitespace and check the topic, or raise TopicError saying what to fix."""
    topic = " ".join(raw.split())
    if not topic:
        raise TopicError("Please enter a topic.")
    if len(topic) > MAX_TOPIC_LENGTH:
        raise TopicError(
            f"Please keep the topic to {MAX_TOPIC_LENGTH} characters (this one has {len(topic)})."
        )
    if any(unicodedata.category(ch) in ("Cc", "Cs", "Co", "Cn") for ch in topic):
        raise TopicError("The topic contains control or unprintable characters; please retype it.")
    if any(unicodedata.category(ch) == "Cf" and ch not in JOINERS for ch in topic):
        raise TopicError(
            "The topic contains invisible formatting characters (such as right-to-left "
            "overrides), which can make it display as something else; please retype it."
        )
    return topic
