"""Export: a finished article as files people take elsewhere.

The article's Markdown was written by an LLM and is therefore untrusted: the web page goes
through `views.markdown()`, the sanitizer every LLM text passes, so raw HTML stays text,
images are dropped and only absolute http, https and mailto links are links (a file opened
from disk has no server for a relative link to lead to).
"""

from __future__ import annotations

import re
import unicodedata

from markdown_it import MarkdownIt

from . import views

# As views.markdown() reads Markdown: raw HTML stays text, javascript:/vbscript:/data: links are
# refused, tables are on.
_parser = MarkdownIt("js-default").enable("table")


def filename(topic: str, extension: str) -> str:
    """A download's file name: the topic as a plain ASCII slug (accents folded), never a path."""
    ascii_topic = unicodedata.normalize("NFKD", topic).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_topic.lower()).strip("-")[:60].rstrip("-")
    return f"{slug or 'article'}.{extension}"


def starts_with_title(article_markdown: str) -> bool:
    """Whether the article opens with its own `# ` title (the flow writes one)."""
    tokens = _parser.parse(article_markdown or "")
    return bool(tokens) and tokens[0].type == "heading_open" and tokens[0].tag == "h1"


def article_html(title: str, article_markdown: str) -> str:
    """One self-contained HTML file: inline style, no scripts, nothing fetched from anywhere."""
    return views.environment.get_template("export.html").render(
        title=title,
        article=views.markdown(article_markdown, standalone=True),
        titled=starts_with_title(article_markdown),
    )
