"""Export: a finished article as files people take elsewhere (a web page, a Word document).

Both are drawn from the article's Markdown, which an LLM wrote and is therefore untrusted. The
web page goes through `views.markdown()`, the sanitizer every LLM text passes; the Word document
is built from markdown-it-py's tokens, read with the parser `views.markdown()` uses. In both
raw HTML stays text, images are dropped and only absolute http, https and mailto links become
links (a file opened from disk has no server for a relative link to lead to).
"""

from __future__ import annotations

import io
import re
import unicodedata
from datetime import UTC, datetime

import docx
from docx.document import Document
from docx.enum.style import WD_STYLE_TYPE
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.opc.constants import RELATIONSHIP_TYPE
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import Pt, RGBColor
from docx.text.paragraph import Paragraph
from markdown_it import MarkdownIt
from markdown_it.token import Token

from . import views

# As views.markdown() reads Markdown: raw HTML stays text, javascript:/vbscript:/data: links are
# refused, tables are on.
_parser = MarkdownIt("js-default").enable("table")
# Characters XML 1.0 cannot carry at all: lxml refuses them, so a stray one from the LLM would
# make the whole .docx fail.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_ALIGN = {
    "left": WD_ALIGN_PARAGRAPH.LEFT, "center": WD_ALIGN_PARAGRAPH.CENTER,
    "right": WD_ALIGN_PARAGRAPH.RIGHT,
}  # fmt: skip
CODE_FONT = "Consolas"
# Pandoc's names for code, so a round trip through pandoc keeps code as code; Word's for links.
CODE_BLOCK, CODE_CHAR, LINK_CHAR = "Source Code", "Verbatim Char", "Hyperlink"


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


def article_docx(title: str, article_markdown: str) -> bytes:
    """A Word document in Word's own styles: Title, Heading n, List Bullet/Number, Quote, tables."""
    title, text = _NOT_XML.sub("", title), _NOT_XML.sub("", article_markdown or "")
    document = docx.Document()
    _set_properties(document, title)
    _add_styles(document)
    writer = _DocxWriter(document)
    if not starts_with_title(text):
        document.add_paragraph(title, style="Title")
    writer.write(_parser.parse(text))
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def _set_properties(document: Document, title: str) -> None:
    """The file's own title, and none of the template's ("python-docx", a 2013 date)."""
    properties = document.core_properties
    now = datetime.now(UTC).replace(microsecond=0)
    properties.title = title[:255]  # the most a core property may hold
    properties.author = properties.last_modified_by = properties.comments = ""
    properties.created = properties.modified = now
    properties.revision = 1


def _add_styles(document: Document) -> None:
    styles = document.styles
    code = styles.add_style(CODE_BLOCK, WD_STYLE_TYPE.PARAGRAPH)
    code.base_style = styles["Normal"]
    code.next_paragraph_style = styles["Normal"]
    code.font.name, code.font.size = CODE_FONT, Pt(9.5)
    shading = OxmlElement("w:shd")
    shading.set(qn("w:val"), "clear")
    shading.set(qn("w:fill"), "F3F4F6")
    code.element.get_or_add_pPr().append(shading)
    code.paragraph_format.space_before, code.paragraph_format.space_after = Pt(4), Pt(10)
    code.paragraph_format.keep_together = True
    verbatim = styles.add_style(CODE_CHAR, WD_STYLE_TYPE.CHARACTER)
    verbatim.font.name, verbatim.font.size = CODE_FONT, Pt(10)
    link = styles.add_style(LINK_CHAR, WD_STYLE_TYPE.CHARACTER, builtin=True)
    link.font.color.rgb, link.font.underline = RGBColor(0x05, 0x63, 0xC1), True


