"""What `status`, `inspect` and `control` print: aligned tables, or JSON with ``--json``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import click

__all__ = ["ago", "destination_option", "echo_json", "echo_table", "json_option", "when"]


json_option = click.option("-j", "--json", "as_json", is_flag=True, help="Print JSON.")


def _split(ctx: click.Context, param: click.Parameter, value: str | None) -> list[str] | None:
    if not value:
        return None
    return [name.strip() for name in value.split(",") if name.strip()]


destination_option = click.option(
    "-d",
    "--destination",
    callback=_split,
    help="Comma-separated worker names (default: every worker).",
)


def echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True, default=str))


def echo_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Columns padded to their widest cell; the last one left ragged."""
    cells = [[str(h).upper() for h in headers]]
    cells += [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        padded = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=False)]
        click.echo("  ".join([*padded, row[-1]]).rstrip())


def when(timestamp: float | None) -> str:
    """A unix time as local ISO seconds ("" for none)."""
    if not timestamp:
        return ""
    return datetime.fromtimestamp(float(timestamp)).isoformat(sep=" ", timespec="seconds")


def ago(seconds: float) -> str:
    """``42s``, ``5m``, ``3h``, ``2d``."""
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"
