"""Who may see the dashboard, and what the page may load: the access token and the security headers.

``TokenGate`` (ASGI middleware): with a token configured, every HTTP route answers 401 unless the request
carries it: as ``Authorization: Bearer TOKEN``, in the ``stream_ner_dashboard`` cookie (hex) or ``?token=``.
A request with a valid ``?token=`` gets the cookie (HttpOnly, SameSite=Strict) and is redirected to the
same URL without the token, so it neither stays in the address bar nor reaches the page's scripts; the
page's own requests (``fetch``, ``EventSource``) then carry the cookie. Without a token configured the
gate lets everything through (the dashboard binds to 127.0.0.1 by default).

``SecurityHeaders``: a strict Content-Security-Policy (scripts and styles from the dashboard itself only,
no inline script), no framing, no sniffing, no referrer. Post text is put in the page as text by the page's
script; the policy is the second line of defence.
"""

from __future__ import annotations

import hmac
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, urlencode

COOKIE = "stream_ner_dashboard"

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]

_REFUSED = b"401 Unauthorized: this dashboard needs its access token (open it with ?token=...)\n"

Scope = dict[str, Any]


def _headers(scope: Scope) -> dict[bytes, bytes]:
    return {name.lower(): value for name, value in scope.get("headers", [])}


def presented(scope: Scope) -> tuple[str | None, str | None]:
    """The token a request carries in a header or cookie, and the one in its query string (or None)."""
    headers = _headers(scope)
    header_token = None
    auth = headers.get(b"authorization", b"").decode("latin-1")
    if auth.lower().startswith("bearer "):
        header_token = auth[7:].strip()
    elif cookie := headers.get(b"cookie"):
        jar = SimpleCookie()
        try:
            jar.load(cookie.decode("latin-1"))
        except Exception:  # noqa: BLE001 - a malformed cookie header is no token
            jar = SimpleCookie()
        if COOKIE in jar:
            try:
                header_token = bytes.fromhex(jar[COOKIE].value).decode()
            except ValueError:
                header_token = None
    query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
    return header_token, query.get("token")


def same(given: str | None, token: str) -> bool:
    """Constant-time comparison of a presented token with the configured one."""
    return given is not None and hmac.compare_digest(given.encode(), token.encode())


class TokenGate:
    """401 for every HTTP request without the token (see the module docstring)."""

    def __init__(self, app: Any, token: str | None) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        """Pass the request on, redirect it with the cookie, or answer 401."""
        if scope["type"] != "http" or not self.token:
            await self.app(scope, receive, send)
            return
        carried, in_query = presented(scope)
        if same(carried, self.token):
            await self.app(scope, receive, send)
        elif same(in_query, self.token) and scope["method"] in ("GET", "HEAD"):
            await self._redirect_with_cookie(scope, send)
        else:
            await send(
                {
                    "type": "http.response.start",
                    "status": 401,
                    "headers": [
                        (b"content-type", b"text/plain; charset=utf-8"),
                        (b"www-authenticate", b'Bearer realm="stream-ner dashboard"'),
                        *HEADERS,
                    ],
                }
            )
            await send({"type": "http.response.body", "body": _REFUSED})

    async def _redirect_with_cookie(self, scope: Scope, send: Any) -> None:
        assert self.token is not None
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"))
        rest = [(k, v) for k, v in query if k != "token"]
        location = scope.get("root_path", "") + scope["path"] + (f"?{urlencode(rest)}" if rest else "")
        cookie = f"{COOKIE}={self.token.encode().hex()}; Path=/; HttpOnly; SameSite=Strict"
        await send(
            {
                "type": "http.response.start",
                "status": 303,
                "headers": [
                    (b"location", location.encode("latin-1")),
                    (b"set-cookie", cookie.encode("latin-1")),
                    (b"cache-control", b"no-store"),
                    *HEADERS,
                ],
            }
        )
        await send({"type": "http.response.body", "body": b""})


class SecurityHeaders:
    """Adds ``HEADERS`` to every HTTP response."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        """Pass the request on, adding the headers to its response."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = message | {"headers": [*message.get("headers", []), *HEADERS]}
            await send(message)

        await self.app(scope, receive, with_headers)
