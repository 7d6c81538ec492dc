"""Exports: a standalone web page of an article, and the file names of its downloads.

The article is LLM output: raw HTML stays text, pictures are dropped, and only absolute http,
https and mailto links are links.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from draftline import export
from tests.html_checks import TagCollector, active_markup

ARTICLE = """# Tide pools: a *small* world

Tide pools hold **crabs**, *anemones* and `Pisaster ochraceus`; read
[the guide](https://example.com/guide?a=1&b=2) or [write to us](mailto:pools@example.com).

## What lives there

- Crabs
- Starfish
  - Ochre stars
    - Purple ones
- Snails

1. Go at low tide.
2. Step on bare rock.

Later, a second list:

1. Look.
2. Leave it as it was.

### A table

| Creature | Legs |
|:--|--:|
| Crab | 10 |
| Starfish | 5 |

> Leave every stone as you found it.

```
tide --low
```

---

![tracker](http://example.com/pixel.png)

Hostile: <script>alert(1)</script> <img src=x onerror="alert(2)">
[click me](javascript:alert(3)) <a href="javascript:alert(4)">me too</a>
[home](/jobs) and [share](//files.example/share) lead nowhere from a file.
"""


def tags(html: str) -> list[tuple[str, dict]]:
    parser = TagCollector()
    parser.feed(html)
    return parser.tags


# The web page


def test_html_export_is_one_complete_document_that_fetches_nothing():
    html = export.article_html("Tide pools", ARTICLE)
    assert html.startswith("<!doctype html>")
    assert '<meta charset="utf-8">' in html and "<title>Tide pools</title>" in html
    assert "<style>" in html and "default-src 'none'" in html  # its own CSP, even from disk
    found = tags(html)
    assert not {"script", "link", "img", "iframe", "object", "embed"} & {t for t, _ in found}
    assert not [attrs for _, attrs in found if "src" in attrs]
    hrefs = [attrs["href"] for _, attrs in found if "href" in attrs]
    assert hrefs == ["https://example.com/guide?a=1&b=2", "mailto:pools@example.com"]
    style = html.split("<style>", 1)[1].split("</style>", 1)[0]
    assert "url(" not in style and "@import" not in style and "@font-face" not in style


def test_html_export_shows_raw_html_as_text_and_hostile_links_as_text():
    html = export.article_html("Tide pools", ARTICLE)
    assert active_markup(html) == []
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert '&lt;img src=x onerror="alert(2)"&gt;' in html  # text between tags, not a tag
    assert "[click me](javascript:alert(3))" in html  # the Markdown link was refused: text


def test_html_export_keeps_headings_lists_tables_quotes_and_code():
    html = export.article_html("Tide pools", ARTICLE)
    for fragment in ("<h1>Tide pools: a <em>small</em> world</h1>", "<h2>What lives there</h2>",
                     "<h3>A table</h3>", "<li>Ochre stars", "<ol>", "<th>Creature</th>",
                     "<td>10</td>", "<blockquote>", "<code>tide --low", "<strong>crabs</strong>",
                     "<hr>"):  # fmt: skip
        assert fragment in html, fragment


def test_html_export_shows_the_title_once_whether_or_not_the_article_has_one():
    assert export.article_html("Tide pools", ARTICLE).count("<h1") == 1
    untitled = export.article_html("Tide <pools>", "Just a paragraph.")
    assert untitled.count("<h1") == 1 and "<h1>Tide &lt;pools&gt;</h1>" in untitled
    assert "<title>Tide &lt;pools&gt;</title>" in untitled


# File names


@pytest.mark.parametrize("topic, name", [
    ("How tides work", "how-tides-work.docx"),
    ("Crème brûlée, à la française", "creme-brulee-a-la-francaise.docx"),
    ("../../etc/passwd", "etc-passwd.docx"),
    ('a"b\r\nContent-Type: text/html; x=<y>', "a-b-content-type-text-html-x-y.docx"),
    ("東京の歴史", "article.docx"),
    ("!!!", "article.docx"),
    ("word " * 30, ("word-" * 12).rstrip("-") + ".docx"),
])  # fmt: skip
def test_file_names_are_plain_ascii_slugs_of_the_topic(topic, name):
    assert export.filename(topic, "docx") == name


@given(st.text())
def test_every_topic_gives_a_safe_file_name(topic):
    name = export.filename(topic, "html")
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*\.html", name), name
    assert len(name) <= 60 + len(".html")
