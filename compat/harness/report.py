"""Turn the per-test records of compat runs into the table, the failure list and README text."""

from __future__ import annotations

import datetime
import json
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Run", "causes", "load_records", "table", "write_json", "write_readme"]

BEGIN, END = "<!-- compat-table -->", "<!-- /compat-table -->"


@dataclass
class Run:
    broker: str
    records: list[dict[str, Any]]
    seconds: float
    notes: list[dict[str, Any]] = field(default_factory=list)


def load_records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _file(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def rows(runs: list[Run]) -> list[tuple[str, str, int, int, int, int, int]]:
    """(file, broker, collected, not applicable, passed, failed, not reached) per file."""
    out = []
    for run in runs:
        per_file: dict[str, Counter[str]] = {}
        for record in run.records:
            per_file.setdefault(_file(record["nodeid"]), Counter())[record["outcome"]] += 1
        for name, c in sorted(per_file.items()):
            na = c["na"] + c["skipped"]
            out.append((name, run.broker, c.total(), na, c["passed"], c["failed"], c["late"]))
    return out


def table(runs: list[Run]) -> str:
    lines = [
        "| file | broker | collected | not applicable | passed | failed | not reached |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, broker, *counts in rows(runs):
        lines.append(f"| {name} | {broker} | " + " | ".join(str(n) for n in counts) + " |")
    for run in runs:
        counts = Counter(r["outcome"] for r in run.records)
        applicable = counts["passed"] + counts["failed"] + counts["late"]
        lines.append(
            f"| **all** | {run.broker} | {len(run.records)} | {counts['na'] + counts['skipped']} "
            f"| {counts['passed']} of {applicable} | {counts['failed']} | {counts['late']} |"
        )
    return "\n".join(lines)


_NOISE = [
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"), "<id>"),
    (re.compile(r"0x[0-9a-f]+"), "<addr>"),
    (re.compile(r"\b\d+(\.\d+)?\b"), "<n>"),
]


def cause(error: str) -> str:
    """The first line of an error with ids and numbers blanked, so alike failures group."""
    for pattern, blank in _NOISE:
        error = pattern.sub(blank, error)
    return error[:160]


def causes(runs: list[Run], top: int = 20) -> list[tuple[str, int, list[str]]]:
    """The most common failure causes: (cause, count, brokers)."""
    counts: Counter[str] = Counter()
    where: dict[str, set[str]] = {}
    for run in runs:
        for record in run.records:
            if record["outcome"] == "failed":
                key = cause(record["error"])
                counts[key] += 1
                where.setdefault(key, set()).add(run.broker)
    return [(key, n, sorted(where[key])) for key, n in counts.most_common(top)]


def notes(runs: list[Run]) -> list[str]:
    seen: dict[tuple[str, str], str] = {}
    for run in runs:
        for note in run.notes:
            seen.setdefault((note["kind"], note["name"]), note["detail"])
    return [f"{kind}: `{name}` ({detail})" for (kind, name), detail in sorted(seen.items())]


def not_applicable(runs: list[Run]) -> list[tuple[str, int]]:
    reasons: Counter[str] = Counter()
    for run in runs:
        for record in run.records:
            if record["outcome"] in ("na", "skipped"):
                reasons[f"{run.broker}: {record['reason']}"] += 1
    return sorted(reasons.items())


def write_json(runs: list[Run], target: str) -> None:
    failures = [
        {"broker": run.broker, "test": r["nodeid"], "error": r["error"], "seconds": r["seconds"]}
        for run in runs
        for r in run.records
        if r["outcome"] == "failed"
    ]
    late = [
        {"broker": run.broker, "test": r["nodeid"]}
        for run in runs
        for r in run.records
        if r["outcome"] == "late"
    ]
    slowest = sorted(
        ({"broker": run.broker, "test": r["nodeid"], "seconds": r["seconds"]}
         for run in runs for r in run.records),
        key=lambda r: -r["seconds"],
    )[:20]  # fmt: skip
    text = json.dumps({"failures": failures, "not_reached": late, "slowest": slowest}, indent=1)
    if target == "-":
        sys.stdout.write(text + "\n")
    else:
        Path(target).write_text(text + "\n")


def write_readme(path: Path, runs: list[Run], version: str, command: str, seconds: float) -> None:
    today = datetime.date.today().isoformat()
    per_run = ", ".join(f"{run.broker} {run.seconds / 60:.1f} min" for run in runs)
    parts = [
        BEGIN,
        f"Celery {version}, run on {today} with `{command}`: {seconds / 60:.1f} min in all "
        f"({per_run}).",
        "",
        table(runs),
        "",
    ]
    found_causes = causes(runs)
    if found_causes:
        parts += [
            "Most common failure causes (first line of the error, ids and numbers blanked):",
            "",
            "| failures | brokers | cause |",
            "|---:|---|---|",
        ]
    else:
        parts.append("No failures.")
    for text, n, brokers in found_causes:
        shown = text.replace("|", "/").replace("`", "'")
        parts.append(f"| {n} | {', '.join(brokers)} | `{shown}` |")
    parts += ["", "Not applicable, by reason:", "", "| tests | broker: reason |", "|---:|---|"]
    parts += [f"| {n} | {reason.replace('|', '/')} |" for reason, n in not_applicable(runs)]
    found = notes(runs)
    if found:
        parts += ["", "Worked around by the harness so the rest could run:", ""]
        parts += [f"- {line}" for line in found]
    parts.append(END)
    head, _, rest = path.read_text().partition(BEGIN)
    _, _, tail = rest.partition(END)
    path.write_text(head + "\n".join(parts) + tail)
