"""Who may look and who may act: authentication, CSRF and the headers every page gets.

Bound to loopback, the dashboard is open to the machine's own users, as a local tool is.
Bound to any other address it refuses to start without a token or a basic-auth password.
Every action is a POST carrying a CSRF token that must match the one in the visitor's
cookie (double submit), from a page of the same origin. Pages allow no inline script.
"""

from __future__ import annotations

import base64
import hmac
import ipaddress
import secrets
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from ..exceptions import ImproperlyConfigured

__all__ = [
    "CSP",
    "CSRF_COOKIE",
    "Access",
    "is_loopback",
    "security_headers",
]

CSRF_COOKIE = "conveyor_csrf"
TOKEN_COOKIE = "conveyor_token"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def security_headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["X-Frame-Options"] = "DENY"
    return response


@dataclass(frozen=True)
class Access:
    """The credentials a request must carry: none, a token, or a basic-auth user."""

    token: str | None = None
    basic_user: str | None = None
    basic_password: str | None = None

    @classmethod
    def from_settings(cls, token: str | None, basic_auth: str | None) -> Access:
        user = password = None
        if basic_auth:
            user, sep, password = basic_auth.partition(":")
            if not sep or not user or not password:
                raise ImproperlyConfigured(
                    "dashboard basic auth must be 'user:password' (dashboard_basic_auth)"
                )
        return cls(token or None, user, password)

    @property
    def required(self) -> bool:
        return bool(self.token or self.basic_user)

    def check_bind(self, host: str) -> None:
        if not is_loopback(host) and not self.required:
            raise ImproperlyConfigured(
                f"the dashboard would listen on {host} with no authentication: set "
                "dashboard_token or dashboard_basic_auth (or --token / --basic-auth), "
                "or bind to 127.0.0.1"
            )

    def allows(self, request: Request) -> bool:
        if not self.required:
            return True
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if self.token:
            given = value if scheme.lower() == "bearer" else request.cookies.get(TOKEN_COOKIE)
            if given and hmac.compare_digest(given.encode(), self.token.encode()):
                return True
        if self.basic_user and scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(value).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return False
            return hmac.compare_digest(
                user.encode(), self.basic_user.encode()
            ) & hmac.compare_digest(password.encode(), (self.basic_password or "").encode())
        return False

    def token_login(self, given: str) -> bool:
        return bool(self.token) and hmac.compare_digest(given.encode(), (self.token or "").encode())

    def refusal(self) -> Response:
        headers = {}
        if self.basic_user:
            headers["WWW-Authenticate"] = 'Basic realm="conveyor dashboard"'
        return PlainTextResponse(
            "authentication required: log in at /login with the dashboard token"
            if self.token
            else "authentication required",
            status_code=401,
            headers=headers,
        )


def csrf_token(request: Request) -> str:
    """The visitor's CSRF token (from the cookie, or a new one the response will set)."""
    token = request.cookies.get(CSRF_COOKIE)
    if not token:
        token = request.state.__dict__.setdefault("new_csrf", secrets.token_urlsafe(32))
    return str(token)


def csrf_valid(request: Request, form: dict[str, Any]) -> bool:
    cookie = request.cookies.get(CSRF_COOKIE)
    given = form.get("csrf")
    if not cookie or not isinstance(given, str):
        return False
    origin = request.headers.get("origin")
    if origin and origin != f"{request.url.scheme}://{request.url.netloc}":
        return False
    return hmac.compare_digest(cookie.encode(), given.encode())
