"""The dashboard's ASGI app: server-rendered pages, POST actions, static files.

Handlers that read the broker are plain functions, which Starlette runs in its thread pool,
so a slow store never stalls the event loop.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..beat.scheduler import run_now
from ..beat.store import resolve_store
from .activity import Activity
from .charts import bars, lines
from .masking import Masker
from .queries import Queries, WorkerView
from .security import (
    CSRF_COOKIE,
    TOKEN_COOKIE,
    Access,
    csrf_token,
    csrf_valid,
    security_headers,
)

if TYPE_CHECKING:
    from ..app import Conveyor

__all__ = ["create_app"]

HERE = Path(__file__).parent
SINCE = {"15m": 900.0, "1h": 3600.0, "6h": 21600.0, "1d": 86400.0, "7d": 604800.0}
TASK_STATES = ("SUCCESS", "FAILURE", "RETRY", "STARTED", "RECEIVED", "REVOKED", "REJECTED")
NAV = [
    ("overview", "/", "Overview"),
    ("workers", "/workers", "Workers"),
    ("tasks", "/tasks", "Tasks"),
    ("queues", "/queues", "Queues"),
    ("dead", "/dead-letters", "Dead letters"),
    ("periodic", "/periodic", "Periodic"),
]


def _task_mask(app: Conveyor) -> Callable[[str | None], Collection[str]]:
    def fields(name: str | None) -> Collection[str]:
        task = app.tasks.get(name) if name else None
        return tuple(getattr(task, "dashboard_mask", None) or ())

    return fields


class Dashboard:
    """One dashboard over one app: its settings, its reads and its pages."""

    def __init__(
        self,
        app: Conveyor,
        *,
        read_only: bool = False,
        access: Access | None = None,
        mask: Collection[str] = (),
        store: str | None = None,
    ) -> None:
        self.app = app
        self.read_only = read_only
        self.access = access or Access()
        self.masker = Masker(mask, _task_mask(app))
        self.queries = Queries(app, self.masker, lambda: resolve_store(app, store))
        self.templates = Environment(
            loader=FileSystemLoader(HERE / "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates.filters["when"] = _when
        self.templates.filters["moment"] = _moment
        self.activity = Activity(app)

    # -- rendering ----------------------------------------------------------------------

    def render(self, request: Request, template: str, section: str, **context: Any) -> Response:
        html = self.templates.get_template(template).render(
            nav=NAV,
            section=section,
            read_only=self.read_only,
            csrf=csrf_token(request),
            notice=request.query_params.get("done"),
            problem=request.query_params.get("error"),
            app_name=self.app.main or "conveyor",
            root=_root(request),
            **context,
        )
        return HTMLResponse(html)

    def guard(
        self, handler: Callable[[Request], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        """Authentication, the CSRF cookie and the security headers, for every route."""

        async def guarded(request: Request) -> Response:
            if _route_path(request) != "/login" and not self.access.allows(request):
                return security_headers(self.access.refusal())
            response = await handler(request)
            new = request.state.__dict__.get("new_csrf")
            if new:
                response.set_cookie(CSRF_COOKIE, new, httponly=True, samesite="strict")
            return security_headers(response)

        return guarded

    def page(
        self, reader: Callable[[Request], Response]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            return await run_in_threadpool(reader, request)

        return self.guard(run)

    def action(
        self, doer: Callable[[Request, dict[str, Any]], str]
    ) -> Callable[[Request], Awaitable[Response]]:
        """A POST that changes something: checked, done in a thread, then a redirect back
        to the page it came from with what happened (the page shows it)."""

        async def run(request: Request) -> Response:
            if self.read_only:
                return PlainTextResponse("the dashboard is read-only", status_code=403)
            raw = parse_qs((await request.body()).decode(), keep_blank_values=True)
            form: dict[str, Any] = {k: v[-1] for k, v in raw.items()}
            form["all_values"] = raw
            if not csrf_valid(request, form):
                return PlainTextResponse(
                    "CSRF check failed: reload the page and try again", status_code=403
                )
            back = form.get("back") or "/"
            if not isinstance(back, str) or not back.startswith("/") or back.startswith("//"):
                back = "/"
            back = _root(request) + back
            try:
                message = await run_in_threadpool(doer, request, form)
            except (KeyError, LookupError) as exc:
                return _back(back, "error", f"not found: {exc}")
            except Exception as exc:
                return _back(back, "error", f"{type(exc).__name__}: {exc}")
            return _back(back, "done", message)

        return self.guard(run)

    # -- pages --------------------------------------------------------------------------

    def overview(self, request: Request) -> Response:
        self.activity.wait_caught_up(3.0)
        queues = self.queries.queues()
        letters = self.queries.dead_letters(1000)
        series = self.activity.series()
        names = self.activity.names()
        done = sum(r[1] + r[2] for r in series)
        return self.render(
            request,
            "overview.html",
            "overview",
            queues=queues,
            ready=sum(q.ready for q in queues),
            delayed=sum(q.delayed for q in queues),
            reserved=sum(q.reserved for q in queues),
            dead=len(letters),
            workers=self.queries.workers(),
            periodic=len(self.queries.periodic()),
            events_on=bool(self.app.conf.worker_send_task_events),
            per_second=done / 3600.0,
            failed=sum(r[2] for r in series),
            outcomes=bars(
                [(r[0], r[1:]) for r in series],
                ("succeeded", "failed", "retried"),
                "Tasks per minute over the last hour: succeeded, failed, retried",
            ),
            depths=lines(self.activity.depth_series(), "Ready messages per queue"),
            slowest=sorted(
                (n for n in names if n.succeeded), key=lambda n: n.runtime_mean, reverse=True
            )[:5],
            failing=sorted((n for n in names if n.failed), key=lambda n: n.failed, reverse=True)[
                :5
            ],
        )

    def workers(self, request: Request) -> Response:
        return self.render(request, "workers.html", "workers", workers=self.queries.workers())

    def tasks(self, request: Request) -> Response:
        query = request.query_params
        wanted = query.get("id", "").strip()
        if wanted:
            return RedirectResponse(
                f"{_root(request)}/tasks/{quote(wanted, safe='')}", status_code=303
            )
        state = query.get("state") or None
        name = query.get("name") or None
        worker = query.get("worker") or None
        queue = query.get("queue") or None
        since_choice = query.get("since") or ""
        since = self.app.clock() - SINCE[since_choice] if since_choice in SINCE else None
        try:
            page = max(int(query.get("page") or 0), 0)
        except ValueError:
            page = 0
        rows, more = self.queries.task_rows(state, name, worker, since, page, queue)
        workers = self.queries.workers()
        filters = {
            "state": state,
            "name": name,
            "worker": worker,
            "queue": queue,
            "since": since_choice,
        }
        kept = "&".join(f"{k}={quote(v)}" for k, v in filters.items() if v)
        return self.render(
            request,
            "tasks.html",
            "tasks",
            rows=rows,
            page=page,
            more=more,
            kept=kept,
            filters=filters,
            states=TASK_STATES,
            names=sorted(n for n in self.app.tasks if not n.startswith("conveyor.")),
            workers=[w.name for w in workers],
            queues=self._queue_names(workers),
            since_choices=list(SINCE),
        )

    def _queue_names(self, workers: list[WorkerView]) -> list[str]:
        """Queues to filter by: those holding messages, those workers consume, the default."""
        names = {q.name for q in self.queries.queues()}
        names.update(q for w in workers for q in w.queues)
        names.update(self.app.router.worker_queues(None))
        return sorted(names)

    def task(self, request: Request) -> Response:
        task_id = request.path_params["task_id"]
        view = self.queries.task(task_id)
        if view is None:
            return self.render(request, "missing.html", "tasks", what=f"task {task_id}")
        return self.render(
            request,
            "task.html",
            "tasks",
            task=view,
            timeline=self.queries.timeline(task_id, view.task),
            flow=self.queries.flow(task_id),
        )

    def queues(self, request: Request) -> Response:
        return self.render(request, "queues.html", "queues", queues=self.queries.queues())

    def purge_confirm(self, request: Request) -> Response:
        name = request.path_params["name"]
        size = next((q for q in self.queries.queues() if q.name == name), None)
        return self.render(request, "purge.html", "queues", queue=name, size=size)

    def dead_letters(self, request: Request) -> Response:
        letters = self.queries.dead_letters()
        return self.render(request, "dead_letters.html", "dead", letters=letters)

    def dead_letter(self, request: Request) -> Response:
        letter_id = request.path_params["letter_id"]
        letter = self.queries.dead_letter(letter_id)
        if letter is None:
            return self.render(request, "missing.html", "dead", what=f"dead letter {letter_id}")
        return self.render(request, "dead_letter.html", "dead", letter=letter)

    def periodic(self, request: Request) -> Response:
        return self.render(request, "periodic.html", "periodic", entries=self.queries.periodic())

    def login(self, request: Request) -> Response:
        return self.render(request, "login.html", "login")

    # -- actions ------------------------------------------------------------------------

    def worker_action(self, request: Request, form: dict[str, Any]) -> str:
        name, verb = request.path_params["name"], request.path_params["verb"]
        control, where = self.app.control, [name]
        if verb == "shutdown":
            control.shutdown(destination=where)
            return f"asked {name} to shut down (warm: running tasks finish)"
        if verb in ("grow", "shrink"):
            n = int(form.get("n") or 1)
            (control.pool_grow if verb == "grow" else control.pool_shrink)(n, destination=where)
            return f"asked {name} to {verb} its pool by {n}"
        if verb in ("add-queue", "cancel-queue"):
            queue = str(form.get("queue") or "").strip()
            if not queue:
                raise ValueError("name the queue")
            if verb == "add-queue":
                control.add_consumer(queue, destination=where)
                return f"asked {name} to consume {queue}"
            control.cancel_consumer(queue, destination=where)
            return f"asked {name} to stop consuming {queue}"
        raise ValueError(f"unknown action {verb!r}")

    def revoke(self, request: Request, form: dict[str, Any]) -> str:
        task_id = request.path_params["task_id"]
        terminate = form.get("terminate") == "1"
        self.app.control.revoke(task_id, terminate=terminate)
        return f"{'terminated' if terminate else 'revoked'} {task_id}"

    def retry_task(self, request: Request, form: dict[str, Any]) -> str:
        new_id = self.queries.retry(request.path_params["task_id"])
        return f"sent again as task {new_id}"

    def purge(self, request: Request, form: dict[str, Any]) -> str:
        name = request.path_params["name"]
        if form.get("confirm") != name:
            raise ValueError(f"type the queue's name ({name}) to confirm")
        return f"purged {self.app.broker.purge(name)} message(s) from {name}"

    def retry_letters(self, request: Request, form: dict[str, Any]) -> str:
        ids = form["all_values"].get("id", [])
        if form.get("all") == "1":
            return f"re-sent {self.app.control.retry_dead_letters(None)} message(s)"
        if not ids:
            raise ValueError("choose the dead letters to re-send")
        return f"re-sent {self.app.control.retry_dead_letters(ids)} message(s)"

    def purge_letters_confirm(self, request: Request) -> Response:
        count = len(self.queries.dead_letters(1_000_000))
        return self.render(request, "purge_letters.html", "dead", count=count)

    def purge_letters(self, request: Request, form: dict[str, Any]) -> str:
        ids = form["all_values"].get("id", [])
        if form.get("all") == "1":
            if form.get("confirm") != "delete all":
                raise ValueError("type 'delete all' to confirm")
            return f"deleted {self.app.broker.purge_dead_letters(None)} dead letter(s)"
        if not ids:
            raise ValueError("choose the dead letters to delete")
        return f"deleted {self.app.broker.purge_dead_letters(ids)} dead letter(s)"

    def periodic_action(self, request: Request, form: dict[str, Any]) -> str:
        name, verb = request.path_params["name"], request.path_params["verb"]
        store = self.queries.store()
        if verb == "enable":
            from datetime import UTC, datetime

            store.enable(name, datetime.fromtimestamp(self.app.clock(), UTC))
            return f"enabled {name}"
        if verb == "disable":
            store.disable(name)
            return f"disabled {name}"
        if verb == "run":
            result = run_now(self.app, name, store)
            return f"sent {name} now as task {result.id}"
        raise ValueError(f"unknown action {verb!r}")

    async def do_login(self, request: Request) -> Response:
        raw = parse_qs((await request.body()).decode())
        given = (raw.get("token") or [""])[-1]
        if not self.access.token_login(given):
            return _back(_root(request) + "/login", "error", "wrong token")
        response = RedirectResponse(_root(request) + "/", status_code=303)
        response.set_cookie(TOKEN_COOKIE, given, httponly=True, samesite="strict")
        return response

    # -- the ASGI app -------------------------------------------------------------------

    def asgi(self) -> Starlette:
        page, action = self.page, self.action
        routes = [
            Route("/", page(self.overview)),
            Route("/workers", page(self.workers)),
            Route("/workers/{name}/{verb}", action(self.worker_action), methods=["POST"]),
            Route("/tasks", page(self.tasks)),
            Route("/tasks/{task_id}", page(self.task)),
            Route("/tasks/{task_id}/revoke", action(self.revoke), methods=["POST"]),
            Route("/tasks/{task_id}/retry", action(self.retry_task), methods=["POST"]),
            Route("/queues", page(self.queues)),
            Route("/queues/{name}/purge", page(self.purge_confirm)),
            Route("/queues/{name}/purge", action(self.purge), methods=["POST"]),
            Route("/dead-letters", page(self.dead_letters)),
            Route("/dead-letters/retry", action(self.retry_letters), methods=["POST"]),
            Route("/dead-letters/purge", action(self.purge_letters), methods=["POST"]),
            Route("/dead-letters/purge-all", page(self.purge_letters_confirm)),
            Route("/dead-letters/{letter_id}", page(self.dead_letter)),
            Route("/periodic", page(self.periodic)),
            Route("/periodic/{name}/{verb}", action(self.periodic_action), methods=["POST"]),
            Route("/login", self.guard(self._login_page)),
            Route("/login", self.guard(self.do_login), methods=["POST"]),
            Route("/health", self.guard(self._health)),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ]
        return Starlette(routes=routes, lifespan=self._lifespan)

    @contextlib.asynccontextmanager
    async def _lifespan(self, _: Starlette) -> AsyncIterator[None]:
        self.activity.start()  # counting starts with the server, not its first visitor
        try:
            yield
        finally:
            self.activity.close()

    async def _login_page(self, request: Request) -> Response:
        return await run_in_threadpool(self.login, request)

    async def _health(self, request: Request) -> Response:
        return PlainTextResponse("ok")


def _root(request: Request) -> str:
    """Where the dashboard is mounted (``root_path``), so links work under a prefix."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def _route_path(request: Request) -> str:
    path, root = str(request.scope["path"]), _root(request)
    return path[len(root) :] if root and path.startswith(root) else path


def _back(path: str, key: str, message: str) -> Response:
    sep = "&" if "?" in path else "?"
    return RedirectResponse(f"{path}{sep}{key}={quote(message)}", status_code=303)


def _moment(value: Any) -> str:
    """A time to the millisecond, for timelines whose events share a second."""
    return "-" if value is None else f"{value:%Y-%m-%d %H:%M:%S}.{value.microsecond // 1000:03d}"


def _when(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:%Y-%m-%d %H:%M:%S} UTC" if value.tzinfo else f"{value:%Y-%m-%d %H:%M:%S}"


def create_app(
    app: Conveyor,
    *,
    read_only: bool = False,
    token: str | None = None,
    basic_auth: str | None = None,
    mask: Collection[str] = (),
    store: str | None = None,
) -> Starlette:
    """The dashboard of ``app`` as an ASGI app, to serve with any ASGI server or mount."""
    access = Access.from_settings(token, basic_auth)
    return Dashboard(app, read_only=read_only, access=access, mask=mask, store=store).asgi()