class _DocxWriter:
    """Walks markdown-it tokens once, adding a paragraph, list item or table for each block."""

    def __init__(self, document: Document):
        self.document = document
        self.lists: list[dict] = []  # open lists, outermost first: {"kind", "num", "fresh"}
        self.quotes = 0  # blockquotes open around the current block
        self.first_block = True

    def write(self, tokens: list[Token]) -> None:
        i = 0
        while i < len(tokens):
            token = tokens[i]
            kind = token.type
            if kind == "heading_open":
                self.heading(token, tokens[i + 1])
                i += 2
            elif kind == "paragraph_open":
                self.paragraph(tokens[i + 1])
                i += 2
            elif kind in ("bullet_list_open", "ordered_list_open"):
                self.open_list(token)
            elif kind in ("bullet_list_close", "ordered_list_close"):
                self.lists.pop()
            elif kind == "list_item_open":
                self.lists[-1]["fresh"] = True
            elif kind == "blockquote_open":
                self.quotes += 1
            elif kind == "blockquote_close":
                self.quotes -= 1
            elif kind in ("fence", "code_block"):
                self.code(token.content)
            elif kind == "html_block":  # only if raw HTML were ever parsed: shown as text
                self.document.add_paragraph(token.content.strip())
            elif kind == "hr":
                self.rule()
            elif kind == "table_open":
                end = next(j for j in range(i, len(tokens)) if tokens[j].type == "table_close")
                self.table(tokens[i:end])
                i = end
            i += 1

    # Blocks

    def heading(self, token: Token, inline: Token) -> None:
        level = int(token.tag[1])
        style = "Title" if level == 1 and self.first_block else f"Heading {level}"
        self.add_inline(self.document.add_paragraph(style=style), inline)

    def paragraph(self, inline: Token) -> None:
        if all(child.type == "image" for child in inline.children or []):
            return  # nothing left once its pictures are dropped
        style = "Quote" if self.quotes else None
        if self.lists:
            current = self.lists[-1]
            depth = "" if len(self.lists) == 1 else f" {min(len(self.lists), 3)}"
            if current["fresh"]:  # an item's first paragraph carries its bullet or number
                name = "List Bullet" if current["kind"] == "bullet" else "List Number"
                style = name + depth
            else:  # later paragraphs of the same item line up under its text
                style = "List Continue" + depth
        paragraph = self.document.add_paragraph(style=style)
        if self.lists and self.lists[-1]["fresh"]:
            if self.lists[-1]["num"] is not None:
                _number(paragraph, self.lists[-1]["num"])
            self.lists[-1]["fresh"] = False
        self.add_inline(paragraph, inline)

    def open_list(self, token: Token) -> None:
        kind = "bullet" if token.type == "bullet_list_open" else "ordered"
        num = None
        if kind == "ordered":  # each list counts from its own start, not on from the last one
            depth = "" if not self.lists else f" {min(len(self.lists) + 1, 3)}"
            num = self._new_numbering("List Number" + depth, int(token.attrGet("start") or 1))
        self.lists.append({"kind": kind, "num": num, "fresh": False})

    def code(self, text: str) -> None:
        self.first_block = False
        paragraph = self.document.add_paragraph(style=CODE_BLOCK)
        paragraph.add_run(text.removesuffix("\n"))  # python-docx turns \n into line breaks

    def rule(self) -> None:
        self.first_block = False
        paragraph = self.document.add_paragraph()
        borders, bottom = OxmlElement("w:pBdr"), OxmlElement("w:bottom")
        for name, value in (("val", "single"), ("sz", "6"), ("space", "1"), ("color", "auto")):
            bottom.set(qn(f"w:{name}"), value)
        borders.append(bottom)
        paragraph._p.get_or_add_pPr().append(borders)

    def table(self, tokens: list[Token]) -> None:
        self.first_block = False
        rows: list[list[tuple[Token, str, bool]]] = []
        cell: tuple[str, bool] | None = None
        for token in tokens:
            if token.type == "tr_open":
                rows.append([])
            elif token.type in ("th_open", "td_open"):
                align = re.sub(r"^text-align:", "", str(token.attrGet("style") or ""))
                cell = (align, token.type == "th_open")
            elif token.type == "inline" and cell is not None:
                rows[-1].append((token, *cell))
        columns = max(len(row) for row in rows)
        table = self.document.add_table(rows=len(rows), cols=columns)
        table.style = self.document.styles["Table Grid"]
        for row, cells in zip(table.rows, rows):
            if cells and cells[0][2]:  # the header row repeats on every page the table spans
                row._tr.get_or_add_trPr().append(OxmlElement("w:tblHeader"))
            for target, (inline, align, header) in zip(row.cells, cells):
                paragraph = target.paragraphs[0]
                if align in _ALIGN:
                    paragraph.alignment = _ALIGN[align]
                self.add_inline(paragraph, inline, bold=header)

    # Inline text

    def add_inline(self, paragraph: Paragraph, inline: Token, bold: bool = False) -> None:
        self.first_block = False
        state = {"strong": int(bold), "em": 0, "s": 0}
        link = None  # the w:hyperlink runs go into, inside a link with a safe address
        for child in inline.children or []:
            kind = child.type
            if kind.endswith("_open") and kind[:-5] in state:
                state[kind[:-5]] += 1
            elif kind.endswith("_close") and kind[:-6] in state:
                state[kind[:-6]] -= 1
            elif kind == "link_open":
                href = str(child.attrGet("href") or "")
                link = _hyperlink(paragraph, href) if views.ABSOLUTE_LINK.match(href) else None
            elif kind == "link_close":
                link = None
            elif kind in ("text", "html_inline", "code_inline", "softbreak", "hardbreak"):
                text = " " if kind == "softbreak" else child.content
                style = LINK_CHAR if link is not None else None
                run = paragraph.add_run(text, style=CODE_CHAR if kind == "code_inline" else style)
                if kind == "hardbreak":
                    run.add_break()
                for name, on in (("bold", "strong"), ("italic", "em"), ("strike", "s")):
                    if state[on]:
                        setattr(run.font, name, True)
                if link is not None:
                    link.append(run._r)
            # images (and anything else) are dropped, as views.markdown() drops them

    def _new_numbering(self, style_name: str, start: int) -> int:
        """A fresh w:num for a list style's numbering that starts at `start`."""
        numbering = self.document.part.numbering_part.element
        style_num = self.document.styles[style_name].element.pPr.numPr.numId.val
        abstract = numbering.num_having_numId(style_num).abstractNumId.val
        num = numbering.add_num(abstract)
        num.add_lvlOverride(ilvl=0).add_startOverride(start)
        return num.numId


def _number(paragraph: Paragraph, num: int) -> None:
    numbering = paragraph._p.get_or_add_pPr().get_or_add_numPr()
    numbering.get_or_add_ilvl().val = 0
    numbering.get_or_add_numId().val = num


def _hyperlink(paragraph: Paragraph, href: str):
    """A real, clickable w:hyperlink to an external address, appended to `paragraph`."""
    relationship = paragraph.part.relate_to(href, RELATIONSHIP_TYPE.HYPERLINK, is_external=True)
    element = OxmlElement("w:hyperlink")
    element.set(qn("r:id"), relationship)
    paragraph._p.append(element)
    return element
