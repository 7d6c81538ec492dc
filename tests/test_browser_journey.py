"""A person's way through Draftline in real Chromium: a topic in, a live article out, a download."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser import focus_ring, job_id, seen

# Test-side instrumentation (the app has no JavaScript of its own): note the job page's visible
# state after every DOM change, so the test sees each step of the stream, not a poll's sample.
TIMELINE = """
window.__timeline = [];
const note = () => {
  const bar = document.querySelector('#progress progress');
  if (!bar) return;
  const box = el => {
    const r = el && el.getBoundingClientRect();
    return r ? [Math.round(r.top), Math.round(r.height)] : null;
  };
  const sections = [...document.querySelectorAll('#sections .section')];
  const entry = {
    progress: Number(bar.value),
    pct: document.querySelector('#progress .pct').textContent.replace(/\\D/g, ''),
    steps: [...document.querySelectorAll('#steps [data-step]')].map(li => li.dataset.state),
    sections: sections.map(s =>
      (s.querySelector('.prose')?.textContent.match(/word\\d+/g) || []).length),
    heights: sections.map(s => Math.round(s.getBoundingClientRect().height)),
    status: document.querySelector('#status').textContent.trim(),
    article: !!document.querySelector('#article .prose'),
    panel: box(document.querySelector('.job-status')),
    title: box(document.querySelector('#job-title')),
  };
  const last = window.__timeline.at(-1);
  if (JSON.stringify(last) !== JSON.stringify(entry)) window.__timeline.push(entry);
};
new MutationObserver(note).observe(document,
  {subtree: true, childList: true, characterData: true, attributes: true});
