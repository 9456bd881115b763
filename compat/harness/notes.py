"""What the harness had to work around, written where the runner collects it.

Each note is one line of JSON in the file named by ``COMPAT_NOTES`` (test and worker
processes append to it): a Celery setting that Conveyor refused, or a Celery app method
it lacks. The runner prints them under the table, since each is a difference to close.
"""

from __future__ import annotations

import json
import os

__all__ = ["note"]

_seen: set[tuple[str, str]] = set()


def note(kind: str, name: str, detail: str) -> None:
    if (kind, name) in _seen:
        return
    _seen.add((kind, name))
    path = os.environ.get("COMPAT_NOTES")
    if not path:
        return
    with open(path, "a", encoding="utf-8") as out:
        out.write(json.dumps({"kind": kind, "name": name, "detail": detail}) + "\n")
