"""What stands between the network and the app: who may ask for what, and from where.

Each guard is plain ASGI middleware that app.py lists around the routes. A guard that refuses a
request draws the refusal with app.py's own error page (JSON under /api/), so a refusal looks
like every other error.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import ipaddress
import secrets
from collections.abc import Callable
from urllib.parse import urlencode, urlsplit

import h11
from itsdangerous import BadSignature, TimestampSigner
from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from secure import (
    ContentSecurityPolicy,
    CrossOriginOpenerPolicy,
    CrossOriginResourcePolicy,
    ReferrerPolicy,
    Secure,
    XContentTypeOptions,
    XFrameOptions,
)
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from .config import Settings

ErrorPage = Callable[[Request, int, str], Response]

# Response headers, on every response (SecureASGIMiddleware from the `secure` library).
# Our pages run only the two vendored htmx files and our stylesheet: nothing inline, no eval (htmx
# is told `allowEval:false` and `includeIndicatorStyles:false` in base.html). The favicon is a
# data: URL. No other site may frame a page (its Delete buttons) or read our responses.

HEADERS = Secure(
    csp=ContentSecurityPolicy()
    .default_src("'none'")
    .script_src("'self'")
    .style_src("'self'")
    .img_src("'self'", "data:")
    .connect_src("'self'")  # htmx requests and the event streams
    .form_action("'self'")
    .frame_ancestors("'none'")
    .base_uri("'none'"),
    xfo=XFrameOptions().deny(),  # frame-ancestors, for browsers that predate it
    xcto=XContentTypeOptions(),  # nosniff
    referrer=ReferrerPolicy().same_origin(),  # job ids stay here
    coop=CrossOriginOpenerPolicy().same_origin(),
    corp=CrossOriginResourcePolicy().same_origin(),
)


# DNS rebinding: a page on rebind.attacker.example whose name now points at 127.0.0.1 sends
# `Host: rebind.attacker.example`. Starlette's TrustedHostMiddleware answers such requests 400.

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
ANY_ADDRESS = frozenset({"", "0.0.0.0", "::"})


def allowed_hosts(settings: Settings) -> list[str]:
    """Host names served: the loopback ones, the address listened on, DRAFTLINE_ALLOWED_HOSTS."""
    names = [*LOOPBACK_HOSTS, *settings.allowed_hosts]
    if settings.host not in ANY_ADDRESS:
        names.append(settings.host)
    # Starlette compares IPv6 literals with their brackets, as a Host header carries them.
    patterns = (f"[{n}]" if ":" in n and not n.startswith("[") else n for n in names)
    return list(dict.fromkeys(p.strip().lower() for p in patterns))


# Cross-site request forgery: OWASP's Fetch Metadata check.

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SAME_ORIGIN_SITES = frozenset({"same-origin", "none"})  # `none`: typed, bookmarked, a script
DEFAULT_PORTS = {"http": 80, "https": 443}
CROSS_SITE = (
    "Draftline refused this request because it came from another site's page. "
    "To do this, open Draftline itself and use its own buttons."
)


def is_cross_site_write(scope: Scope) -> bool:
    """A state-changing request that a page on another origin made the browser send.

    Browsers say where a request comes from in `Sec-Fetch-Site` (sent to https and loopback
    servers); where they do not (plain http on a LAN), every POST still carries `Origin`, which
    must then be this server's own. curl and scripts send neither, and are not refused.
    """
    if scope["method"] in SAFE_METHODS:
        return False
    headers = Headers(scope=scope)
    site = headers.get("sec-fetch-site")
    if site is not None:
        return site.strip().lower() not in SAME_ORIGIN_SITES
    origin = headers.get("origin")
    if origin is None:
        return False
    sent = _origin(origin)
    return sent is None or sent != _origin(f"{scope['scheme']}://{headers.get('host', '')}")


def _origin(url: str) -> tuple[str, str, int | None] | None:
    """(scheme, host, port) with the default port filled in; None for `null` or garbage."""
    try:
        parts = urlsplit(url.strip())
        scheme = parts.scheme.lower()
        port = parts.port or DEFAULT_PORTS.get(scheme)
    except ValueError:  # a bad port or IPv6 literal
        return None
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    return scheme, parts.hostname.lower(), port


class CrossSiteWrites:
    """Refuse (403) any state-changing request that another origin's page made."""

    def __init__(self, app: ASGIApp, error_page: ErrorPage):
        self.app = app
        self.error_page = error_page

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and is_cross_site_write(scope):
            response = self.error_page(Request(scope, receive), 403, CROSS_SITE)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


# Access control: DRAFTLINE_PASSWORD.

SESSION_COOKIE = "draftline_session"
SESSION_SECONDS = 30 * 24 * 3600
PUBLIC_PATHS = frozenset({"/healthz", "/login", "/logout"})
WRONG_GUESSES = RateLimitItemPerMinute(10, 15)  # per client: 10 wrong passwords in 15 minutes
ASK_API = "This Draftline needs its password: send Authorization: Bearer <DRAFTLINE_PASSWORD>."
ASK_PAGE = "This Draftline needs its password. Sign in, then try again."


class LoginRefused(Exception):
    """A wrong password (401), or too many of them from one client (429)."""

    def __init__(self, status_code: int, message: str):
        super().__init__(message)
        self.status_code = status_code


