"""Steering an article in real Chromium: options, outline review, one section written again, edits,
versions and downloads; with JavaScript and without, by keyboard alone, and checked by axe on a
phone and a desktop."""

from __future__ import annotations

import re

import docx
import pytest
from playwright.sync_api import Page, expect

from bench.page_weight import finished_job
from draftline.views import money
from tests.browser import (
    DESKTOP,
    PHONE,
    axe_violations,
    focus_ring,
    horizontal_overflow,
    htmx_settled,
    job_id,
    screenshot,
    seen,
)  # fmt: skip
from tests.jobs_api import api
from tests.sse import wait_for

READY = re.compile(r"Ready: \d+ words")
REVIEW = re.compile(r"The outline is ready")
WORKING = re.compile(r"^(Waiting|Writing|Rewriting|Polishing)")
TITLES = ".outline-edit input[name=title]"
SAME_PAGE = "window.__same_page = true"  # gone if anything reloads the page
REFRESH = "meta[http-equiv=refresh]"  # the <noscript> refresh, live only without JavaScript


def start(page: Page, topic: str, *, review: bool = False, **options: str) -> str:
    """Type a topic, choose options under More options, press Generate; the job's id."""
    page.get_by_label("Topic").fill(topic)
    if review or options:
        page.get_by_text("More options").click()
    if "length" in options:
        page.get_by_role("radio", name=re.compile(f"^{options['length']}")).check()
    if "tone" in options:
        page.get_by_label("Tone").select_option(label=options["tone"])
    if "audience" in options:
        page.get_by_label("Audience").fill(options["audience"])
    if "language" in options:
        page.get_by_label("Language").fill(options["language"])
    if review:
        page.get_by_role("checkbox", name=re.compile("review the outline")).check()
    page.get_by_role("button", name="Generate").click()
    expect(page.locator("#job-title")).to_have_text(topic)
    return job_id(page)


def titles(page: Page) -> list[str]:
    return page.locator(TITLES).evaluate_all("inputs => inputs.map(input => input.value)")


def posted(page: Page, path: str, press) -> dict:
    """Do `press()`, which posts a form to `path`; what the request and its answer were."""

    def answer(response) -> bool:
        return response.request.method == "POST" and response.url.endswith(path)

    with page.expect_response(answer) as info:
        press()
    response = info.value
    return {"status": response.status, "htmx": response.request.headers.get("hx-request")}


def in_view(page: Page, selector: str) -> bool:
    """Whether the top of `selector` is on screen."""
    return page.evaluate(
        "s => { const top = document.querySelector(s).getBoundingClientRect().top;"
        " return top > -1 && top < innerHeight; }",
        selector,
    )


@pytest.fixture
def app_server(start_app, llm, request):
    """The app under uvicorn, as conftest.py's `app_server`, but started with the environment a
    test parametrizes it with: `@pytest.mark.parametrize("app_server", [env], indirect=True)`."""
    return start_app(**getattr(request, "param", {}))


# With JavaScript


@pytest.mark.browser
def test_options_chosen_under_more_options_show_on_the_job_and_reach_the_prompts(browsing, llm):
    page = browsing.new_page("/")
    more = page.locator("details.more-options")
    expect(more).not_to_have_attribute("open", "")  # folded away until wanted
    start(page, "Tide pools", length="Short", tone="Formal", audience="nurses", language="French")
    expect(page.locator(".brief")).to_have_text("Short · Formal · for nurses · in French")
    expect(page.get_by_role("status")).to_have_text(READY)
    page.reload()  # a stored fact, not just what the form said
    expect(page.locator(".brief")).to_have_text("Short · Formal · for nurses · in French")
    prompts = [str(call.request["messages"]) for call in llm.calls]
    assert prompts and all("French" in p and "nurses" in p for p in prompts), prompts