"""
STEP_ORDER = {"pending": 0, "running": 1, "done": 2}


@pytest.mark.browser
def test_typed_topic_streams_steps_sections_and_article_live_then_downloads(browsing, llm):
    llm.token_delay, llm.sections, llm.section_words = 0.015, 3, 40
    context = browsing.new_context()
    context.add_init_script(TIMELINE)
    page = context.new_page()
    page.goto("/")

    expect(page.get_by_label("Topic")).to_be_focused()  # autofocus: type straight away
    page.get_by_label("Topic").fill("Tide pools")
    page.get_by_role("button", name="Generate").click()

    # The job page replaces the form in place, with its own address.
    expect(page.locator("#job-title")).to_have_text("Tide pools")
    expect(page).to_have_url(re.compile(r"/jobs/[A-Za-z0-9_-]+$"))
    job = job_id(page)
    seen(page, "#section-0.is-writing")  # a section while it is being written
    expect(page.locator("#article .prose h1")).to_have_text("Tide pools")  # the styled article
    expect(page.get_by_role("status")).to_have_text(re.compile(r"Ready: \d+ words"))
    expect(page.locator("progress")).to_have_attribute("value", "100")
    expect(page.locator(".pct")).to_have_text(re.compile(r"100%"))
    expect(page.locator("#steps [data-state=done]")).to_have_count(3)
    assert "Friendly:" in page.locator("#article").inner_text()
    assert page.locator("#article .prose h2").count() == 3

    timeline = page.evaluate("window.__timeline")
    progress = [entry["progress"] for entry in timeline]
    assert progress == sorted(progress), f"progress went backwards: {progress}"
    assert progress[-1] == 100 and len({p for p in progress if 0 < p < 100}) >= 3, progress
    assert all(entry["pct"] == str(entry["progress"]) for entry in timeline)
    statuses = [entry["status"] for entry in timeline]
    assert any(s.startswith("Writing sections: 1 of 3") for s in statuses), statuses  # live, too

    # Steps turn running -> done, one after another, never two at once, never backwards.
    seen_running = set()
    for before, after in zip(timeline, timeline[1:]):
        assert all(STEP_ORDER[b] <= STEP_ORDER[a] for b, a in zip(before["steps"], after["steps"]))
    for entry in timeline:
        states = entry["steps"]
        assert states.count("running") <= 1, states
        assert states == sorted(states, key=lambda s: -STEP_ORDER[s]), f"out of order: {states}"
        seen_running |= {i for i, s in enumerate(states) if s == "running"}
    assert seen_running == {0, 1, 2}, "each step is seen running"

    # Sections appear, then grow while being written, without ever shrinking.
    live = [entry for entry in timeline if entry["sections"] and not entry["article"]]
    first = [entry["sections"][0] for entry in live]
    assert first == sorted(first) and any(0 < n < 40 for n in first) and 40 in first, first
    heights = [entry["heights"] for entry in live]
    assert all(all(a <= b for a, b in zip(h1, h2)) for h1, h2 in zip(heights, heights[1:])), heights
    # Nothing above the stream moves or changes size while it runs: no layout jumps.
    assert len({(str(entry["panel"]), str(entry["title"])) for entry in timeline}) == 1, timeline

    # The Markdown download is the article.
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download .md").click()
    download = download_info.value
    assert download.suggested_filename == "tide-pools.md"
    text = Path(download.path()).read_text(encoding="utf-8")
    assert text.startswith("# Tide pools\n") and "Friendly:" in text

    page.get_by_role("link", name="Write another").click()
    expect(page).to_have_url(browsing.base_url + "/")
    expect(page.get_by_label("Topic")).to_be_focused()
    expect(page.get_by_role("link", name="Tide pools")).to_be_visible()  # listed as recent

    # Only our own files were fetched: the page, its CSS, the two vendored htmx files, the job.
    requests = browsing.watch(page).requests
    assert {r for r in requests if " script " in r} == {
        "GET script /static/htmx-2.0.11.min.js", "GET script /static/htmx-ext-sse-2.2.4.min.js"
    }  # fmt: skip
    assert "POST xhr /jobs" in requests and f"GET eventsource /jobs/{job}/events" in requests


@pytest.mark.browser
def test_clicking_a_suggested_topic_writes_that_article(browsing, llm):
    page = browsing.new_page("/")
    page.get_by_role("button", name="Why the sky is blue").click()

    # The page's own title: once the article is in, its h1 is a second level-1 heading.
    expect(page.locator("#job-title")).to_have_text("Why the sky is blue")
    expect(page.get_by_role("status")).to_have_text(re.compile(r"Ready: \d+ words"))
    expect(page.locator("#article .prose h1")).to_have_text("Why the sky is blue")
    page.reload()  # the address it moved to is the job's own page
    expect(page.locator("#article .prose h1")).to_have_text("Why the sky is blue")


@pytest.mark.browser
def test_an_empty_topic_is_refused_beside_the_field_without_leaving_the_page(browsing, llm):
    page = browsing.new_page("/")
    browsing.watch(page).allowed_statuses.add(422)  # the answer that carries the message
    page.get_by_label("Topic").fill("   ")
    page.get_by_role("button", name="Generate").click()

    expect(page.locator("#topic-error")).to_have_text("Please enter a topic.")
    expect(page.get_by_label("Topic")).to_have_attribute("aria-invalid", "true")
    expect(page).to_have_url(browsing.base_url + "/")
    assert not llm.calls


@pytest.mark.browser
def test_keyboard_alone_writes_an_article_and_every_stop_shows_focus(browsing, llm):
    page = browsing.new_page("/")
    expect(page.get_by_label("Topic")).to_be_focused()
    stops = []
    for _ in range(20):  # once round the page: past the last stop, back in at the skip link
        page.keyboard.press("Tab")
        stop = focus_ring(page)
        if stop["tag"] == "input":
            break
        if stop["tag"] != "body":  # the wrap from the end of the page back to its top
            stops.append(stop)
    assert all(stop["visible"] and stop["onscreen"] for stop in stops), stops
    labels = [stop["text"] for stop in stops]
    assert labels[0] == "Generate" and labels[-1] == "History", labels
    assert {"Why the sky is blue", "Skip to content", "Draftline"} <= set(labels), labels

    while focus_ring(page)["text"] != "Why the sky is blue":
        page.keyboard.press("Shift+Tab")
    page.keyboard.press("Enter")  # a suggestion, by keyboard
    # Focus follows to the new page's heading (read out first), so the next Tab is its actions.
    expect(page.locator("#job-title")).to_be_focused()
    expect(page.get_by_role("status")).to_have_text(re.compile(r"Ready: \d+ words"))

    page.keyboard.press("Tab")
    stop = focus_ring(page)
    assert stop["text"] == "Download .md" and stop["visible"] and stop["onscreen"], stop
    for following in ("Download .html", "Download .docx", "Edit", "Versions", "Write another"):
        page.keyboard.press("Tab")
        assert focus_ring(page)["text"] == following
    page.keyboard.press("Enter")
    expect(page.get_by_label("Topic")).to_be_focused()
    page.keyboard.type("Rock pools")
    page.keyboard.press("Enter")
    expect(page.locator("#job-title")).to_have_text("Rock pools")
    expect(page.get_by_role("status")).to_have_text(re.compile(r"Ready: \d+ words"))
    assert job_id(page)
