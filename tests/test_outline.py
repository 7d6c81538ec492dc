"""The outline parser and reply tidying, on replies SmolLM2-135M-Instruct really gave.

Every reply below was written by the embedded model (llama.cpp, temperature 0.3 or 0.8), with and
without the outline grammar, while Draftline's prompts were being tuned.
"""

from __future__ import annotations

import functools

import pytest

from draftline.outline import (
    OutlineError,
    clean_title,
    fallback_outline,
    outline_grammar,
    parse_outline,
    strip_chatter,
    trim_to_sentence,
)

# Every reply below is the small model's, and is read as such.
parse_small = functools.partial(parse_outline, small_model=True)

# Without a grammar: the model's own formats.

BOLD_SECTIONS_AND_ANGLED_TITLES = """\
What a delightful topic! A short article about sourdough starters sounds like a fascinating \
venture. Here's a possible structure for your article:

**Section 1:** Introduction
<<Introduction to Sourdough Starters: A Simple Guide with a Detailed Explanation>>

Soured dough is not just a delicious treat, it has been used for centuries as a magical ingredient \
in various traditional recipes around the world. In this article, we will explore the science.

**Section 2:** The Science Behind Sourdough Starters
<<Science Behind Sourdough Starters: A Detailed Explanation>>

The science behind souring dough is a delicate balance of several key components that"""

NUMBERED_LIST_TOO_LONG = """\
<<Tidal Pool Guide: A Beginner's Guide to Surf's Paradise>>

[tidial_pools]

1. TIDAL POLES – THE ROAD TO THIS LAKE
2. TIDE Pool Safety Tips
3. Best Beach Services for Surfers
4. How to Drown in the Sea
5. Surf Zone Adrenaline: A Comprehensive Guide to the Best Places to Go on a Surfing Adventure
6. Ocean Odyssey: The Ultimate Guide to Surfing and the Top Destinations to Surf with"""

PLACEHOLDERS_COPIED_FROM_THE_PROMPT = """\
The sky is a canvas painted with hues of color. It's in this moment that we can find inspiration.

Here are three sections:
- <first section title>
  - The story behind the blue hue, which has captivated us for centuries.
- <second section title>
  - The science of light, what makes it so beautiful.
- <third section title>
    - How can we harness this essence, to create art and technology."""

PROSE_WITH_PARTS = """\
The history of the bicycle is a timeless narrative, and with its incredible journey from the \
ancient days to its modern incarnation in modern times, we can weave this story into an article.

Part 1: The Ancient Days of the Bicycle 

The first part of the article explores the origins of the bicycle as it was believed to have been \
invented by a German blacksmith named Nicholas Byzantos.

Part 2: The Medieval Era of Bicycles 

This part delves into the medieval era when bicycles were first created. The article ends with an \
interesting question: What's next? The answer will depend entirely on your target audience."""

ONLY_PROSE = """\
The sky is indeed blue, and for a reason that has puzzled humanity since the dawn of time. The \
explanation behind why it's so breathtaking lies in the intricate dance of light interacting with \
our atmosphere. When sunlight reaches us on Earth, it encounters tiny particles called atoms."""

# With the grammar (exactly four "- " lines): what is left to go wrong is the content.

TOPIC_FIRST_THEN_ONE_TITLE_REPEATED = """\
- How sourdough starters work
- The science behind sourdoughs and their role in the
- The science behind sourdoughs and their role in the
- The science behind sourdoughs and their role in the
"""

SECTION_LABELS = """\
- Section 1: Why the sky is blue
- Section 2: The science behind it
- Section 3: How light scatters in the air
"""

LETTER_LABELS = """\
- A: Caring for a houseplant
- B: How to care for your houseplants
- C: Tips for caring for indoor plants
"""

BARE_LABELS = """\
- Caring for a houseplant: The care of the Amazonian palms
- Section 1
- Section 2
"""

TOPIC_AS_PREFIX = """\
- Quantum Computing for Beginners
- Quantum Computing for Beginners: The Future of Technology
- Quantum Computing for Beginners: How to Get Started
- Quantum Computing for Beginners: The Future of Technology
"""

LONG_SUBTITLES = """\
- The Art of Chess: A Game of Balance and Strategy
- The Game of the Brain: Mastering the Art of Learning to Play Chess
- The Game of the Game: A Game of Balance and Strategy
- The Game of the Brain: Mastering the Art of Learning to Play Chess
"""

