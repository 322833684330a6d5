"""The access token: every route answers 401 without it; ?token= becomes a cookie; the CSP is strict."""

import asyncio
from dataclasses import dataclass

import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from stream_ner.dashboard.access import COOKIE, CSP, SecurityHeaders, TokenGate

ROUTES = ["/", "/api/events?window=1m", "/api/board", "/static/app.js", "/health", "/anything"]


def app(token):
    async def ok(request):
        return PlainTextResponse(f"ok {request.url.path} {request.url.query}")

    inner = Starlette(routes=[Route("/{path:path}", ok, methods=["GET", "POST"])])
    return TokenGate(SecurityHeaders(inner), token)


@dataclass
class Response:
    status_code: int
    headers: dict[str, str]
    text: str


class Client:
    """Calls an ASGI app in-process (one request at a time) and keeps the cookie it sets."""

    def __init__(self, asgi):
        self.asgi = asgi
        self.cookie = None

    def request(self, method, target, headers=None):
        path, _, query = target.partition("?")
        headers = dict(headers or {})
        if self.cookie and "cookie" not in headers:
            headers["cookie"] = self.cookie
        scope = {
            "type": "http",
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": query.encode(),
            "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8088),
        }
        sent = []

        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message):
            sent.append(message)

        asyncio.run(self.asgi(scope, receive, send))
        start = sent[0]
        out = {k.decode(): v.decode() for k, v in start["headers"]}
        if "set-cookie" in out:
            self.cookie = out["set-cookie"].split(";")[0]
        body = b"".join(m.get("body", b"") for m in sent[1:])
        return Response(start["status"], out, body.decode())

    def get(self, target, headers=None):
        return self.request("GET", target, headers)

    def post(self, target, headers=None):
        return self.request("POST", target, headers)


@pytest.mark.parametrize("path", ROUTES)
def test_every_route_is_refused_without_the_token_or_with_a_wrong_one(path):
    client = Client(app("s3cret-token"))
    for headers in ({}, {"authorization": "Bearer nope"}, {"cookie": f"{COOKIE}={b'nope'.hex()}"}):
        response = client.get(path, headers=headers)
        assert response.status_code == 401
        assert "access token" in response.text
        assert response.headers["content-security-policy"] == CSP
    assert client.get(path + ("&" if "?" in path else "?") + "token=nope").status_code == 401
    assert client.post(path + "?token=s3cret-token").status_code == 401  # a query token only opens GETs


def test_a_query_token_sets_a_cookie_and_redirects_without_it():
    client = Client(app("s3cret-token"))
    response = client.get("/?window=1h&token=s3cret-token")
    assert response.status_code == 303
    assert response.headers["location"] == "/?window=1h"
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "s3cret-token" not in cookie
    assert client.get("/api/board").text == "ok /api/board "  # the cookie now opens every route


def test_a_bearer_token_opens_every_route():
    client = Client(app("s3cret-token"))
    for path in ROUTES:
        response = client.get(path, headers={"authorization": "Bearer s3cret-token"})
        assert response.status_code == 200 and response.text.startswith("ok ")
        assert response.headers["x-frame-options"] == "DENY"


def test_without_a_token_configured_everything_is_open_with_the_security_headers():
    response = Client(app(None)).get("/")
    assert response.status_code == 200
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert "unsafe-inline" not in response.headers["content-security-policy"]
