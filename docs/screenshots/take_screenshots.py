"""Take README's screenshots of a real article, written by the embedded model, in real Chromium.

    python -m docs.screenshots.take_screenshots [--topic "How lighthouses work"]

It starts the app as `draftline` would with no OPENAI_* set (the embedded SmolLM2-135M through
llama.cpp, so the `local` extra must be installed), writes one article through the page, and saves
form.png, writing.png and article.png beside this file. Chromium is Debian's (/usr/bin/chromium),
driven by Playwright from the `test` extra.
"""

from __future__ import annotations

import argparse
import re
import tempfile
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

from tests.app_server import AppServer
from tests.browser import CHROMIUM, DESKTOP, LAUNCH_ARGS

HERE = Path(__file__).resolve().parent

WRITING_TIMEOUT = 300_000  # ms: the small model writes a whole article in well under a minute


def take(topic: str) -> None:
    with tempfile.TemporaryDirectory() as data, sync_playwright() as playwright:
        server = AppServer(Path(data), {"DRAFTLINE_LOCAL_MODEL": "auto"}).start()
        try:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
            page = browser.new_page(base_url=server.url, viewport=DESKTOP)
            page.goto("/")
            page.get_by_label("Topic").fill(topic)
            page.get_by_role("button", name="Generate").click()
            # Mid-job: the outline is in, a section is done and another one is being written.
            expect(page.locator(".section.is-done").first).to_be_visible(timeout=WRITING_TIMEOUT)
            expect(page.locator(".section.is-writing")).to_be_visible(timeout=WRITING_TIMEOUT)
            shoot(page, "writing")
            status = page.get_by_role("status")
            expect(status).to_have_text(re.compile(r"Ready: \d+ words"), timeout=WRITING_TIMEOUT)
            shoot(page, "article")
            page.goto("/")  # the form, with the article in the recent list
            shoot(page, "form")
            browser.close()
        finally:
            server.stop()


def shoot(page, name: str) -> None:
    path = HERE / f"{name}.png"
    page.screenshot(path=path, animations="disabled", caret="hide")
    print(path)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--topic", default="How lighthouses work")
    take(parser.parse_args().topic)
