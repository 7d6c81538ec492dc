"""Exports: a standalone web page and a Word document of an article, and their file names.

The article is LLM output: in both formats raw HTML stays text, pictures are dropped, and only
absolute http, https and mailto links are links.
"""

from __future__ import annotations

import io
import re

import docx
import pytest
from docx.oxml.ns import qn
from hypothesis import example, given, settings
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


def open_docx(data: bytes) -> docx.document.Document:
    return docx.Document(io.BytesIO(data))


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


# The Word document


def test_docx_uses_words_own_heading_list_quote_and_code_styles():
    document = open_docx(export.article_docx("Tide pools", ARTICLE))
    styles = [(p.style.name, p.text) for p in document.paragraphs]
    assert styles[0] == ("Title", "Tide pools: a small world")
    for expected in [("Heading 2", "What lives there"), ("Heading 3", "A table"),
                     ("List Bullet", "Crabs"), ("List Bullet 2", "Ochre stars"),
                     ("List Bullet 3", "Purple ones"), ("List Number", "Go at low tide."),
                     ("Quote", "Leave every stone as you found it."),
                     ("Source Code", "tide --low")]:  # fmt: skip
        assert expected in styles, expected
    assert document.core_properties.title == "Tide pools"
    assert document.core_properties.author == ""  # not the template's "python-docx"


def test_docx_numbers_each_list_from_its_own_start():
    data = export.article_docx("Lists", "1. a\n2. b\n\ntext\n\n1. c\n\nmore\n\n7. d\n8. e\n")
    document = open_docx(data)
    numbered = [p for p in document.paragraphs if p.style.name == "List Number"]
    num_ids = [p._p.pPr.numPr.numId.val for p in numbered]
    assert num_ids[0] == num_ids[1] and len({num_ids[0], num_ids[2], num_ids[3]}) == 3
    assert num_ids[3] == num_ids[4]
    numbering = document.part.numbering_part.element
    starts = [numbering.num_having_numId(n).lvlOverride_lst[0].startOverride.val
              for n in dict.fromkeys(num_ids)]  # fmt: skip
    assert starts == [1, 1, 7]


def test_docx_has_a_real_table_with_the_markdown_cells_and_a_bold_header():
    document = open_docx(export.article_docx("Tide pools", ARTICLE))
    (table,) = document.tables
    assert [[cell.text for cell in row.cells] for row in table.rows] == [
        ["Creature", "Legs"], ["Crab", "10"], ["Starfish", "5"]
    ]  # fmt: skip
    assert all(run.bold for cell in table.rows[0].cells for run in cell.paragraphs[0].runs)
    assert table.rows[0]._tr.trPr.find(qn("w:tblHeader")) is not None  # repeats on each page
    assert table.rows[1].cells[1].paragraphs[0].alignment == 2  # right, as `--:` asked


def test_docx_keeps_bold_italic_and_code_runs():
    document = open_docx(export.article_docx("Tide pools", ARTICLE))
    runs = [run for p in document.paragraphs for run in p.runs]
    assert any(run.text == "crabs" and run.bold for run in runs)
    assert any(run.text == "anemones" and run.italic for run in runs)
    code = next(run for run in runs if run.text == "Pisaster ochraceus")
    assert code.style.name == "Verbatim Char" and code.style.font.name == "Consolas"


def test_docx_links_safe_addresses_and_keeps_raw_html_and_hostile_links_as_text():
    document = open_docx(export.article_docx("Tide pools", ARTICLE))
    links = [(h.text, h.address) for p in document.paragraphs for h in p.hyperlinks]
    assert links == [("the guide", "https://example.com/guide?a=1&b=2"),
                     ("write to us", "mailto:pools@example.com")]  # fmt: skip
    targets = [rel.target_ref for rel in document.part.rels.values() if rel.is_external]
    assert not [t for t in targets if "javascript" in t.lower()]
    hostile = next(p.text for p in document.paragraphs if p.text.startswith("Hostile"))
    assert '<script>alert(1)</script> <img src=x onerror="alert(2)">' in hostile
    assert "[click me](javascript:alert(3))" in hostile


def test_docx_drops_pictures_and_draws_rules():
    document = open_docx(export.article_docx("Tide pools", ARTICLE))
    assert not document.inline_shapes
    assert not [p for p in document.paragraphs if "tracker" in p.text or "pixel" in p.text]
    rules = [p for p in document.paragraphs if p._p.pPr is not None
             and p._p.pPr.find(qn("w:pBdr")) is not None]  # fmt: skip
    assert len(rules) == 1


def test_docx_gives_an_untitled_article_its_title():
    document = open_docx(export.article_docx("Tide pools", "Just a paragraph."))
    assert [(p.style.name, p.text) for p in document.paragraphs] == [
        ("Title", "Tide pools"), ("Normal", "Just a paragraph.")
    ]  # fmt: skip


@settings(max_examples=40, deadline=None)
@given(st.text(max_size=300))
@example("a\x00b **\x0bc** `\x1b[31m` \ud800 \ufffe | x |\n|---|\n| \x07 |")
def test_docx_is_written_for_any_text_even_characters_xml_cannot_hold(text):
    document = open_docx(export.article_docx(f"Topic {text[:20]}", text))
    assert document.paragraphs  # at least its title


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