@pytest.mark.browser
def test_the_outline_is_reviewed_in_place_then_write_it_goes_live_to_ready(browsing, client, llm):
    llm.token_delay, llm.section_words = 0.01, 20
    page = browsing.new_page("/")
    job = start(page, "Tides", review=True)
    expect(page.get_by_role("heading", name="Review the outline")).to_be_visible()
    expect(page.get_by_role("status")).to_have_text(REVIEW)
    assert titles(page) == ["Tides: part 1", "Tides: part 2", "Tides: part 3"]
    assert not llm.calls_of("section")  # nothing is paid for before the outline is approved
    for verb in ("Rename section", "Remove section"):  # each button says which section it is for
        expect(page.get_by_role("button", name=re.compile(f"^{verb} [123]$"))).to_have_count(3)
    page.evaluate(SAME_PAGE)
    outline = f"/jobs/{job}/outline"

    page.get_by_label("Title of section 1").fill("Why the moon matters")
    answer = posted(
        page, outline, page.get_by_role("button", name="Rename section 1", exact=True).click
    )
    assert answer == {"status": 200, "htmx": "true"}  # swapped in by htmx, not a page load
    expect(page.locator(TITLES).first).to_have_value("Why the moon matters")
    changes = [
        ("Move section 1 down", ["Tides: part 2", "Why the moon matters", "Tides: part 3"]),
        ("Remove section 3", ["Tides: part 2", "Why the moon matters"]),
        ("Move section 2 up", ["Why the moon matters", "Tides: part 2"]),
    ]
    for button, outcome in changes:
        answer = posted(page, outline, page.get_by_role("button", name=button).click)
        assert answer == {"status": 200, "htmx": "true"}, button
        expect(page.locator(TITLES)).to_have_count(len(outcome))
        assert titles(page) == outcome == api(client, job)["outline"], button
    page.get_by_label("New section").fill("Reading a tide table")
    posted(page, outline, page.get_by_role("button", name="Add").click)
    expect(page.locator(TITLES)).to_have_count(3)
    approved = ["Why the moon matters", "Tides: part 2", "Reading a tide table"]
    assert titles(page) == approved == api(client, job)["outline"]
    assert page.evaluate("window.__same_page") is True

    # Planned again, following the instruction, live: then it waits for review once more.
    page.get_by_label(re.compile("Or plan it again")).fill("fewer, more practical")
    page.get_by_role("button", name="Regenerate outline").click()
    seen(page, "#status", "/Planning a new outline/.test(el.textContent)")
    expect(page.get_by_role("status")).to_have_text(REVIEW)
    expect(page.locator(TITLES).first).to_have_value("Tides: part 1")  # the fake's new plan
    assert "fewer, more practical" in str(llm.calls_of("outline")[-1].request["messages"])
    assert len(llm.calls_of("outline")) == 2 and not llm.calls_of("section")
    page.get_by_label("Title of section 2").fill("Spring and neap tides")
    page.get_by_label("Title of section 2").press("Enter")  # Enter in a title renames it
    expect(page.locator(TITLES).nth(1)).to_have_value("Spring and neap tides")
    wait_for(lambda: api(client, job)["outline"][1] == "Spring and neap tides")

    llm.token_delay = 0.05  # a second per section: the page's stream opens long before it ends
    page.get_by_role("button", name="Write it").click()
    seen(page, "#section-0.is-writing")  # the sections stream in, live
    llm.token_delay = 0.01
    expect(page.get_by_role("status")).to_have_text(READY)
    expect(page.locator("#article .prose h1")).to_have_text("Tides")
    written = page.locator("#sections .section h2").all_text_contents()
    assert written == ["Tides: part 1", "Spring and neap tides", "Tides: part 3"]
    assert page.evaluate("window.__same_page") is True
    assert f"GET document /jobs/{job}" not in browsing.watch(page).requests


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
    # The rewrite is 11 words. At 0.2 s a word, "anew" (word 8) is on screen under the eyebrow for
    # about 0.6 s, two or three of the 0.25 s streaming updates, before the section is done; at
    # 0.05 s a word that window was one update or none, and the check below failed now and then.
    quick, llm.token_delay = llm.token_delay, 0.2
    section.get_by_role("button", name="Write again").click()

    seen(page, "#section-1.is-writing")  # written again in place, live, and kept in view
    assert in_view(page, "#section-1"), "the page jumped away from the section being written"
    # The new text streams in under its eyebrow, seen in one frame.
    seen(page, "#section-1.is-writing", "/anew/.test(el.querySelector('.prose').textContent)"
         " && el.querySelector('.eyebrow')?.textContent.trim() === 'Writing it again…'")
    llm.token_delay = quick  # and the style pass over the whole article goes at the usual pace
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
    marks = changes.evaluate(
        """changes => ['ins', 'del'].map(tag =>
            getComputedStyle(changes.querySelector(tag)).textDecorationLine)"""
    )
    assert marks == ["underline", "line-through"]  # told apart by more than colour
    changes.get_by_role("button", name="Restore previous").click()
    expect(page.locator("#section-1 .prose")).to_have_text(old)
    expect(page.locator("#job-title")).to_be_focused()  # htmx has settled
    assert in_view(page, "#section-1")
    wait_for(lambda: api(client, job)["article"] == before["article"])
    expect(page.locator("#article")).not_to_contain_text("anew")
    assert page.evaluate("window.__same_page") is True


