"""Rendering: the Jinja environment, safe Markdown, and the fragments SSE events carry.

The full page, the htmx POST response and every SSE event render the same partials, so a refresh
and a live update can never disagree. Events carry facts; they become HTML here, at the edge,
once per event (streams.py caches the result for every viewer). LLM output reaches HTML only
through `markdown()`.
"""

from __future__ import annotations

import functools
import json
import math
import re
import time
from pathlib import Path

import nh3
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markdown_it import MarkdownIt
from markupsafe import Markup

from .diffs import word_diff
from .jobs import Event, Job, Prices

TEMPLATES = Path(__file__).parent / "templates"

# "js-default" leaves raw HTML as text and refuses javascript:/vbscript:/data: links.
_markdown = MarkdownIt("js-default").enable("table")
_ALLOWED_TAGS = {
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "del", "code", "pre",
    "blockquote", "ul", "ol", "li", "a", "table", "thead", "tbody", "tr", "th", "td",
}  # fmt: skip
# No images: a picture in LLM output would make the reader's browser fetch an arbitrary URL.
_ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}, "th": {"align"}, "td": {"align"}}
ABSOLUTE_LINK = re.compile(r"(https?|mailto):", re.IGNORECASE)


def markdown(text: str, *, standalone: bool = False) -> Markup:
    """Untrusted Markdown to sanitized HTML: no scripts, no handlers, no hx-* attributes.

    `standalone` is for a file read away from this server (an export), where a relative link
    leads nowhere, or with `//host/share` to a file share: only absolute links stay links.
    """
    text = text or ""
    if standalone or "]:" in text:  # a link reference reaches across blocks: read it whole
        return Markup(markdown_whole(text, standalone=standalone))
    # A streaming article is drawn again every STREAM_INTERVAL, so each block is drawn once and
    # remembered: the cost of an update is its last paragraph, not the whole article so far.
    return Markup("".join(_block_html(block) for block in blocks(text)))


# Where one Markdown block ends and the next cannot belong to it: a blank line, then a line that
# starts with a letter or a heading's #. Not a list marker, a digit (1. …), an indent or a >,
# which could continue a list or a quote and change how the part before it reads.
_BLOCK_START = re.compile(r"\n\n(?=[^\W\d_]|#)")
# A code fence can hold blank lines, and a list or quote around it can end it early: from the
# first one on, the text is one piece (a rare case in an article, and never a wrong one).
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})", re.MULTILINE)


def blocks(text: str) -> list[str]:
    """`text` cut into pieces that render, one by one, to exactly what the whole renders to."""
    fence = _FENCE.search(text)
    pieces, start = [], 0
    for cut in _BLOCK_START.finditer(text, 0, fence.start() if fence else len(text)):
        pieces.append(text[start:cut.end()])
        start = cut.end()
    pieces.append(text[start:])
    return pieces


@functools.lru_cache(maxsize=4096)
def _block_html(block: str) -> str:
    return markdown_whole(block)


def markdown_whole(text: str, *, standalone: bool = False) -> str:
    """markdown() drawn in one piece, with nothing remembered."""
    return nh3.clean(
        _markdown.render(text),
        tags=_ALLOWED_TAGS,
        attributes=_ALLOWED_ATTRIBUTES,
        attribute_filter=_absolute_links_only if standalone else None,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )


def _absolute_links_only(tag: str, attribute: str, value: str) -> str | None:
    return None if attribute == "href" and not ABSOLUTE_LINK.match(value) else value


def age(timestamp: float) -> str:
    seconds = max(0, int(time.time() - timestamp))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return "just now"


def money(value: float) -> str:
    """An estimated cost for people: three significant digits and at least two decimals, no
    trailing zeros beyond them (1,234.50, 0.50, 0.0123, 0.00046)."""
    if value >= 1 or value <= 0:
        return f"{max(value, 0.0):,.2f}"
    whole, _, fraction = f"{value:.{max(2, 2 - math.floor(math.log10(value)))}f}".partition(".")
    return f"{whole}.{fraction.rstrip('0').ljust(2, '0')}"


def create_environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        auto_reload=False,  # templates ship with the app: no stat() per render
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["markdown"] = markdown
    env.filters["age"] = age
    env.filters["word_diff"] = word_diff
    env.filters["thousands"] = "{:,}".format  # 12345 -> 12,345
    env.filters["money"] = money
    return env


environment = create_environment()


def compile_templates() -> None:
    """Compile every template now (0.1 s in all), before the first requests: else the first
    viewers after a start, often hundreds reconnecting at once, wait behind each compile."""
    for name in environment.list_templates():
        environment.get_template(name)


# Which partials an event with a given key redraws. An event's key fixes its parts, so a later
# event with the same key always supersedes an earlier one (jobs.py keeps only the latest).
# A streaming section changes only itself; progress moves when it is done (a "job" event).
PARTS_BY_KEY = {
    "job": ("_progress.html", "_status.html", "_steps.html", "_usage.html", "_actions.html"),
    "outline": ("_progress.html", "_status.html", "_sections.html"),
    "article": ("_progress.html", "_article.html"),
}
SNAPSHOT_PARTS = (
    "_progress.html", "_status.html", "_steps.html", "_usage.html", "_actions.html",
    "_sections.html", "_article.html",
)  # fmt: skip


def render_parts(job: Job, parts: tuple[str, ...], **context: object) -> str:
    """Out-of-band fragments for `parts`, to be swapped in wherever their ids already are."""
    return "".join(
        environment.get_template(name).render(job=job, oob=True, **context) for name in parts
    )


def render_event(event: Event, prices: Prices | None = None) -> str:
    """The fragments an event redraws, from the facts it carries (jobs.Job.event_data), with a
    job's cost at `prices` (the app's settings)."""
    facts = json.loads(event.data)
    if event.key.startswith("section:"):
        return environment.get_template("_section.html").render(
            section=facts, index=facts["index"], oob=True
        )
    job = Job.from_record(facts)
    if event.key == "done":
        return snapshot(job, prices)
    return render_parts(job, PARTS_BY_KEY[event.key], prices=prices)


def deleted_notice() -> str:
    """The last event a viewer of a deleted job gets."""
    return environment.get_template("_deleted.html").render(oob=True)


def snapshot(job: Job, prices: Prices | None = None) -> str:
    """Everything on the job page that can change, as one event's data."""
    return render_parts(job, SNAPSHOT_PARTS, prices=prices)
