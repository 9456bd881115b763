"""``conveyor dashboard``: serve the web dashboard (needs the ``dashboard`` extra)."""

from __future__ import annotations

import click

from ..exceptions import ConveyorError
from .common import app_option, ctx_app

__all__ = ["dashboard"]


@click.command()
@app_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=5555, show_default=True, type=int, help="Port to listen on.")
@click.option("--token", help="Require this token (beyond loopback: this or --basic-auth).")
@click.option("--basic-auth", help="Require HTTP basic auth, as user:password.")
@click.option("--read-only", is_flag=True, help="Hide every action.")
@click.option("--mask", help="Comma-separated argument and result fields never shown.")
@click.option("--store", "store_spec", help="Schedule store: URL or module:attr [the broker's].")
@click.pass_context
def dashboard(
    ctx: click.Context,
    app_spec: str | None,
    host: str,
    port: int,
    token: str | None,
    basic_auth: str | None,
    read_only: bool,
    mask: str | None,
    store_spec: str | None,
) -> None:
    """Serve the dashboard: workers, tasks, queues, dead letters, periodic tasks."""
    try:
        import uvicorn

        from ..dashboard.security import Access
        from ..dashboard.web import Dashboard
    except ImportError as exc:
        raise click.ClickException(
            f"the dashboard needs its extra ({exc.name} is missing): "
            "pip install 'conveyor-tasks[dashboard]'"
        ) from None
    app = ctx_app(ctx, app_spec)
    conf = app.conf
    try:
        access = Access.from_settings(
            token or conf.dashboard_token, basic_auth or conf.dashboard_basic_auth
        )
        access.check_bind(host)
        fields = [f.strip() for f in (mask or "").split(",") if f.strip()]
        board = Dashboard(
            app,
            read_only=read_only or conf.dashboard_read_only,
            access=access,
            mask=[*conf.dashboard_mask, *fields],
            store=store_spec,
        )
    except ConveyorError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"conveyor dashboard on http://{host}:{port}/", err=True)
    uvicorn.run(board.asgi(), host=host, port=port, log_level="warning")
