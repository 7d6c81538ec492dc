"""Steering an article in real Chromium: options, outline review, one section written again, edits
and versions; with JavaScript and without, by keyboard alone, and checked by axe on a phone and a
desktop."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from bench.page_weight import finished_job
from tests.browser import job_id, seen
from tests.jobs_api import api
from tests.sse import wait_for

READY = re.compile(r"Ready: \d+ words")
SAME_PAGE = "window.__same_page = true"  # gone if anything reloads the page


# With JavaScript


@pytest.mark.browser
def test_a_section_written_again_streams_in_place_then_shows_what_changed_and_restores(
    browsing, client, llm
):
    page = browsing.new_page(finished_job(client, "Tide pools"))
    expect(page.get_by_role("status")).to_have_text(READY)
    job = job_id(page)
    before = api(client, job)
    page.evaluate(SAME_PAGE)
    page.get_by_text(re.compile(r"^Draft: 3 sections")).click()
    section = page.locator("#section-1")
    old = section.locator(".prose").inner_text()
    section.get_by_text("Write this section again").click()
    section.get_by_label(re.compile("What to change")).fill("shorter")
    llm.token_delay = 0.05
    section.get_by_role("button", name="Write again").click()

    seen(page, "#section-1.is-writing .prose", "/anew/.test(el.textContent)")  # in place, live
    expect(section.locator(".eyebrow")).to_have_text("Writing it again…")
    expect(page.get_by_role("status")).to_have_text(READY)
    expect(section.locator(".prose")).to_contain_text("anew (shorter)")
    expect(page.locator("#article")).to_contain_text("anew (shorter)")  # styled again
    for other in (0, 2):
        expect(page.locator(f"#section-{other} .prose")).to_have_text(
            before["sections"][other]["text"])  # fmt: skip

    changes = section.locator("details.changes")
    expect(changes.locator("summary")).to_have_text("What changed (“shorter”)")
    changes.locator("summary").click()
    expect(changes.locator("ins").first).to_be_visible()
    expect(changes.locator("del").first).to_be_visible()
    assert "anew" in " ".join(changes.locator("ins").all_inner_texts())
    changes.get_by_role("button", name="Restore previous").click()
    expect(page.locator("#section-1 .prose")).to_have_text(old)
    wait_for(lambda: api(client, job)["article"] == before["article"])
    expect(page.locator("#article")).not_to_contain_text("anew")
    assert page.evaluate("window.__same_page") is True
