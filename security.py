"""What stands between the network and the app: who may ask for what, and from where.

Each guard is plain ASGI middleware that app.py lists around the routes. A guard that refuses a
request draws the refusal with app.py's own error page (JSON under /api/), so a refusal looks
like every other error.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from config import Settings

ErrorPage = Callable[[Request, int, str], Response]

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
