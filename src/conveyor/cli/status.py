"""``conveyor status``: one line per registered worker, online or lost."""

from __future__ import annotations

import click

from ..registry import read_workers
from .common import app_option, ctx_app
from .output import ago, destination_option, echo_json, echo_table, json_option

__all__ = ["status"]


@click.command()
@app_option
@destination_option
@json_option
@click.pass_context
def status(
    ctx: click.Context, app_spec: str | None, destination: list[str] | None, as_json: bool
) -> None:
    """Show every worker in the registry: pool, queues, what it runs, when it was last seen.

    A worker that missed its heartbeats shows as lost until its record expires.
    """
    app = ctx_app(ctx, app_spec)
    now = app.clock()
    entries = read_workers(app.coordinator, now, destination)
    if as_json:
        echo_json(
            {
                entry.name: {
                    "status": entry.status,
                    **{k: v for k, v in entry.record.items() if k not in ("conf", "registered")},
                }
                for entry in entries
            }
        )
    elif entries:
        rows = []
        for entry in entries:
            record = entry.record
            rows.append(
                [
                    entry.name,
                    entry.status,
                    f"{record.get('pool')} x{record.get('concurrency')}",
                    len(record.get("active", [])),
                    len(record.get("reserved", [])),
                    record.get("processed", 0),
                    record.get("failed", 0),
                    ago(now - float(record.get("started") or now)),
                    ago(now - float(record.get("heartbeat") or now)) + " ago",
                    ",".join(record.get("queues", [])),
                ]
            )
        headers = ["worker", "status", "pool", "active", "reserved", "processed", "failed"]
        echo_table([*headers, "up", "seen", "queues"], rows)
    if not entries:
        click.echo("no workers registered", err=True)
        ctx.exit(1)
    online = sum(not entry.lost for entry in entries)
    if not as_json:
        click.echo(f"{online} online, {len(entries) - online} lost", err=True)