@pytest.mark.browser
def test_an_edit_is_saved_and_any_version_restored(browsing, client, llm):
    page = browsing.new_page(finished_job(client, "Tide pools"))
    job = job_id(page)
    original = api(client, job)["article"]
    page.get_by_role("link", name="Edit").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Edit “Tide pools”")
    box = page.get_by_label("The article, in Markdown")
    expect(box).to_have_value(original)
    box.fill("# Tide pools\n\nWritten by hand, at low tide.")
    page.get_by_role("button", name="Save").click()
    expect(page).to_have_url(f"{browsing.base_url}/jobs/{job}")
    expect(page.locator("#article .prose")).to_contain_text("Written by hand, at low tide.")

    page.get_by_role("link", name="Versions").click()
    versions = page.locator(".version-list > li")
    expect(versions.locator("h2")).to_have_text([re.compile("v2 edited"), re.compile("v1 styled")])
    expect(versions.first).to_contain_text("current")
    versions.first.get_by_text("Changes from v1").click()
    expect(versions.first.locator("ins").first).to_be_visible()
    expect(versions.first.locator("del").first).to_be_visible()
    page.get_by_role("button", name="Restore v1").click()
    expect(page).to_have_url(f"{browsing.base_url}/jobs/{job}")
    expect(page.locator("#article .prose")).not_to_contain_text("Written by hand")
    assert api(client, job)["article"] == original
    page.get_by_role("link", name="Versions").click()
    expect(versions.first.locator("h2")).to_have_text(re.compile("v3 restored v1"))


# Without JavaScript


