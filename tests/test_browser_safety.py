"""Hostile LLM output in real Chromium: shown as text, never run, never fetched, never swapped."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser import job_id, seen

# Anything in the page that could run code or make a request of its own, outside our own wiring.
ACTIVE = """() => {
    const RISKY = ['script', 'img', 'iframe', 'object', 'embed', 'svg', 'math', 'form', 'base',
                   'meta', 'link', 'style', 'video', 'audio', 'source', 'picture'];
    const found = [];
    for (const el of document.querySelectorAll('#main *')) {
        const tag = el.tagName.toLowerCase();
        // Our own buttons and forms: the actions, and each section's steering forms.
        if (RISKY.includes(tag) && !el.closest('#actions, .redo, .changes')) found.push(tag);
        for (const {name, value} of el.attributes) {
            const htmx = /^(data-)?(hx-(?!swap-oob$|disable$)|sse-)/.test(name);
            if (name.startsWith('on') || (htmx && el.closest('.prose, .section h2')))
                found.push(`${tag}[${name}]`);
            if (/^\\s*(javascript|vbscript|data):/i.test(value))
                found.push(`${tag}[${name}=${value}]`);
        }
    }
    return found;
}"""


def assert_inert(page: Page) -> None:
    assert page.evaluate(ACTIVE) == []
    for link in page.locator("#main .prose a").all():
        assert re.match(r"(https?|mailto):", link.get_attribute("href") or ""), link


@pytest.mark.browser
def test_hostile_llm_output_is_shown_as_inert_text(browsing, llm):
    llm.hostile, llm.token_delay, llm.section_words = True, 0.005, 20
    page = browsing.new_page("/")
    topic = '<img src=x onerror="alert(0)"> Tide pools'  # the person's own input, too
    page.get_by_label("Topic").fill(topic)
    page.get_by_role("button", name="Generate").click()
    expect(page.locator("#job-title")).to_have_text(topic)
    job = job_id(page)

    seen(page, "#section-0 .prose")  # while sections stream in
    assert_inert(page)
    expect(page.get_by_role("status")).to_have_text(re.compile(r"Ready: \d+ words"))
    assert_inert(page)

    article = page.locator("#article").inner_text()
    for text in ('<script>alert("xss")</script>', '<img src=x onerror="alert(1)">', "click me",
                 '<div hx-get="/api/jobs" hx-trigger="load">htmx bait</div>',
                 "[md link](javascript:alert(3))"):  # fmt: skip
        assert text in article, text  # shown to the reader, as the text it is
    draft = page.locator("#sections").text_content()  # the draft, folded away once styled
    assert '<script>alert("xss")</script>' in draft and "hx-trigger" in draft

    page.reload()  # the finished page, drawn whole by the server, with htmx processing it afresh
    expect(page.locator("#article .prose h1")).to_be_visible()
    page.get_by_text("click me").first.click()  # nothing to follow: it is text
    assert_inert(page)
    assert page.evaluate("location.pathname") == f"/jobs/{job}"

    requests = browsing.watch(page).requests
    assert not [r for r in requests if "/api/" in r or "track" in r], requests
    assert browsing.watch(page).dialogs == []
