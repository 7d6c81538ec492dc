"""Print / Save as PDF in real Chromium: a finished job prints as the article alone, a document."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from bench.page_weight import finished_job

READY = re.compile(r"Ready: \d+ words")
PAGE_CONTROLS = ("header.site", "footer.site", "#job-title", "#progress", "#status", "#steps",
                 "#actions", "#sections")  # fmt: skip


@pytest.mark.browser
def test_printing_a_finished_job_prints_only_the_article_black_on_white(browsing, client, llm):
    llm.sections, llm.section_words = 3, 60
    page = browsing.new_page(finished_job(client, "Tide pools"), color_scheme="dark")
    expect(page.get_by_role("status")).to_have_text(READY)
    expect(page.get_by_role("link", name="Download .md")).to_be_visible()  # on screen, as ever

    page.emulate_media(media="print")
    for selector in PAGE_CONTROLS:
        expect(page.locator(selector)).to_be_hidden()
    for role in ("button", "link", "progressbar", "status", "navigation", "group"):
        expect(page.get_by_role(role)).to_have_count(0)  # nothing to press on paper
    article = page.locator("#article .prose")
    expect(article).to_be_visible()
    expect(article.get_by_role("heading", level=1)).to_have_text("Tide pools")  # printed once
    expect(page.get_by_role("heading", level=1)).to_have_count(1)
    expect(article.get_by_role("heading", level=2)).to_have_count(3)

    look = page.evaluate(
        """() => {
        const style = s => getComputedStyle(document.querySelector(s));
        return {text: style('#article .prose p').color, page: style('body').backgroundColor,
                box: style('#article').backgroundColor, border: style('#article').borderTopStyle,
                heading: style('#article .prose h2').breakAfter};
    }"""
    )
    assert look == {"text": "rgb(0, 0, 0)", "page": "rgb(255, 255, 255)",
                    "box": "rgba(0, 0, 0, 0)", "border": "none", "heading": "avoid"}  # fmt: skip

    pdf = page.pdf(format="A4")
    assert pdf.startswith(b"%PDF-") and len(re.findall(rb"/Type\s*/Page\b", pdf)) >= 1