@pytest.mark.browser
def test_without_javascript_every_steering_form_is_a_plain_post(browsing, client, llm):
    llm.section_words = 20
    page = browsing.new_page("/", java_script_enabled=False)
    page.get_by_label("Topic").fill("Tides")
    page.get_by_text("More options").click()  # <details> opens without any script
    page.get_by_role("radio", name=re.compile("^Short")).check()
    page.get_by_role("checkbox", name=re.compile("review the outline")).check()
    answer = posted(page, "/jobs", page.get_by_role("button", name="Generate").click)
    assert answer == {"status": 303, "htmx": None}
    job = job_id(page)
    expect(page.get_by_role("status")).to_have_text(REVIEW)  # it refreshed itself until then
    assert page.locator(REFRESH).count() == 0  # and stops: nobody's typing is reloaded away
    expect(page.locator(".brief")).to_have_text(re.compile("^Short · Warm"))

    outline = f"/jobs/{job}/outline"
    page.get_by_label("Title of section 1").fill("Why the moon matters")
    answer = posted(
        page, outline, page.get_by_role("button", name="Rename section 1", exact=True).click
    )
    assert answer == {"status": 303, "htmx": None}
    expect(page.locator(TITLES).first).to_have_value("Why the moon matters")
    for button in ("Move section 1 down", "Remove section 3"):
        answer = posted(page, outline, page.get_by_role("button", name=button).click)
        assert answer["status"] == 303, button
    page.get_by_label("New section").fill("Reading a tide table")
    posted(page, outline, page.get_by_role("button", name="Add").click)
    approved = ["Tides: part 2", "Why the moon matters", "Reading a tide table"]
    expect(page.locator(TITLES)).to_have_count(3)
    assert titles(page) == approved == api(client, job)["outline"]

    page.get_by_label(re.compile("Or plan it again")).fill("more practical")
    answer = posted(page, f"/jobs/{job}/outline/regenerate",
                    page.get_by_role("button", name="Regenerate outline").click)  # fmt: skip
    assert answer["status"] == 303
    expect(page.get_by_role("status")).to_have_text(REVIEW)
    assert "more practical" in str(llm.calls_of("outline")[-1].request["messages"])
    llm.token_delay = 0.03  # long enough to see the page while it is written
    answer = posted(page, f"/jobs/{job}/write", page.get_by_role("button", name="Write it").click)
    assert answer["status"] == 303
    expect(page.locator(REFRESH)).to_have_count(1)  # it reloads itself while it is written
    expect(page.get_by_role("status")).to_have_text(WORKING)
    expect(page.get_by_role("status")).to_have_text(READY)
    assert page.locator(REFRESH).count() == 0

    # One section again.
    old = api(client, job)["sections"][1]["text"]
    page.get_by_text(re.compile(r"^Draft: 3 sections")).click()
    section = page.locator("#section-1")
    section.get_by_text("Write this section again").click()
    section.get_by_label(re.compile("What to change")).fill("shorter")
    answer = posted(page, f"/jobs/{job}/sections/2/regenerate",
                    section.get_by_role("button", name="Write again").click)  # fmt: skip
    assert answer["status"] == 303
    expect(page.locator(REFRESH)).to_have_count(1)
    expect(page.get_by_role("status")).to_have_text(WORKING)
    expect(page.get_by_role("status")).to_have_text(READY)
    expect(page.locator("#section-1 .prose")).to_contain_text("anew (shorter)")
    page.locator("#section-1 details.changes summary").click()
    expect(page.locator("#section-1 .changes ins").first).to_be_visible()
    answer = posted(page, f"/jobs/{job}/sections/2/restore",
                    page.get_by_role("button", name="Restore previous").click)  # fmt: skip
    assert answer["status"] == 303
    expect(page.locator("#section-1 .prose")).to_have_text(old.strip())

    # Edit, then go back a version.
    page.get_by_role("link", name="Edit").click()
    page.get_by_label("The article, in Markdown").fill("# Tides\n\nBy hand.")
    answer = posted(page, f"/jobs/{job}/article", page.get_by_role("button", name="Save").click)
    assert answer["status"] == 303
    expect(page.locator("#article .prose")).to_contain_text("By hand.")
    page.get_by_role("link", name="Versions").click()
    page.locator(".version-list > li").first.get_by_text(re.compile("^Changes from")).click()
    expect(page.locator(".version-list > li").first.locator("del").first).to_be_visible()
    answer = posted(page, f"/jobs/{job}/versions/1/restore",
                    page.get_by_role("button", name="Restore v1").click)  # fmt: skip
    assert answer["status"] == 303
    expect(page.locator("#article .prose")).not_to_contain_text("By hand.")
    requests = browsing.watch(page).requests
    assert not [r for r in requests if " xhr " in r or " eventsource " in r], requests


# Both ways: with JavaScript and without


@pytest.mark.browser
@pytest.mark.parametrize("javascript", [True, False], ids=["javascript", "no-javascript"])
def test_a_refused_option_is_said_beside_it_and_takes_focus(browsing, llm, javascript):
    page = browsing.new_page("/", java_script_enabled=javascript)
    browsing.watch(page).allowed_statuses.add(422)  # the answer that carries the message
    page.get_by_label("Topic").fill("Tide pools")
    page.get_by_text("More options").click()
    page.get_by_label("Audience").fill("nurses")
    language = page.get_by_label("Language")
    language.evaluate("input => input.removeAttribute('maxlength')")  # as a script could send
    language.fill("x" * 41)
    page.get_by_role("button", name="Generate").click()

    expect(page.locator("#language-error")).to_have_text(re.compile("40 characters"))
    expect(language).to_be_focused()  # where the person has something to fix
    expect(language).to_have_attribute("aria-describedby", "language-error")
    expect(page.get_by_label("Audience")).to_have_value("nurses")  # the rest is kept
    expect(page.get_by_label("Topic")).to_have_value("Tide pools")
    assert not llm.calls


