"""Steering an article in real Chromium: options, outline review, one section written again, edits
and versions; with JavaScript and without, by keyboard alone, and checked by axe on a phone and a
desktop."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from bench.page_weight import finished_job
from tests.browser import focus_ring, job_id, seen
from tests.jobs_api import api
from tests.sse import wait_for

READY = re.compile(r"Ready: \d+ words")
TITLES = ".outline-edit input[name=title]"
SAME_PAGE = "window.__same_page = true"  # gone if anything reloads the page


def titles(page: Page) -> list[str]:
    return page.locator(TITLES).evaluate_all("inputs => inputs.map(input => input.value)")


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


# By keyboard alone

NAME = """() => { const el = document.activeElement;
    if (el === document.body) return '(the page)';
    const name = el.getAttribute('aria-label') || (el.labels && el.labels[0]?.textContent)
                 || el.innerText || el.value || el.id || '';
    return name.trim().replace(/\\s+/g, ' '); }"""


def press_until(page: Page, name: str, key: str = "Tab", limit: int = 60) -> list[dict]:
    """Press `key` until the focused control is called `name`; every stop on the way, each
    checked to show its focus."""
    stops = []
    for _ in range(limit):
        page.keyboard.press(key)
        stop = {**focus_ring(page), "name": page.evaluate(NAME)}
        if stop["tag"] != "body":  # the wrap from one end of the page to the other
            assert stop["visible"] and stop["onscreen"], stop
        stops.append(stop)
        if stop["name"] == name:
            return stops
    raise AssertionError(f"{name!r} was not reached with {key}: {[s['name'] for s in stops]}")


def focused(page: Page) -> str:
    return page.evaluate(NAME)


@pytest.mark.browser
def test_the_outline_is_reviewed_and_a_section_written_again_by_keyboard_alone(
    browsing, client, llm
):
    llm.section_words = 20
    job = client.post("/api/jobs", json={"topic": "Tides", "review_outline": True}).json()["id"]
    wait_for(lambda: api(client, job)["status"] == "review")
    page = browsing.new_page(f"/jobs/{job}")
    expect(page.get_by_role("heading", level=1)).to_be_focused()

    # Each change redraws the outline (htmx); focus stays with the section or the control used.
    press_until(page, "Move section 1 down")
    page.keyboard.press("Enter")
    expect(page.locator("#down-1")).to_be_focused()  # the moved section's own button
    assert titles(page) == ["Tides: part 2", "Tides: part 1", "Tides: part 3"]
    assert focused(page) == "Move section 2 down" and focus_ring(page)["visible"]
    page.keyboard.press("Space")  # and on down, to the end
    expect(page.locator("#up-2")).to_be_focused()  # its down button is off there: up instead
    assert titles(page) == ["Tides: part 2", "Tides: part 3", "Tides: part 1"]

    press_until(page, "Remove section 1", "Shift+Tab")
    page.keyboard.press("Space")
    expect(page.locator("#remove-0")).to_be_focused()  # the section that took its place
    assert titles(page) == ["Tides: part 3", "Tides: part 1"]

    press_until(page, "Title of section 2")
    page.keyboard.press("Control+a")
    page.keyboard.type("Why the moon matters")
    page.keyboard.press("Enter")  # Enter in a title renames it
    wait_for(lambda: api(client, job)["outline"][1] == "Why the moon matters")
    expect(page.locator("#title-1")).to_be_focused()
    press_until(page, "New section")
    page.keyboard.type("Reading a tide table")
    page.keyboard.press("Enter")
    expect(page.locator(TITLES)).to_have_count(3)
    expect(page.locator("#new-title")).to_be_focused()  # ready for another
    assert api(client, job)["outline"] == ["Tides: part 3", "Why the moon matters",
                                           "Reading a tide table"]  # fmt: skip

    # Write it, by keyboard; then one section again, opened and sent by keyboard.
    press_until(page, "Write it")
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_have_text(READY)
    expect(page.locator("#sections details.draft")).not_to_have_attribute("open", "")
    press_until(page, "Draft: 3 sections before styling")
    page.keyboard.press("Enter")  # a <summary> opens with Enter
    expect(page.locator("#sections details.draft")).to_have_attribute("open", "")
    press_until(page, "Write this section again")  # the first section's
    page.keyboard.press("Enter")
    press_until(page, "What to change (optional)")
    page.keyboard.type("shorter")
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_have_text(READY)
    expect(page.locator("#section-0 .prose")).to_contain_text("anew (shorter)")
    press_until(page, "What changed (“shorter”)")
    page.keyboard.press("Enter")
    expect(page.locator("#section-0 .changes ins").first).to_be_visible()
    press_until(page, "Restore previous")
    page.keyboard.press("Space")
    expect(page.locator("#section-0 .prose")).not_to_contain_text("anew")

    # Nothing holds the keyboard: Tab goes all the way round the page, and back again.
    expect(page.locator("#section-0 details.changes")).not_to_have_attribute("open", "")
    around = [stop["name"] for stop in press_until(page, "Skip to content", limit=120)]
    assert "Write this section again" in around and "(the page)" in around, around
    press_until(page, "What changed (“shorter”)", "Shift+Tab", limit=120)
