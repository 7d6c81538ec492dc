"""Finding markup that could run code or fetch something, by parsing HTML as a browser would."""

from __future__ import annotations

from html.parser import HTMLParser


class TagCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.append((tag, dict(attrs)))


def active_markup(html: str) -> list[str]:
    """Every tag or attribute in `html` that could run code or make a request on its own."""
    parser = TagCollector()
    parser.feed(html)
    found = []
    for tag, attrs in parser.tags:
        if tag in ("script", "img", "iframe", "object", "embed"):
            found.append(tag)
        for name, value in attrs.items():
            if name.startswith("on") or name in ("hx-get", "hx-post", "hx-trigger"):
                found.append(f"{tag}[{name}]")
            if name in ("href", "src") and (value or "").strip().lower().startswith("javascript"):
                found.append(f"{tag}[{name}={value}]")
    return found