PROMPT_ECHOES = """\
- Explanation of how sourdough starters work and their role in
- How they can be used for making bread using a starter that is
- A list with three different sections, each starting with '- '
- In this article: How that simple moment matters
"""

QUOTED_PART_TITLES = """\
- The life of honey bees: the incredible journey of a
- 1st part title: 'The Life of Honey Bees'
- 2nd part title: 'Biology and Society'
- 3rd part title: 'Honeybees in Modern Medicine'
"""


def test_bold_section_labels_and_angled_titles_are_read():
    titles = parse_small(BOLD_SECTIONS_AND_ANGLED_TITLES, 3, topic="How sourdough starters work")
    assert titles == [
        "Introduction",
        "Introduction to Sourdough Starters",  # subtitle dropped: the title was too long
        "The Science Behind Sourdough Starters",
    ]


def test_a_numbered_list_is_cut_to_the_limit():
    titles = parse_small(NUMBERED_LIST_TOO_LONG, 3)
    assert titles[1:] == ["TIDAL POLES – THE ROAD TO THIS LAKE", "TIDE Pool Safety Tips"]


def test_placeholder_titles_copied_from_a_prompt_are_never_shown():
    titles = parse_small(PLACEHOLDERS_COPIED_FROM_THE_PROMPT, 3, topic="Why the sky is blue")
    assert not any("<" in t or "section title" in t.casefold() for t in titles)
    assert titles[0] == "The story behind the blue hue, which has captivated us for centuries"


def test_example_titles_given_in_a_prompt_are_dropped():
    reply = "- What bees collect\n- Inside the hive\n- Watering\n- Light and soil\n"
    examples = ["What bees collect", "Inside the hive"]
    assert parse_outline(reply, examples=examples) == ["Watering", "Light and soil"]


def test_part_labels_in_prose_are_read_as_titles():
    titles = parse_small(PROSE_WITH_PARTS, 3, topic="The history of the bicycle")
    assert titles == ["The Ancient Days of the Bicycle", "The Medieval Era of Bicycles"]


def test_prose_without_a_list_is_an_error():
    with pytest.raises(OutlineError):
        parse_outline(ONLY_PROSE)


def test_the_topic_echoed_back_and_repeats_are_dropped():
    topic = "How sourdough starters work"
    with pytest.raises(OutlineError):  # one distinct title left: not an outline, retry
        parse_small(TOPIC_FIRST_THEN_ONE_TITLE_REPEATED, 3, topic=topic, minimum=2)
    titles = parse_small(TOPIC_FIRST_THEN_ONE_TITLE_REPEATED, 3, topic=topic)
    assert titles == ["The science behind sourdoughs and their role"]  # dangling "in the" trimmed


def test_section_and_letter_labels_are_stripped():
    assert parse_small(SECTION_LABELS, 3, topic="Why the sky is blue") == [
        "The science behind it", "How light scatters in the air"]  # fmt: skip
    assert parse_small(LETTER_LABELS, 3, topic="Caring for a houseplant") == [
        "How to care for your houseplants", "Tips for caring for indoor plants"]  # fmt: skip


def test_bare_labels_are_not_titles():
    with pytest.raises(OutlineError):
        parse_small(BARE_LABELS, 3, topic="Caring for a houseplant", minimum=2)


def test_the_topic_as_a_prefix_leaves_the_subtitle():
    titles = parse_small(TOPIC_AS_PREFIX, 3, topic="Quantum computing for beginners")
    assert titles == ["The Future of Technology", "How to Get Started"]


def test_long_subtitles_are_dropped_and_duplicates_with_them():
    assert parse_small(LONG_SUBTITLES, 3, topic="Learning to play chess") == [
        "The Art of Chess", "The Game of the Brain", "The Game of the Game"]  # fmt: skip


def test_the_prompt_echoed_back_is_not_a_title():
    titles = parse_small(PROMPT_ECHOES, 3, topic="How sourdough starters work")
    assert titles == [
        "Explanation of how sourdough starters work and their role",
        "How they can be used for making bread using a starter",
    ]


def test_quoted_titles_after_part_labels():
    titles = parse_small(QUOTED_PART_TITLES, 3, topic="The life of honey bees")
    assert titles == ["The incredible journey", "Biology and Society",
                      "Honeybees in Modern Medicine"]  # fmt: skip


# A good model's titles, which often end on a function word on purpose.

LIGHTHOUSE_TITLES = """\
- What a Fresnel lens is
- Who keeps the light on
- The lighthouse keeper: a job that machines took over
"""