@pytest.mark.browser
@pytest.mark.parametrize("javascript", [True, False], ids=["javascript", "no-javascript"])
def test_each_download_link_saves_the_article_as_it_now_stands(
    browsing, client, llm, tmp_path, javascript
):
    path = finished_job(client, "Crème brûlée at home")
    edited = "# Crème brûlée at home\n\nEdited by hand, *after* the draft."
    client.put(f"/api/{path[1:]}/article", json={"article": edited})
    page = browsing.new_page(path, java_script_enabled=javascript)
    files = {}
    for extension in ("md", "html", "docx"):
        with page.expect_download() as info:
            page.get_by_role("link", name=f"Download .{extension}").click()
        download = info.value
        assert download.suggested_filename == f"creme-brulee-at-home.{extension}"
        files[extension] = tmp_path / download.suggested_filename
        download.save_as(files[extension])
    assert files["md"].read_text(encoding="utf-8") == edited + "\n"
    html = files["html"].read_text(encoding="utf-8")
    assert html.startswith("<!doctype html>") and "<script" not in html
    words = "\n".join(paragraph.text for paragraph in docx.Document(files["docx"]).paragraphs)
    assert "Edited by hand, after the draft." in words

    # The .html page, opened on its own, shows the article and fetches nothing at all.
    viewer = browsing.browser.new_context()
    fetched = []
    viewer.on("request", lambda request: fetched.append(request.url))
    opened = viewer.new_page()
    opened.goto(files["html"].as_uri())
    expect(opened.get_by_role("heading", level=1)).to_have_text("Crème brûlée at home")
    expect(opened.get_by_text("Edited by hand")).to_be_visible()
    viewer.close()
    assert fetched == [files["html"].as_uri()]


PRICES = {"DRAFTLINE_PRICE_PER_1K_INPUT": "0.5", "DRAFTLINE_PRICE_PER_1K_OUTPUT": "1.5"}
WRITING = "!/^Ready/.test(document.querySelector('#status').textContent)"  # JS: not done yet


@pytest.mark.browser
@pytest.mark.parametrize("app_server", [{}, PRICES], ids=["no-prices", "prices"], indirect=True)
@pytest.mark.parametrize("javascript", [True, False], ids=["javascript", "no-javascript"])
def test_the_usage_line_shows_the_tokens_used_and_with_prices_the_estimated_cost(
    browsing, client, llm, app_server, javascript
):
    priced = "DRAFTLINE_PRICE_PER_1K_INPUT" in app_server.env
    llm.token_delay = 0.01  # long enough to watch the line while the job runs
    page = browsing.new_page("/", java_script_enabled=javascript)
    page.evaluate(SAME_PAGE)  # kept with JavaScript; without, the page refreshes itself
    job = start(page, "Tide pools")
    usage = page.locator("#usage")
    if javascript:  # drawn live, from the events, while the sections are still written
        seen(page, "#usage", f"/^[\\d,]+ tokens in, [\\d,]+ out/.test(el.textContent) && {WRITING}")
    expect(page.get_by_role("status")).to_have_text(READY)
    used = api(client, job)["usage"]
    assert used["prompt_tokens"] > 0 and used["completion_tokens"] > 0
    shown = f"{used['prompt_tokens']:,} tokens in, {used['completion_tokens']:,} out"
    if priced:
        cost = (used["prompt_tokens"] * 0.5 + used["completion_tokens"] * 1.5) / 1000
        assert used["cost"] == round(cost, 6)
        shown += f" · estimated cost {money(cost)}"
    else:
        assert "cost" not in used
    expect(usage).to_have_text(shown)  # the final count, not one from midway
    expect(usage).to_be_visible()
    if javascript:
        assert page.evaluate("window.__same_page") is True  # live, without reloading


BUDGET = {"DRAFTLINE_MAX_TOKENS_PER_JOB": "200"}


