"""What a person asks for: the options beside the topic, checked field by field."""

from __future__ import annotations

import pytest

from draftline.brief import LENGTHS, TONES, BriefError, Options, clean_options


def test_no_options_means_what_draftline_always_did():
    assert clean_options({}) == Options() == Options(length="medium", tone="warm")
    assert Options().size.sections == 5 and "warm" in Options().tone_words


def test_options_from_a_form():
    form = {"length": "short", "tone": "formal", "audience": "  busy   nurses ",
            "language": "French", "review_outline": "on"}  # fmt: skip
    assert clean_options(form) == Options("short", "formal", "busy nurses", "French", True)


def test_options_from_json():
    body = {"length": "long", "tone": "technical", "review_outline": False, "audience": ""}
    assert clean_options(body) == Options(length="long", tone="technical")


@pytest.mark.parametrize("raw, field, message", [
    ({"length": "epic"}, "length", "short, medium, long"),
    ({"tone": "angry"}, "tone", "warm, neutral, formal, playful, technical"),
    ({"audience": "x" * 101}, "audience", "100 characters"),
    ({"language": "y" * 41}, "language", "40 characters"),
    ({"language": "Fr\u202eench"}, "language", "invisible formatting"),
    ({"audience": "kids\x00"}, "audience", "control"),
    ({"audience": 12}, "audience", "must be text"),
    ({"review_outline": "maybe"}, "review_outline", "true or false"),
    ({"review_outline": []}, "review_outline", "true or false"),
    ({"length": ["short"]}, "length", "short, medium, long"),  # JSON lists and objects are
    ({"tone": {"warm": 1}}, "tone", "warm, neutral"),  # unhashable: refused, never a 500
])  # fmt: skip
def test_bad_options_name_their_field(raw, field, message):
    with pytest.raises(BriefError) as refused:
        clean_options(raw)
    assert set(refused.value.errors) == {field} and message in refused.value.errors[field]


def test_every_bad_field_is_reported_at_once():
    with pytest.raises(BriefError) as refused:
        clean_options({"length": "epic", "tone": "angry", "language": "z" * 50})
    assert set(refused.value.errors) == {"length", "tone", "language"}


def test_options_survive_a_round_trip_and_ignore_unknown_fields():
    options = Options("long", "playful", "teens", "Spanish", True)
    assert Options.from_record(options.to_record()) == options
    assert Options.from_record({"tone": "formal", "colour": "red"}) == Options(tone="formal")
    assert Options.from_record(None) == Options()


def test_lengths_grow_and_every_tone_has_words():
    short, medium, long = (LENGTHS[name] for name in ("short", "medium", "long"))
    assert short.sections < medium.sections < long.sections
    assert short.words < medium.words < long.words
    assert all(TONES.values())
