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
