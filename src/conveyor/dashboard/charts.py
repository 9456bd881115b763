"""Charts as inline SVG, drawn on the server: no script, no library, nothing from a CDN.

Colours come from CSS classes (the page's light and dark themes), never from style
attributes, which the Content-Security-Policy forbids.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from markupsafe import Markup, escape

__all__ = ["bars", "lines"]

WIDTH, HEIGHT, PAD = 720, 180, 28


def bars(rows: Sequence[tuple[float, Sequence[int]]], kinds: Sequence[str], title: str) -> Markup:
    """Stacked bars, one per row: ``rows`` of (time, counts by kind)."""
    top = max((sum(counts) for _, counts in rows), default=0) or 1
    step = (WIDTH - PAD) / max(len(rows), 1)
    parts = [_frame(title, top)]
    for i, (_, counts) in enumerate(rows):
        y = float(HEIGHT - PAD)
        for kind, count in zip(kinds, counts, strict=True):
            if not count:
                continue
            h = (HEIGHT - 2 * PAD) * count / top
            y -= h
            parts.append(
                f'<rect class="bar {escape(kind)}" x="{PAD + i * step + 1:.1f}" y="{y:.1f}" '
                f'width="{max(step - 2, 1):.1f}" height="{h:.1f}"><title>{count} {escape(kind)}'
                "</title></rect>"
            )
    parts.append(_axis(len(rows)))
    parts.append("</svg>")
    return Markup("".join(parts))


def lines(series: Mapping[str, Sequence[tuple[float, int]]], title: str) -> Markup:
    """One line per name, over the time its points span."""
    points = [p for values in series.values() for p in values]
    if not points:
        return Markup("")
    t0 = min(t for t, _ in points)
    t1 = max(t for t, _ in points)
    top = max((v for _, v in points), default=0) or 1
    span = (t1 - t0) or 1
    parts = [_frame(title, top)]
    for n, (name, values) in enumerate(sorted(series.items())):
        coords = " ".join(
            f"{PAD + (WIDTH - PAD) * (t - t0) / span:.1f},"
            f"{HEIGHT - PAD - (HEIGHT - 2 * PAD) * v / top:.1f}"
            for t, v in values
        )
        parts.append(
            f'<polyline class="line c{n % 6}" points="{coords}"><title>{escape(name)}</title>'
            "</polyline>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def _frame(title: str, top: int) -> str:
    return (
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>'
        f'<line class="grid" x1="{PAD}" y1="{PAD}" x2="{WIDTH}" y2="{PAD}"></line>'
        f'<line class="grid" x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH}" '
        f'y2="{HEIGHT - PAD}"></line>'
        f'<text class="tick" x="2" y="{PAD + 4}">{top}</text>'
        f'<text class="tick" x="2" y="{HEIGHT - PAD + 4}">0</text>'
    )


def _axis(count: int) -> str:
    return (
        f'<text class="tick" x="{PAD}" y="{HEIGHT - 8}">-{count} min</text>'
        f'<text class="tick end" x="{WIDTH}" y="{HEIGHT - 8}">now</text>'
    )