def test_a_good_models_titles_are_kept_whole():
    assert parse_outline(LIGHTHOUSE_TITLES, topic="How lighthouses work") == [
        "What a Fresnel lens is", "Who keeps the light on",
        "The lighthouse keeper: a job that machines took over"]  # fmt: skip


def test_a_reply_cut_short_by_max_tokens_loses_only_its_last_titles_dangling_words():
    reply = LIGHTHOUSE_TITLES + "- How the beam is timed and why ships rely on the"
    titles = parse_outline(reply, topic="How lighthouses work", cut_short=True)
    assert titles[:2] == ["What a Fresnel lens is", "Who keeps the light on"]
    assert titles[3] == "How the beam is timed and why ships rely"


def test_the_small_models_titles_lose_dangling_words_and_rambling_subtitles():
    assert parse_small(LIGHTHOUSE_TITLES, topic="How lighthouses work") == [
        "What a Fresnel lens", "Who keeps the light", "The lighthouse keeper"]  # fmt: skip


def test_yaml_and_fenced_replies_still_parse():
    reply = "Here is the outline:\n```yaml\nsections:\n  - Tides: part 1\n  - Tides: part 2\n```"
    assert parse_outline(reply, topic="Tides") == ["Tides: part 1", "Tides: part 2"]


@pytest.mark.parametrize(
    ("raw", "title"),
    [
        ("**Feeding your starter**: daily care", "Feeding your starter"),
        ("Title: The beach at dawn", "The beach at dawn"),
        ("Section title: The beach at dawn", "The beach at dawn"),
        ("The first section title: Tide pools at night", "Tide pools at night"),
        ("Part 2 - The modern bicycle", "The modern bicycle"),
        ("Why the sky is blue:", "Why the sky is blue"),
        ("Part-time beekeeping", "Part-time beekeeping"),  # a word, not a label
        ("Step by step: a first loaf", "Step by step: a first loaf"),
        ("<first section title>", ""),
        ("...", ""),
        ("x" * 81, ""),
    ],
)
def test_clean_title(raw, title):
    assert clean_title(raw) == title


def test_the_fallback_outline_is_derived_from_the_topic():
    assert fallback_outline("Why the sky is blue?") == [
        "Why the sky is blue: an overview", "The key ideas", "Why it matters"]  # fmt: skip
    titles = fallback_outline("Tides", 5)
    assert len(set(titles)) == 5 and titles[0].startswith("Tides")


def test_the_outline_grammar_asks_for_exactly_n_lines():
    grammar = outline_grammar(4)
    assert grammar.startswith("root ::= item{4}\n")
    assert '"- "' in grammar and "<" not in grammar  # no placeholders can be written


# Chatter around the text that was asked for.


def test_openings_and_closings_are_stripped():
    reply = "Sure! Here is your article:\n\n# Tides\n\nThe sea rises.\n\nI hope this helps!"
    assert strip_chatter(reply) == "# Tides\n\nThe sea rises."
    assert strip_chatter("Here's the rewritten text:\nThe sea rises.") == "The sea rises."


def test_a_section_loses_its_own_heading_and_trailing_hashtags():
    reply = (
        "## The science of fermentation\n\nThe science behind fermentation is fascinating.\n"
        "#SourdollStarter #FermentationScience"
    )
    assert strip_chatter(reply, drop_heading=True) == (
        "The science behind fermentation is fascinating."
    )
    assert strip_chatter("# Tides\n\nText.") == "# Tides\n\nText."  # an article keeps its title


def test_meta_commentary_at_the_end_is_dropped():
    reply = (
        "Baking is an art.\n\nIn this article, I've tried to convey the science behind sourdough "
        "starters by using metaphors."
    )
    assert strip_chatter(reply) == "Baking is an art."


def test_a_fence_around_the_whole_reply_is_removed():
    assert strip_chatter("```markdown\n# Tides\n\nText.\n```") == "# Tides\n\nText."


def test_ordinary_text_is_left_alone():
    text = "Sure enough, the tide came in.\n\nHere the sand is soft."
    assert strip_chatter(text) == text


def test_a_reply_cut_off_by_max_tokens_ends_at_its_last_sentence():
    assert trim_to_sentence("One. Two here. And a third that never") == "One. Two here."
    assert trim_to_sentence('He said "stop." Then') == 'He said "stop."'
    assert trim_to_sentence("Complete.") == "Complete."
    assert trim_to_sentence("no sentence end at all") == "no sentence end at all"
