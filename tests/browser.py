"""Driving Debian's Chromium with Playwright: launching it, watching what pages do, checking them.

Browser tests get their fixtures from here (tests/conftest.py loads it as a plugin). Every page opened through `browsing` is watched:
console errors, page errors, failed or refused requests, requests that leave the app, scripts
other than the vendored htmx files, dialogs, and anything the page's Content-Security-Policy
refused all fail the test when it ends.

Chromium is Debian's (`/usr/bin/chromium`), never a downloaded build. On CI (CI=true) a missing
Chromium or axe-core fails the suite; on a developer's machine it skips with the reason.
"""

from __future__ import annotations

import os
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

try:
    from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright
except ImportError:  # a test extra; CI installs it, so only a developer's machine may lack it
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        raise
    pytest.skip("playwright is not installed: pip install -e '.[test]'", allow_module_level=True)

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path(os.environ.get("DRAFTLINE_CHROMIUM", "/usr/bin/chromium"))
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"  # npm install axe-core, as .ci/run does
ARTIFACTS = ROOT / "test-artifacts"
LAUNCH_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]  # fmt: skip
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
SCRIPTS = {"/static/htmx-2.0.11.min.js", "/static/htmx-ext-sse-2.2.4.min.js"}
STYLES = {"/static/draftline.css"}
WAIT = 30_000  # ms: generous, since every wait ends as soon as what it waits for is on screen
# Each report of a Content-Security-Policy violation, as the page itself sees it. Init scripts and
# exposed bindings are Playwright's own, so the policy under test does not apply to them.
CSP_REPORTS = """
document.addEventListener('securitypolicyviolation', event => window.__cspViolation(
    `${event.effectiveDirective} refused ${event.blockedURI || 'inline code'}` +
    ` at ${event.sourceFile || 'the page'}:${event.lineNumber}`));
"""
expect.set_options(timeout=WAIT)


def on_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(ok: bool, reason: str) -> None:
    """Skip on a developer's machine; on CI, where .ci/run installs everything, fail."""
    if not ok:
        (pytest.fail if on_ci() else pytest.skip)(reason)


# Fixtures (import them into a test module)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """One headless Chromium per test module. Module scope, not session: Playwright's sync API
    keeps an event loop marked running, which must be gone before any anyio test runs."""
    require(CHROMIUM.exists(), f"{CHROMIUM} not found: apt-get install chromium (see .ci/run)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def browsing(chromium: Browser, app_server) -> Iterator[Browsing]:
    """Open watched pages on the running app; fails the test if any of them misbehaved."""
    session = Browsing(chromium, app_server.url)
    yield session
    problems = session.close()
    assert not problems, "the browser saw problems:\n" + "\n".join(problems)


# Watching what a page does


@dataclass
class Watch:
    """Everything a context's pages did that a person would call broken or unsafe."""

    origin: str
    requests: list[str] = field(default_factory=list)  # "METHOD resource_type path"
    problems: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    offline_ok: bool = False  # while a test has cut the network, its failures are expected
    allowed_statuses: set[int] = field(default_factory=set)  # error answers a test asks for

    def attach(self, context: BrowserContext) -> None:
        context.on("request", self._request)
        context.on("requestfailed", self._failed)
        context.on("response", self._response)
        context.on("console", self._console)
        context.on("weberror", lambda error: self.problems.append(f"page error: {error.error}"))
        context.on("dialog", self._dialog)
        context.expose_binding("__cspViolation", self._csp_violation)
        context.add_init_script(CSP_REPORTS)

    def _request(self, request) -> None:
        url = urlsplit(request.url)
        self.requests.append(f"{request.method} {request.resource_type} {url.path}")
        if f"{url.scheme}://{url.netloc}" != self.origin:
            self.problems.append(f"request left the app: {request.method} {request.url}")
        elif request.resource_type == "script" and url.path not in SCRIPTS:
            self.problems.append(f"unexpected script: {request.url}")
        elif request.resource_type == "stylesheet" and url.path not in STYLES:
            self.problems.append(f"unexpected stylesheet: {request.url}")
        elif request.resource_type in ("image", "media", "font", "websocket", "other"):
            self.problems.append(f"unexpected {request.resource_type} request: {request.url}")

    def _failed(self, request) -> None:
        failure = request.failure or ""
        if failure == "net::ERR_ABORTED" and request.resource_type in ("eventsource", "document"):
            return  # the page left (refresh, link) or closed the stream itself: not a failure
        if self.offline_ok and "INTERNET_DISCONNECTED" in failure:
            return
        if self.offline_ok and request.url.endswith("/events"):
            return  # the stream the test cut on purpose
        self.problems.append(f"request failed: {request.method} {request.url} ({failure})")

    def _response(self, response) -> None:
        if response.status >= 400 and response.status not in self.allowed_statuses:
            request = response.request
            self.problems.append(f"HTTP {response.status}: {request.method} {request.url}")

    def _console(self, message) -> None:
        if message.type not in ("error", "warning"):
            return
        if self.offline_ok and re.search(r"net::ERR_|^\[object Event\]$", message.text):
            return  # the cut stream, refused reconnects, and htmx logging each EventSource error
        if any(f"status of {status} " in message.text for status in self.allowed_statuses):
            return  # Chromium logs every error answer, even one the page expects and shows
        self.problems.append(f"console {message.type}: {message.text}")

    def _csp_violation(self, source, report: str) -> None:
        self.problems.append(f"Content-Security-Policy violation: {report}")

    def _dialog(self, dialog) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        self.problems.append(f"a dialog opened: {dialog.type} {dialog.message!r}")
        dialog.dismiss()


