"""This process's id, read without a system call.

``os.getpid()`` is a system call each time (glibc stopped caching it), 0.2-0.5 us on the
virtual machines this project runs on, and the stores ask it on every command, to notice
that they run in a forked child, whose connections must be its own. A fork hook keeps
this copy current instead.
"""

from __future__ import annotations

import os

__all__ = ["current_pid"]

_pid = [os.getpid()]


def _forked() -> None:
    _pid[0] = os.getpid()


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork either
    os.register_at_fork(after_in_child=_forked)


def current_pid() -> int:
    """``os.getpid()``, kept current across forks by a hook."""
    return _pid[0]