class Gate:
    """Checks the password in constant time, limits wrong guesses, and signs sessions.

    Sessions are signed with a key made at start-up and kept only in memory: no secret is
    written to disk, and restarting Draftline signs everyone out.
    """

    def __init__(self, password: str):
        self._password = password.encode()
        self._signer = TimestampSigner(secrets.token_bytes(32), salt="draftline-session")
        self._wrong = MovingWindowRateLimiter(MemoryStorage())

    def attempt(self, client: str, password: bytes) -> None:
        """Return if `password` (as UTF-8) is right; raise LoginRefused if not, or if this client
        has guessed wrong too often lately (then even the right password waits)."""
        if not self._wrong.test(WRONG_GUESSES, client):
            raise LoginRefused(429, "Too many wrong passwords from your address: try again in a "
                               "quarter of an hour.")  # fmt: skip
        if not hmac.compare_digest(password, self._password):
            self._wrong.hit(WRONG_GUESSES, client)
            raise LoginRefused(401, "That is not the password.")

    def sign_in(self, response: Response, https: bool) -> None:
        session = self._signer.sign(b"in").decode()
        response.set_cookie(SESSION_COOKIE, session, max_age=SESSION_SECONDS, httponly=True,
                            samesite="lax", secure=https)  # fmt: skip

    def signed_in(self, cookie: str | None) -> bool:
        try:
            return bool(cookie) and self._signer.unsign(cookie, max_age=SESSION_SECONDS) == b"in"
        except BadSignature:  # forged, tampered with, from before a restart, or expired
            return False


class RequirePassword:
    """With a Gate, every route but /healthz, /login and static files needs the password:
    a session cookie from the login form, or `Authorization: Bearer <password>`."""

    def __init__(self, app: ASGIApp, gate: Gate | None, error_page: ErrorPage):
        self.app = app
        self.gate = gate
        self.error_page = error_page

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if (scope["type"] != "http" or self.gate is None or path in PUBLIC_PATHS
                or path.startswith("/static/")):  # fmt: skip
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            try:
                # Header values arrive as latin-1: back to the bytes the client sent.
                self.gate.attempt(client_address(request), token.strip().encode("latin-1"))
            except LoginRefused as exc:
                response = self.error_page(request, exc.status_code, str(exc))
                response.headers["WWW-Authenticate"] = 'Bearer realm="Draftline"'
                await response(scope, receive, send)
                return
        elif self.gate.signed_in(request.cookies.get(SESSION_COOKIE)):
            scope.setdefault("state", {})["signed_in"] = True  # pages offer to sign out
        else:
            await self.ask(request)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def ask(self, request: Request) -> Response:
        """The API and streams answer 401; a page asks for the password on the login form."""
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        login = "/login?" + urlencode({"next": target})
        page = request.method in ("GET", "HEAD") and "HX-Request" not in request.headers
        if page and not request.url.path.startswith("/api/") and (
            "text/event-stream" not in request.headers.get("accept", "")
        ):
            return RedirectResponse(login, status_code=303)
        api = request.url.path.startswith("/api/")
        response = self.error_page(request, 401, ASK_API if api else ASK_PAGE)
        response.headers["WWW-Authenticate"] = 'Bearer realm="Draftline"'
        if "HX-Request" in request.headers:
            response.headers["HX-Redirect"] = "/login"
        return response


def client_address(request: Request) -> str:
    """Who is asking, as limits count it (behind a trusted proxy, uvicorn has set it)."""
    return request.client.host if request.client else ""


def local_path(target: str | None) -> str:
    """`target` if it is a path on this server, else `/`: a login never sends anyone away."""
    if (target and target.startswith("/") and not target.startswith(("//", "/\\"))
            and target.isprintable() and not urlsplit(target).netloc):  # fmt: skip
        return target
    return "/"


def is_loopback(host: str) -> bool:
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def refuse_to_start(settings: Settings) -> str | None:
    """Why `draftline` must not listen where it was asked to, if it must not."""
    if settings.password or is_loopback(settings.host):
        return None
    return (
        f"DRAFTLINE_HOST={settings.host} lets other machines reach Draftline, and without a "
        "password anyone who can reach it could read and delete every article and spend your "
        "LLM credits. Set DRAFTLINE_PASSWORD to a long random secret, for example\n\n"
        "    DRAFTLINE_PASSWORD=$(python -c 'import secrets; print(secrets.token_urlsafe(24))')\n\n"
        "and DRAFTLINE_ALLOWED_HOSTS to the names people use, or listen on 127.0.0.1 only."
    )


# Half-sent requests: uvicorn waits forever for the rest of a request's headers or body, so a
# client that sends a few bytes and stops holds a connection open for good.


class DeadlineH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, but a request must arrive whole (headers and body) within
    `read_timeout` seconds of the connection opening or of the previous response ending, or
    the connection is dropped. A request that has arrived may take as long as its answer does
    (an event stream stays open for hours)."""

    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm()  # the next request on this keep-alive connection has as long

    def connection_lost(self, exc: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = self.loop.call_later(_read_timeout(), self._expire)

    def _expire(self) -> None:
        arriving = self.conn.their_state in (h11.IDLE, h11.SEND_BODY)  # headers, then the body
        if arriving and not self.transport.is_closing():
            self.transport.close()


@functools.cache
def _read_timeout() -> float:
    """DRAFTLINE_READ_TIMEOUT, read once per process: uvicorn starts each of its --workers with
    this class (by name) and the environment `draftline` was started with."""
    return Settings.from_env().read_timeout
