"""The installed distribution's version, read once per process.

importlib.metadata searches sys.path for it (about 15 ms), so the worker's registry, its
events and the tracing integration share one cached read instead of each making their own
(the events did on every heartbeat)."""

from __future__ import annotations

import functools

__all__ = ["installed_version"]


def installed_version(missing: str = "") -> str:
    """``conveyor-tasks``' installed version, or ``missing`` when it is not installed (run
    from a source tree)."""
    return _read() or missing


@functools.cache
def _read() -> str:
    from importlib import metadata  # here: loading it costs a process's start a few ms

    try:
        return metadata.version("conveyor-tasks")
    except metadata.PackageNotFoundError:
        return ""
