"""The parts of a job page as a browser holds them after applying htmx out-of-band swaps."""

from __future__ import annotations

import re
from html.parser import HTMLParser

PARTS = ("progress", "status", "steps", "usage", "actions", "article", "sections")
_OOB = re.compile(r'\s+hx-swap-oob="[^"]*"')


class _TopLevel(HTMLParser):
    """Finds elements with an id and where each one ends, by offset into the source."""

    VOID = {"br", "hr", "img", "input", "meta", "link", "source", "wbr"}

    def __init__(self, source: str):
        super().__init__(convert_charrefs=False)
        self.source = source
        self.line_starts = [0] + [m.end() for m in re.finditer("\n", source)]
        self.stack: list[tuple[str, str | None, int, int]] = []  # tag, id, start, content start
        self.found: list[tuple[str, int, int, int, int]] = []  # id, start, inner start, inner end, end

    def _offset(self) -> int:
        line, column = self.getpos()
        return self.line_starts[line - 1] + column

    def handle_starttag(self, tag, attrs):
        start = self._offset()
        end = start + len(self.get_starttag_text())
        if tag not in self.VOID:
            self.stack.append((tag, dict(attrs).get("id"), start, end))

    def handle_endtag(self, tag):
        while self.stack:
            open_tag, element_id, start, inner = self.stack.pop()
            if open_tag == tag:
                close = self._offset()
                if element_id:
                    end = self.source.index(">", close) + 1
                    self.found.append((element_id, start, inner, close, end))
                return


def elements_by_id(html: str) -> dict[str, tuple[str, str]]:
    """id -> (outer HTML, inner HTML) for every element with an id."""
    parser = _TopLevel(html)
    parser.feed(html)
    parser.close()
    return {eid: (html[s:e], html[i:c]) for eid, s, i, c, e in parser.found}


def _clean(html: str) -> str:
    return _OOB.sub("", html).strip()


class PageState:
    """What a browser shows of the job's parts, starting from a served page."""

    def __init__(self, page_html: str):
        found = elements_by_id(page_html)
        self.parts = {name: _clean(found[name][1] if name == "status" else found[name][0]) for name in PARTS}

    def apply(self, event_data: str) -> None:
        """Apply one event's out-of-band fragments, as htmx does."""
        for element_id, (outer, inner) in _top_level_oob(event_data).items():
            if element_id == "status":
                self.parts["status"] = _clean(inner)
            elif element_id in self.parts:
                self.parts[element_id] = _clean(outer)
            elif element_id.startswith("section-"):
                sections = self.parts["sections"]
                current = elements_by_id(sections)[element_id][0]
                self.parts["sections"] = sections.replace(current, _clean(outer))


def _top_level_oob(data: str) -> dict[str, tuple[str, str]]:
    found = elements_by_id(data)
    return {eid: parts for eid, parts in found.items() if 'hx-swap-oob="' in parts[0].split(">", 1)[0]}
