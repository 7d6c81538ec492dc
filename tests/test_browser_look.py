"""How the pages look and read in real Chromium: phone and desktop, light and dark, checked by axe.

Screenshots land in test-artifacts/ (git-ignored). README's are of a real article by the
embedded model, taken by docs/screenshots/take_screenshots.py.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from bench.page_weight import BUDGET, finished_job, report, weigh
from tests.browser import (
    DESKTOP,
    PHONE,
    axe_violations,
    horizontal_overflow,
    screenshot,
    seen,
)  # fmt: skip

READY = re.compile(r"Ready: \d+ words")
VIEWPORTS = {"desktop": DESKTOP, "phone": PHONE}


def start(page: Page, topic: str) -> None:
    page.get_by_label("Topic").fill(topic)
    page.get_by_role("button", name="Generate").click()
    expect(page.locator("#job-title")).to_have_text(topic)


@pytest.mark.browser
@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_form_job_and_article_fit_the_screen_without_sideways_scrolling(
    browsing, llm, size, scheme
):
    llm.token_delay, llm.sections, llm.section_words = 0.01, 3, 50
    page = browsing.new_page("/", viewport=VIEWPORTS[size], color_scheme=scheme)
    name = f"{size}-{scheme}"
    assert horizontal_overflow(page) == []
    screenshot(page, f"{name}-1-form")

    start(page, "How sourdough starters work")
    seen(page, "#section-1.is-writing")  # mid-job: sections half written
    assert horizontal_overflow(page) == []
    screenshot(page, f"{name}-2-writing")

    expect(page.get_by_role("status")).to_have_text(READY)
    assert horizontal_overflow(page) == []
    screenshot(page, f"{name}-3-article")
    screenshot(page, f"{name}-3-article-full", full_page=True)

    page.goto("/")  # the form again, now with the article in the recent list
    expect(page.get_by_role("link", name="How sourdough starters work")).to_be_visible()
    assert horizontal_overflow(page) == []
    screenshot(page, f"{name}-4-form-with-recent")


@pytest.mark.browser
def test_long_unbroken_words_wrap_on_a_phone_instead_of_overflowing(browsing, llm):
    page = browsing.new_page("/", viewport=PHONE)
    topic = "Pneumonoultramicroscopicsilicovolcanoconiosis-Supercalifragilistic"  # in every title
    start(page, topic)
    expect(page.get_by_role("status")).to_have_text(READY)
    page.locator("#sections .draft > summary").click()  # unfold the draft
    assert horizontal_overflow(page) == []
    page.goto("/")
    assert horizontal_overflow(page) == []  # the recent list, with that topic in it


@pytest.mark.browser
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_axe_finds_no_serious_accessibility_violations_on_any_page(browsing, llm, scheme):
    llm.token_delay, llm.section_words = 0.01, 60
    page = browsing.new_page("/", color_scheme=scheme, reduced_motion="reduce")
    browsing.watch(page).allowed_statuses |= {404, 422}  # the pages that say so
    found = {"form": axe_violations(page)}

    page.get_by_label("Topic").fill(" ")
    page.get_by_role("button", name="Generate").click()
    expect(page.locator("#topic-error")).to_be_visible()
    found["form with an error"] = axe_violations(page)

    start(page, "Tide pools")
    seen(page, "#section-0.is-writing")
    found["job while writing"] = axe_violations(page)
    expect(page.get_by_role("status")).to_have_text(READY)
    found["finished job"] = axe_violations(page)
    page.locator("#sections .draft > summary").click()
    found["finished job, draft open"] = axe_violations(page)

    page.goto("/")
    found["form with recent articles"] = axe_violations(page)
    page.goto("/jobs/no-such-job-here")
    found["not found"] = axe_violations(page)

    problems = {where: violations for where, violations in found.items() if violations}
    assert not problems, "\n".join(f"{at}:\n  " + "\n  ".join(v) for at, v in problems.items())


@pytest.mark.browser
def test_live_regions_and_progress_are_exposed_to_assistive_technology(browsing, llm):
    llm.token_delay, llm.section_words = 0.01, 40
    page = browsing.new_page("/")
    start(page, "Tide pools")
    status = page.get_by_role("status")
    expect(status).to_have_attribute("aria-live", "polite")
    bar = page.get_by_role("progressbar", name=re.compile(r"Progress \d+%"))
    seen(page, "#section-0.is-writing")
    assert 0 < int(bar.get_attribute("value")) < 100
    expect(status).to_have_text(READY)
    expect(page.get_by_role("progressbar", name="Progress 100%")).to_have_attribute("value", "100")
    expect(page.get_by_role("list", name="Steps").get_by_role("listitem")).to_have_text(
        [re.compile(r"Outline\s+done"), re.compile(r"Sections\s+done"), re.compile(r"Style\s+done")]
    )


def test_job_page_with_its_css_and_htmx_weighs_under_60_kb_gzipped(client, llm):
    rows = weigh(client, finished_job(client))
    paths = [path for path, _, _ in rows]
    assert paths[1:] == [
        "/static/draftline.css", "/static/htmx-2.0.11.min.js", "/static/htmx-ext-sse-2.2.4.min.js"
    ]  # fmt: skip
    total = sum(packed for _, _, packed in rows)
    assert total <= BUDGET, report(rows)
