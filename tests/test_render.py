"""LLM text becomes HTML only through views.markdown: sanitized, inert, htmx-proof."""

from __future__ import annotations

import pytest

from draftline.views import markdown
from tests.html_checks import active_markup

HOSTILE = [
    '<script>alert(1)</script>',
    '<img src=x onerror="alert(1)">',
    '[click](javascript:alert(1))',
    '<a href="javascript:alert(1)">x</a>',
    '<div hx-get="/api/jobs" hx-trigger="load">x</div>',
    '![t](http://example.com/t.png)',
    '<iframe src="https://example.com"></iframe>',
    "[x](JaVaScRiPt:alert(1))",
    "[x](  javascript:alert(1))",
    '<svg onload="alert(1)">',
]


@pytest.mark.parametrize("text", HOSTILE)
def test_markdown_never_emits_active_markup(text):
    assert active_markup(str(markdown(text))) == []


def test_the_checker_itself_finds_active_markup():
    assert active_markup('<p>x</p><img src=x onerror="y"><a href="javascript:z">a</a>') == [
        "img", "img[onerror]", "a[href=javascript:z]"
    ]  # fmt: skip


def test_markdown_keeps_ordinary_formatting_and_safe_links():
    html = str(markdown("## Title\n\nSome **bold** and a [link](https://example.com).\n\n- a\n- b"))
    assert "<h2>Title</h2>" in html and "<strong>bold</strong>" in html and "<li>a</li>" in html
    assert 'href="https://example.com"' in html and 'rel="noopener noreferrer nofollow"' in html


def test_raw_html_in_markdown_is_shown_as_text():
    assert "&lt;script&gt;" in str(markdown("<script>alert(1)</script>"))


# Blocks an LLM writes, and the ones that could change how the text around them reads (loose
# lists, fenced code with blank lines, quotes, tables, a digit or a marker after a blank line).
BLOCKS = [
    "## A heading", "# Top", "Plain words, *some* **bold** and `code`.", "A [link](https://e.com).",
    "- one\n- two", "- one\n\n- two", "1. first\n2. second", "3. later", "- item\n\n  more of it",
    "```python\nx = 1\n\ny = 2\n```", "~~~\n\nWords in code\n\n~~~", "```\nunclosed\n\nText",
    "> quoted\n> more", "> quote\n\nText after", "| a | b |\n|---|---|\n| 1 | 2 |", "---",
    "    indented code\n\n    still code", "Setext heading\n===", "Ünïcode ünd more", "* star",
    "<b>raw</b> html", "Line one\nline two", "2) paren", "+ plus", "   ```\n   code\n\nProse\n   ```",
]


def test_markdown_drawn_in_blocks_reads_as_the_whole_would_at_every_point_of_a_stream():
    import random

    from draftline.views import markdown_whole

    rng = random.Random(12)
    for _ in range(250):
        parts = [rng.choice(BLOCKS) for _ in range(rng.randint(2, 7))]
        text = "".join(p + rng.choice(["\n\n", "\n", "\n\n\n"]) for p in parts)
        for end in sorted({*range(0, len(text) + 1, 7), len(text)}):
            streamed = text[:end]
            assert str(markdown(streamed)) == markdown_whole(streamed), streamed


def test_markdown_cuts_an_article_at_its_paragraphs_and_not_after_a_code_fence():
    from draftline.views import blocks

    text = "## Intro\n\nFirst.\n\n```\ncode\n\nText in code\n```\n\nLast.\n\n- a\n\n- b"
    assert blocks(text) == ["## Intro\n\n", "First.\n\n```\ncode\n\nText in code\n```\n\nLast.\n\n- a\n\n- b"]
    text = "Intro.\n\n- a\n\n- b\n\nMore.\n\n> quote\n\nEnd."
    assert blocks(text) == ["Intro.\n\n- a\n\n- b\n\n", "More.\n\n> quote\n\n", "End."]


def test_every_template_is_compiled_before_the_first_request(monkeypatch):
    from draftline import views

    views.compile_templates()

    def compile_again(*args, **kwargs):
        raise AssertionError("a template was compiled while serving")

    monkeypatch.setattr(views.environment, "compile", compile_again)
    for name in views.environment.list_templates():
        views.environment.get_template(name)