@pytest.mark.browser
@pytest.mark.parametrize("app_server", [BUDGET], ids=["budget-200"], indirect=True)
@pytest.mark.parametrize("javascript", [True, False], ids=["javascript", "no-javascript"])
def test_a_job_past_its_token_budget_says_so_on_its_page_keeping_what_was_written(
    browsing, client, llm, javascript
):
    page = browsing.new_page("/", java_script_enabled=javascript)
    job = start(page, "Tide pools")
    status = page.get_by_role("status")
    expect(status).to_have_text(re.compile(
        r"^Failed: This article used [\d,]+ tokens, more than DRAFTLINE_MAX_TOKENS_PER_JOB "
        r"\(200\) allows\. What was written is kept\.$"))  # fmt: skip
    failed = api(client, job)
    assert failed["status"] == "failed"
    expect(status).to_have_text(f"Failed: {failed['error']}")
    used = failed["usage"]
    assert used["prompt_tokens"] + used["completion_tokens"] > 200
    expect(page.locator("#usage")).to_have_text(
        f"{used['prompt_tokens']:,} tokens in, {used['completion_tokens']:,} out")  # fmt: skip
    written = [s["text"] for s in failed["sections"] if s["text"]]
    assert written, "nothing was written before the budget ran out"
    for text in written:  # kept, and shown
        expect(page.locator("#sections")).to_contain_text(text[:40])
    expect(page.get_by_role("button", name="Retry")).to_be_visible()
    if not javascript:
        assert page.locator(REFRESH).count() == 0  # it stopped refreshing itself: it is over


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
    expect(page.locator(TITLES)).to_have_count(2)
    htmx_settled(page)
    expect(page.locator("#remove-0")).to_be_focused()  # the section that took its place
    assert titles(page) == ["Tides: part 3", "Tides: part 1"]

    press_until(page, "Title of section 2")
    page.keyboard.press("Control+a")
    page.keyboard.type("Why the moon matters")
    page.keyboard.press("Enter")  # Enter in a title renames it
    wait_for(lambda: api(client, job)["outline"][1] == "Why the moon matters")
    htmx_settled(page)
    expect(page.locator("#title-1")).to_be_focused()
    press_until(page, "New section")
    page.keyboard.type("Reading a tide table")
    page.keyboard.press("Enter")
    expect(page.locator(TITLES)).to_have_count(3)
    htmx_settled(page)
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
    expect(page.locator("#job-title")).to_be_focused()  # htmx has settled: Tab from there

    # Nothing holds the keyboard: Tab goes all the way round the page, and back again.
    expect(page.locator("#section-0 details.changes")).not_to_have_attribute("open", "")
    around = [stop["name"] for stop in press_until(page, "Skip to content", limit=120)]
    assert "Write this section again" in around and "(the page)" in around, around
    press_until(page, "What changed (“shorter”)", "Shift+Tab", limit=120)


@pytest.mark.browser
@pytest.mark.parametrize("javascript", [True, False], ids=["javascript", "no-javascript"])
def test_more_options_are_chosen_and_the_form_sent_by_keyboard_alone(
    browsing, client, llm, javascript
):
    page = browsing.new_page("/", java_script_enabled=javascript)
    expect(page.get_by_label("Topic")).to_be_focused()  # where a person starts
    page.keyboard.type("Tide pools")
    press_until(page, "More options")
    page.keyboard.press("Enter")  # a <summary> opens with Enter
    expect(page.locator("details.more-options")).to_have_attribute("open", "")
    press_until(page, "Medium (5 sections, ~250 words each)")  # Tab goes to the chosen one
    page.keyboard.press("ArrowUp")  # the arrows choose among radios
    expect(page.get_by_role("radio", name=re.compile("^Short"))).to_be_checked()
    expect(page.get_by_role("radio", name=re.compile("^Short"))).to_be_focused()
    press_until(page, "Tone")
    page.keyboard.press("ArrowDown")  # warm, neutral, formal: the arrows step through a <select>
    page.keyboard.press("ArrowDown")
    expect(page.get_by_label("Tone")).to_have_value("formal")
    press_until(page, "Audience (optional)")
    page.keyboard.type("nurses")
    page.keyboard.press("Enter")  # Enter in a field sends the form, as Generate does

    expect(page.locator("#job-title")).to_have_text("Tide pools")
    expect(page.locator("#job-title")).to_be_focused()  # the page says where it is
    job = job_id(page)
    expect(page.locator(".brief")).to_have_text("Short · Formal · for nurses")
    assert api(client, job)["options"] == {"length": "short", "tone": "formal",
                                           "audience": "nurses", "language": "",
                                           "review_outline": False}  # fmt: skip
    expect(page.get_by_role("status")).to_have_text(READY)


@pytest.mark.browser
@pytest.mark.parametrize("javascript", [True, False], ids=["javascript", "no-javascript"])
def test_an_edit_is_saved_and_a_version_restored_by_keyboard_alone(
    browsing, client, llm, javascript
):
    page = browsing.new_page(finished_job(client, "Tide pools"), java_script_enabled=javascript)
    job = job_id(page)
    original = api(client, job)["article"]
    expect(page.locator("#job-title")).to_be_focused()
    press_until(page, "Edit")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("Edit “Tide pools”")
    press_until(page, "The article, in Markdown")
    expect(page.get_by_label("The article, in Markdown")).to_have_value(original)
    page.keyboard.press("Control+a")
    page.keyboard.type("# Tide pools\n\nWritten by hand, at low tide.")
    press_until(page, "Save")
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{browsing.base_url}/jobs/{job}")
    expect(page.locator("#article .prose")).to_contain_text("Written by hand, at low tide.")
    assert api(client, job)["article"] == "# Tide pools\n\nWritten by hand, at low tide."

    press_until(page, "Versions")
    page.keyboard.press("Enter")
    expect(page.locator(".version-list > li h2").first).to_have_text(re.compile("v2 edited"))
    press_until(page, "Restore v1")
    page.keyboard.press("Space")  # a button presses with Space as with Enter
    expect(page).to_have_url(f"{browsing.base_url}/jobs/{job}")
    expect(page.locator("#article .prose")).not_to_contain_text("Written by hand")
    assert api(client, job)["article"] == original
    versions = client.get(f"/api/jobs/{job}/versions").json()["versions"]
    assert [v["kind"] for v in versions] == ["styled", "edited", "restored v1"]


