"""Task, group and chord ids: random UUIDs (version 4), made cheaply.

``str(uuid.uuid4())`` costs a system call and a ``UUID`` object per id, a quarter of a
``delay()``. Here the randomness is read from ``os.urandom`` 4 KiB at a time, per thread,
turned to hex at once and sliced; the ids are the same kind (122 random bits, the version
and variant bits of RFC 9562), and a forked child never reuses its parent's unread bytes.
"""

from __future__ import annotations

import os
import threading

__all__ = ["new_id"]

_BATCH = 256
_local = threading.local()


_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}
"""The variant bits (10xx) set on the 17th hex digit."""


def new_id() -> str:
    """A random UUID string, such as ``'1b4e28ba-2fa1-4d2e-883f-0016d3cca427'``."""
    local = _local.__dict__
    pool: str = local.get("pool", "")
    at: int = local.get("at", 0)
    if at >= len(pool):
        pool, at = os.urandom(16 * _BATCH).hex(), 0
        local["pool"] = pool
    local["at"] = at + 32
    h = pool[at : at + 32]
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


def _forget_after_fork() -> None:
    _local.__dict__.clear()


os.register_at_fork(after_in_child=_forget_after_fork)
