"""The dashboard inside a Django project, behind Django's staff login.

::

    # urls.py
    from conveyor.contrib.django.dashboard import dashboard_urls

    urlpatterns = [..., path("tasks/", include(dashboard_urls()))]

Each request is handed to the dashboard's ASGI app with the prefix as its ``root_path``,
so its links stay under ``tasks/``. Django's staff check replaces the dashboard's own
token; the dashboard's CSRF check (a cookie and a form field of its own) replaces
Django's, which its forms do not carry.
"""

from __future__ import annotations

from collections.abc import Collection, MutableMapping
from typing import TYPE_CHECKING, Any

from asgiref.sync import async_to_sync
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, re_path
from django.views.decorators.csrf import csrf_exempt

from .conf import get_app

if TYPE_CHECKING:
    from starlette.applications import Starlette

__all__ = ["dashboard_urls"]


def dashboard_urls(
    *, read_only: bool = False, mask: Collection[str] = (), store: str | None = None
) -> list[URLPattern]:
    """URL patterns that serve the dashboard of the project's app to staff users."""
    holder: dict[str, Starlette] = {}

    def asgi() -> Starlette:
        if "app" not in holder:
            try:
                from ...dashboard import create_app
            except ImportError as exc:
                raise RuntimeError(
                    f"the dashboard needs its extra ({exc.name} is missing): "
                    "pip install 'conveyor-tasks[dashboard]'"
                ) from None
            app = get_app()
            holder["app"] = create_app(
                app,
                read_only=read_only or app.conf.dashboard_read_only,
                mask=[*app.conf.dashboard_mask, *mask],
                store=store,
            )
        return holder["app"]

    @csrf_exempt
    @staff_member_required
    def view(request: HttpRequest, subpath: str = "") -> HttpResponse:
        prefix = request.path[: len(request.path) - len(subpath)].rstrip("/")
        return _forward(asgi(), request, prefix)

    return [re_path(r"^(?P<subpath>.*)$", view, name="conveyor-dashboard")]


def _forward(asgi: Starlette, request: HttpRequest, prefix: str) -> HttpResponse:
    headers = [
        (key[5:].replace("_", "-").lower().encode("latin-1"), str(value).encode("latin-1"))
        for key, value in request.META.items()
        if key.startswith("HTTP_")
    ]
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if request.META.get(key):
            headers.append((key.replace("_", "-").lower().encode(), request.META[key].encode()))
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": request.method,
        "scheme": request.scheme,
        "path": request.path,
        "raw_path": request.path.encode(),
        "root_path": prefix,
        "query_string": request.META.get("QUERY_STRING", "").encode(),
        "headers": headers,
        "server": (request.get_host().partition(":")[0], int(request.get_port())),
        "client": (request.META.get("REMOTE_ADDR", ""), 0),
    }
    body = request.body
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    async_to_sync(asgi)(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    response = HttpResponse(
        b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body"),
        status=start["status"],
    )
    for raw_key, raw_value in start.get("headers", []):
        key, value = raw_key.decode("latin-1"), raw_value.decode("latin-1")
        if key.lower() == "set-cookie":
            response.cookies.load(value)
        elif key.lower() != "content-length":
            response[key] = value
    return response
