"""The job page in real Chromium when things go wrong around it: a refresh, a lost connection,
a second tab, no JavaScript at all."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser import Wire, job_id, seen
from tests.sse import wait_for

READY = re.compile(r"Ready: \d+ words")


def start(page: Page, topic: str = "Tide pools") -> str:
    page.get_by_label("Topic").fill(topic)
    page.get_by_role("button", name="Generate").click()
    expect(page.locator("#job-title")).to_have_text(topic)
    return job_id(page)


def api_job(base_url: str, job: str) -> dict:
    return httpx.get(f"{base_url}/api/jobs/{job}", timeout=5).json()


def visible_state(page: Page) -> dict:
    """What a person sees of a job, from the parts of the page that change."""
    return {
        "progress": page.locator("progress").get_attribute("value"),
        "status": page.get_by_role("status").inner_text(),
        "steps": page.locator("#steps").inner_text(),
        "actions": page.locator("#actions").inner_text(),
        "article": page.locator("#article").inner_html(),
        "sections": page.locator("#sections").inner_text(),
    }


@pytest.mark.browser
def test_refresh_mid_job_comes_back_with_everything_written_so_far_and_keeps_going(browsing, llm):
    llm.token_delay, llm.sections, llm.section_words = 0.02, 3, 30
    page = browsing.new_page("/")
    job = start(page)
    seen(page, "#section-0.is-done", "!/Ready/.test(document.querySelector('#status').textContent)")
    written = page.locator("#section-0 .prose").inner_text()

    response = page.reload()
    # The page itself, before any event arrives, already holds what was written.
    assert written in re.sub(r"<[^>]+>", "", response.text())
    expect(page.locator("#section-0 .prose")).to_have_text(written)
    expect(page.get_by_role("status")).to_have_text(READY)  # and it kept going, live
    expect(page.locator("#article .prose h1")).to_have_text("Tide pools")
    expect(page.locator("#steps [data-state=done]")).to_have_count(3)
    assert api_job(browsing.base_url, job)["status"] == "done"


@pytest.mark.browser
def test_connection_lost_mid_job_catches_up_and_finishes_without_a_refresh(
    browsing, app_server, llm
):
    llm.token_delay, llm.sections, llm.section_words = 0.01, 3, 40
    wire = Wire(app_server.port)  # browse through a connection the test can cut
    try:
        page = browsing.new_page("/", base_url=wire.url)
        watch = browsing.watch(page)
        job = start(page)
        seen(page, "#section-0.is-writing")
        page.evaluate("window.__same_page = true")  # gone if anything reloads the page

        watch.offline_ok = True
        page.context.set_offline(True)
        wire.cut()  # what losing the network does to the open event stream
        wait_for(lambda: api_job(app_server.url, job)["status"] == "done", timeout=30)
        expect(page.get_by_role("status")).not_to_have_text(READY)  # the page really was cut off
        assert page.locator("#article .prose").count() == 0

        page.context.set_offline(False)
        expect(page.get_by_role("status")).to_have_text(READY, timeout=20_000)
        expect(page.locator("#article .prose h1")).to_have_text("Tide pools")
        expect(page.locator("progress")).to_have_attribute("value", "100")
        assert page.evaluate("window.__same_page") is True
        caught_up = visible_state(page)
        watch.offline_ok = False
    finally:
        wire.close()

    fresh = browsing.new_page(f"/jobs/{job}")
    assert visible_state(fresh) == caught_up


@pytest.mark.browser
def test_two_tabs_on_the_same_job_end_on_the_same_page(browsing, llm):
    llm.token_delay, llm.section_words = 0.01, 40
    first = browsing.new_page("/")
    job = start(first)
    seen(first, "#section-0.is-writing")
    second = first.context.new_page()  # a second tab, opened mid-job
    second.goto(f"/jobs/{job}")

    for tab in (first, second):
        expect(tab.get_by_role("status")).to_have_text(READY)
        expect(tab.locator("#article .prose h1")).to_have_text("Tide pools")
    assert visible_state(first) == visible_state(second)
    assert visible_state(first) == visible_state(browsing.new_page(f"/jobs/{job}"))


@pytest.mark.browser
def test_without_javascript_the_form_submits_and_the_job_page_refreshes_to_the_article(
    browsing, llm
):
    llm.token_delay, llm.section_words = 0.01, 20
    page = browsing.new_page("/", java_script_enabled=False)
    page.get_by_label("Topic").fill("Tide pools")
    page.get_by_role("button", name="Generate").click()  # a plain form post, then a redirect

    expect(page).to_have_url(re.compile(r"/jobs/[A-Za-z0-9_-]+$"))
    expect(page.locator("#job-title")).to_have_text("Tide pools")
    expect(page.get_by_role("status")).to_have_text(READY)  # the page reloaded itself until done
    expect(page.locator("#article .prose h1")).to_have_text("Tide pools")
    expect(page.get_by_role("link", name="Download .md")).to_be_visible()
    assert page.locator("meta[http-equiv=refresh]").count() == 0  # and then stopped reloading
    assert not any("eventsource" in r or "xhr" in r for r in browsing.watch(page).requests)

    page.goto("/")
    page.get_by_role("button", name="Why the sky is blue").click()  # a suggestion, too
    expect(page.locator("#job-title")).to_have_text("Why the sky is blue")
    expect(page.get_by_role("status")).to_have_text(READY)