# How the new parts look and read


def outlined_as_refused(page: Page, field: str) -> bool:
    """Whether `field` is drawn in the colour of its error message, as a refused field is."""
    return page.evaluate(
        """field => { const el = document.querySelector(field);
            const message = document.getElementById(el.getAttribute('aria-describedby'));
            return getComputedStyle(el).borderTopColor === getComputedStyle(message).color; }""",
        field,
    )


VIEWPORTS = {"desktop": DESKTOP, "phone": PHONE}
LONG = "Pneumonoultramicroscopicsilicovolcanoconiosis-Supercalifragilistic"  # in every title


# A page without JavaScript runs no timers (nor queueMicrotask), and axe waits on them: promise
# callbacks, which do run there, stand in for axe alone (the page's own scripts never run). Only
# "at once" timers run: a delayed one is axe's own time limit, which then never runs out.
# Stopping the page also cancels its pending <noscript> refresh, so that axe reads one page, not
# the next one half-loaded.
HOLD_STILL_WITHOUT_JAVASCRIPT = """() => {
    window.stop();
    window.setTimeout = (run, ms, ...args) => {
        if (!ms) Promise.resolve().then(() => run(...args));
        return 0;
    };
    window.clearTimeout = () => {};
}"""
REWRITING = "#section-1.is-writing .prose"


def rule(violation: str) -> str:
    """The axe rule of one of axe_violations' lines ("critical meta-refresh: ...")."""
    return violation.split(":", 1)[0].split(" ", 1)[1]


@pytest.mark.browser
@pytest.mark.parametrize("javascript", [True, False], ids=["javascript", "no-javascript"])
def test_axe_finds_nothing_serious_while_a_section_is_written_again(
    browsing, client, llm, javascript
):
    page = browsing.new_page(finished_job(client, "Tide pools"), java_script_enabled=javascript)
    job = job_id(page)
    page.get_by_text(re.compile(r"^Draft: 3 sections")).click()
    section = page.locator("#section-1")
    section.get_by_text("Write this section again").click()
    section.get_by_label(re.compile("What to change")).fill(
        "shorter, with one example from a rock pool at low tide on a windy morning")  # fmt: skip
    llm.token_delay = 0.25  # some 25 words streamed: six seconds of a section being rewritten
    section.get_by_role("button", name="Write again").click()
    seen(page, REWRITING, "el.textContent.trim().length > 0")  # its new words, coming in
    expect(page.get_by_role("status")).to_have_text("Rewriting section 2…")
    if not javascript:
        page.evaluate(HOLD_STILL_WITHOUT_JAVASCRIPT)
    found = axe_violations(page)
    assert page.locator(REWRITING).is_visible(), "the rewrite ended before axe did"
    assert section.locator(".eyebrow").text_content() == "Writing it again…"
    client.post(f"/api/jobs/{job}/cancel")  # done with it: the earlier text is kept

    # A known product bug, not fixed here: without JavaScript a page that is still being written
    # refreshes itself every 2 seconds (<noscript><meta http-equiv="refresh">, templates/job.html),
    # which axe counts against WCAG 2.2.1 (timing adjustable). It xfails until that is fixed.
    refresh = [violation for violation in found if rule(violation) == "meta-refresh"]
    others = [violation for violation in found if violation not in refresh]
    assert not others, "\n".join(others)
    if refresh:
        assert not javascript  # with JavaScript, the <noscript> refresh is inert
        pytest.xfail("the page without JavaScript refreshes itself every 2 s:\n" + refresh[0])


