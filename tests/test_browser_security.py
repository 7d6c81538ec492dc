"""Another site's page, open in the owner's real Chromium, tries to use Draftline behind their back."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser import WAIT, Browsing, job_id

# What a hostile page can do without any cooperation from Draftline: a plain form, and fetch()
# in `no-cors` mode, which sends the request (cookies included) though it cannot read the answer.
HOSTILE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Free prizes</title></head><body>
<form method="post" action="{app}/jobs"><input name="topic" value="Forged by a form">
  <button type="submit">Claim your prize</button></form>
<form method="post" action="{app}/jobs/{job}/delete"><button type="submit">Delete</button></form>
</body></html>"""
# Each request is sent; its answer is refused to the page (Cross-Origin-Resource-Policy), so
# fetch() rejects, and the attacker cannot even tell what happened.
NO_CORS = """async ([app, job]) => {
    const form = {method: 'POST', mode: 'no-cors',
                  headers: {'content-type': 'application/x-www-form-urlencoded'}};
    return (await Promise.allSettled([
        fetch(app + '/jobs', {...form, body: 'topic=Forged+by+fetch'}),
        fetch(app + '/jobs/' + job + '/delete', form),
        fetch(app + '/api/jobs/' + job + '/cancel', {method: 'POST', mode: 'no-cors'}),
    ])).map(result => result.status);
}"""


class HostileSite:
    """A page on another origin (another loopback address, or another port) aimed at the app."""

    def __init__(self, host: str, app_url: str, job: str):
        page = HOSTILE.format(app=app_url, job=job).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("content-type", "text/html; charset=utf-8")
                self.send_header("content-length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.url = f"http://{host}:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hostile_sites(app_server) -> Iterator[list]:
    sites: list[HostileSite] = []
    yield sites
    for site in sites:
        site.close()


# 127.0.0.2 is another site (Sec-Fetch-Site: cross-site); another port on 127.0.0.1 is the same
# site but another origin (same-site): both are refused.
@pytest.mark.browser
@pytest.mark.parametrize("host", ["127.0.0.2", "127.0.0.1"], ids=["cross-site", "same-site"])
def test_another_origins_page_cannot_create_or_delete_jobs(
    browsing, chromium, app_server, hostile_sites, llm, host
):
    llm.token_delay = 0.05  # the owner's job is still running when the forged cancel arrives
    owner = browsing.new_page("/")  # the owner's own tab, on Draftline itself
    owner.get_by_label("Topic").fill("Mine")
    owner.get_by_role("button", name="Generate").click()
    expect(owner.locator("#job-title")).to_have_text("Mine")
    job = job_id(owner)

    site = HostileSite(host, app_server.url, job)
    hostile_sites.append(site)
    context = chromium.new_context()  # the same browser; its requests leave the app on purpose
    context.set_default_timeout(WAIT)
    try:
        page = context.new_page()
        page.goto(site.url)
        assert page.evaluate(NO_CORS, [app_server.url, job]) == ["rejected"] * 3
        page.get_by_role("button", name="Claim your prize").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Refused")
        expect(page.get_by_text("came from another site")).to_be_visible()
        page.goto(site.url)
        page.get_by_role("button", name="Delete").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Refused")
    finally:
        context.close()

    jobs = httpx.get(f"{app_server.url}/api/jobs", timeout=10).json()["jobs"]
    assert [j["topic"] for j in jobs] == ["Mine"]  # nothing forged was created, or deleted
    assert jobs[0]["status"] != "cancelled"


@pytest.mark.browser
def test_with_a_password_the_owner_signs_in_once_then_writes_live(chromium, start_app, llm):
    llm.token_delay = 0.01
    server = start_app(DRAFTLINE_PASSWORD="correct horse battery staple")
    session = Browsing(chromium, server.url)
    try:
        page = session.new_page("/jobs")
        expect(page).to_have_url(re.compile(r"/login\?next=%2Fjobs$"))
        expect(page.get_by_label("Password")).to_be_focused()
        page.get_by_label("Password").fill("correct horse battery staple")
        page.get_by_role("button", name="Sign in").click()
        expect(page).to_have_url(re.compile(r"/jobs$"))  # back where the owner was going

        page.goto("/")
        page.get_by_label("Topic").fill("Tide pools")
        page.get_by_role("button", name="Generate").click()  # htmx and the event stream, signed in
        expect(page.get_by_role("status")).to_have_text(re.compile(r"Ready: \d+ words"))
        cookie = next(c for c in page.context.cookies() if c["name"] == "draftline_session")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
        assert page.evaluate("document.cookie") == ""  # out of reach of any script

        page.get_by_role("button", name="Sign out").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
    finally:
        problems = session.close()
    assert not problems, "the browser saw problems:\n" + "\n".join(problems)


def until(page, condition, timeout: float = WAIT) -> None:
    """Wait for `condition()`, letting Playwright deliver the page's events meanwhile."""
    for _ in range(int(timeout / 50)):
        if condition():
            return
        page.wait_for_timeout(50)
    raise AssertionError("condition not met in time")


@pytest.mark.browser
def test_the_csp_holds_and_the_suite_hears_of_any_violation(browsing, llm):
    page = browsing.new_page("/")
    watch = browsing.watch(page)
    page.evaluate("""() => {
        const script = document.createElement('script');
        script.textContent = 'window.injected = true';
        document.head.append(script);
        document.body.insertAdjacentHTML('beforeend', '<p style="color: red">injected</p>');
    }""")

    def reports() -> list[str]:
        return [p for p in watch.problems if "Content-Security-Policy violation" in p]

    until(page, lambda: len(reports()) >= 2)
    assert page.evaluate("() => window.injected") is None  # refused, not run
    assert any("script-src" in p for p in reports()) and any("style-src" in p for p in reports())
    # Expected here, so not this test's problems: the reports and Chromium's own console errors.
    watch.problems[:] = [p for p in watch.problems
                         if p not in reports() and "Content Security Policy" not in p]  # fmt: skip


@pytest.mark.browser
def test_another_site_cannot_frame_draftline(chromium, app_server, llm):
    context = chromium.new_context()
    context.set_default_timeout(WAIT)
    try:
        page = context.new_page()
        messages: list[str] = []
        page.on("console", lambda message: messages.append(message.text))
        page.set_content(f'<iframe src="{app_server.url}/jobs" title="Draftline"></iframe>')
        until(page, lambda: any("frame-ancestors" in m for m in messages))
        heading = page.frame_locator("iframe").get_by_role("heading", name="All articles")
        expect(heading).to_have_count(0)
    finally:
        context.close()