class Browsing:
    """Watched browser contexts on the app at `base_url`, closed together at the end."""

    def __init__(self, browser: Browser, base_url: str):
        self.browser = browser
        self.base_url = base_url
        self.watches: dict[int, Watch] = {}
        self.contexts: list[BrowserContext] = []

    def new_context(
        self, *, viewport: dict = DESKTOP, base_url: str = "", **options
    ) -> BrowserContext:
        base_url = base_url or self.base_url
        context = self.browser.new_context(viewport=viewport, base_url=base_url, **options)
        context.set_default_timeout(WAIT)
        watch = Watch(origin=base_url)
        watch.attach(context)
        self.watches[id(context)] = watch
        self.contexts.append(context)
        return context

    def new_page(self, path: str = "/", **options) -> Page:
        """A page in a context of its own, opened at `path` (None: blank)."""
        page = self.new_context(**options).new_page()
        if path is not None:
            page.goto(path)
        return page

    def watch(self, page_or_context: Page | BrowserContext) -> Watch:
        context = getattr(page_or_context, "context", page_or_context)
        return self.watches[id(context)]

    def close(self) -> list[str]:
        problems = []
        for context in self.contexts:
            context.close()
            problems += self.watches[id(context)].problems
        return problems


# A connection that can be cut, as Wi-Fi dropping would


class Wire:
    """A TCP forwarder in front of the app whose open connections can be cut.

    Chromium's offline emulation (`context.set_offline`) refuses new requests but leaves a
    stream that is already open flowing; a real outage drops it too. Pages browse through the
    wire, and `cut()` drops every connection open through it at that moment.
    """

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            with self._lock:
                self._open |= {client, upstream}
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            self._drop(source, sink)

    def _drop(self, *sockets: socket.socket) -> None:
        for sock in sockets:
            with self._lock:
                self._open.discard(sock)
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def cut(self) -> None:
        with self._lock:
            sockets = list(self._open)
        self._drop(*sockets)

    def close(self) -> None:
        self._listener.close()
        self.cut()


# Checks that run in the page


def seen(page: Page, selector: str, also: str = "true", timeout: float = WAIT) -> None:
    """Wait until `selector` is on screen (and the JS expression `also` holds), checking at every
    frame: a state that lasts a moment, such as a section being written, is not missed, as it
    could be between the polls of `expect` or `locator.wait_for` (up to 500 ms apart)."""
    page.wait_for_function(
        f"""() => {{ const el = document.querySelector({selector!r});
                     return !!el && el.getClientRects().length > 0 && ({also}); }}""",
        polling="raf",
        timeout=timeout,
    )


def htmx_settled(page: Page, timeout: float = WAIT) -> None:
    """Wait until htmx has no request, swap or settle under way: it moves focus to a redrawn
    control's `autofocus` only when it settles, so keys pressed before then can land anywhere."""
    page.wait_for_function(
        "() => !document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling')",
        polling="raf",
        timeout=timeout,
    )


def horizontal_overflow(page: Page) -> list[str]:
    """Elements that stick out past the viewport's right edge (outside scrolling boxes)."""
    return page.evaluate(
        """() => {
        const width = document.documentElement.clientWidth, found = [];
        const scrolled = document.documentElement.scrollWidth;
        if (scrolled > width) found.push(`the page scrolls sideways: ${scrolled}px > ${width}px`);
        for (const el of document.body.querySelectorAll('*')) {
            if (el.closest('[hidden], details:not([open]) > :not(summary)')) continue;
            let scroller = el.parentElement, inside = false;
            for (; scroller && scroller !== document.body; scroller = scroller.parentElement)
                if (getComputedStyle(scroller).overflowX !== 'visible') { inside = true; break; }
            const box = el.getBoundingClientRect();
            const name = el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + '.' + el.className;
            if (!inside && box.width && box.right > width + 0.5)
                found.push(`${name}: right edge at ${Math.round(box.right)}px`);
        }
        return found;
    }"""
    )


def axe_violations(page: Page, impacts: tuple[str, ...] = ("serious", "critical")) -> list[str]:
    """WCAG 2.2 A/AA and best-practice violations axe-core finds, at these impacts."""
    require(AXE.exists(), f"{AXE} not found: npm install axe-core@4.14.1 (see .ci/run)")
    if not page.evaluate("() => typeof window.axe === 'object'"):
        # Evaluated by Playwright, as an inline <script> would be refused by the page's CSP;
        # no request leaves for it.
        page.evaluate(AXE.read_text())
    result = page.evaluate(
        """async () => {
        const tags = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice'];
        const {violations} = await axe.run(document, {runOnly: {type: 'tag', values: tags},
                                                      resultTypes: ['violations']});
        return violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.map(n => n.target.join(' ') + ': ' + n.failureSummary)}));
    }"""
    )
    return [
        f"{v['impact']} {v['id']}: {v['help']}\n    " + "\n    ".join(v["nodes"][:5])
        for v in result
        if v["impact"] in impacts
    ]


def focus_ring(page: Page) -> dict:
    """The focused element and whether a person can see that it has focus."""
    return page.evaluate(
        """() => {
        const el = document.activeElement, style = getComputedStyle(el);
        const outline = style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) >= 2;
        const shadow = style.boxShadow && style.boxShadow !== 'none';
        const box = el.getBoundingClientRect();
        return {tag: el.tagName.toLowerCase(),
                text: (el.innerText || el.value || el.id || '').trim().slice(0, 40),
                visible: outline || !!shadow,
                onscreen: box.width > 0 && box.height > 0 && box.right > 0 && box.bottom > 0};
    }"""
    )


def screenshot(page: Page, name: str, **options) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=path, animations="disabled", caret="hide", **options)
    return path


def job_id(page: Page) -> str:
    match = re.search(r"/jobs/([A-Za-z0-9_-]+)$", page.url)
    assert match, f"not on a job page: {page.url}"
    return match.group(1)