@pytest.mark.browser
@pytest.mark.parametrize("size, scheme", [("desktop", "light"), ("phone", "dark")])
def test_axe_finds_nothing_serious_and_nothing_overflows_on_the_steering_pages(
    browsing, client, llm, size, scheme
):
    llm.section_words = 30
    page = browsing.new_page("/", viewport=VIEWPORTS[size], color_scheme=scheme,
                             reduced_motion="reduce")  # fmt: skip
    browsing.watch(page).allowed_statuses.add(422)  # the answers that carry a message
    found = {}

    def check(where: str) -> None:
        found[where] = axe_violations(page) + horizontal_overflow(page)
        screenshot(page, f"steering-{size}-{scheme}-{where.replace(' ', '-')}", full_page=True)
        # Hiding the caret for the picture leaves empty style attributes on the inputs, which
        # htmx would copy onto their successors at its next swap: refused by the page's CSP.
        page.evaluate(
            "document.querySelectorAll('[style]').forEach(el => el.removeAttribute('style'))"
        )

    page.get_by_label("Topic").fill(" ")
    page.get_by_text("More options").click()
    page.get_by_label("Tone").select_option(label="Formal")
    language = page.get_by_label("Language")
    language.evaluate("input => input.removeAttribute('maxlength')")  # as a script could send
    language.fill("x" * 41)
    page.get_by_role("button", name="Generate").click()
    expect(page.locator("#topic-error")).to_be_visible()
    expect(page.locator("#language-error")).to_be_visible()
    expect(language).to_have_attribute("aria-invalid", "true")
    assert outlined_as_refused(page, "#language")
    expect(page.locator("details.more-options")).to_have_attribute("open", "")
    expect(page.get_by_label("Tone")).to_have_value("formal")  # what was chosen is kept
    check("form with options and errors")

    job = client.post("/api/jobs", json={"topic": LONG, "review_outline": True}).json()["id"]
    wait_for(lambda: api(client, job)["status"] == "review")
    page.goto(f"/jobs/{job}")
    expect(page.get_by_role("heading", name="Review the outline")).to_be_visible()
    lines = page.locator(".outline-edit form").evaluate_all(
        "forms => forms.map(form => new Set([...form.querySelectorAll('button')]"
        ".map(button => button.getBoundingClientRect().top)).size)"
    )
    assert lines == [1, 1, 1], "a section's buttons wrap onto more than one line"
    check("outline review")
    title = page.get_by_label("Title of section 2")
    title.evaluate("input => input.required = false")  # as a script could send
    title.fill(" ")
    page.get_by_role("button", name="Rename section 2", exact=True).click()
    expect(page.locator("#outline-error")).to_be_visible()
    expect(page.locator("#title-1")).to_be_focused()  # back on the field, marked as refused
    expect(page.locator("#title-1")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#title-1")).to_have_attribute("aria-describedby", "outline-error")
    assert outlined_as_refused(page, "#title-1")
    check("outline review with an error")

    page.get_by_role("button", name="Write it").click()
    expect(page.get_by_role("status")).to_have_text(READY)
    client.post(f"/api/jobs/{job}/sections/2/regenerate", json={"instruction": "add an example"})
    wait_for(lambda: len(client.get(f"/api/jobs/{job}/versions").json()["versions"]) == 2)
    page.reload()
    expect(page.get_by_role("status")).to_have_text(READY)
    page.locator("#section-1 details.changes summary").click()
    page.locator("#section-1 details.redo summary").click()
    expect(page.locator("#section-1 .changes ins").first).to_be_visible()
    check("finished job with a section's changes open")

    page.get_by_role("link", name="Edit").click()
    page.get_by_label("The article, in Markdown").fill("   ")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#article-error")).to_be_visible()
    expect(page.get_by_label("The article, in Markdown")).to_have_attribute("aria-invalid", "true")
    assert outlined_as_refused(page, "#article")
    expect(page.get_by_label("The article, in Markdown")).to_be_focused()  # back in the box
    assert in_view(page, "#article-error"), "the message is off screen"
    check("edit page with an error")

    page.goto(f"/jobs/{job}/versions")
    for summary in page.locator(".version-list summary").all():
        summary.click()
    expect(page.locator(".version-list del").first).to_be_visible()
    check("versions")

    problems = {where: violations for where, violations in found.items() if violations}
    assert not problems, "\n".join(f"{at}:\n  " + "\n  ".join(v) for at, v in problems.items())
