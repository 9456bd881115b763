"""The supervisor's side of a child's pipe: it rests between looks while children write
(``NOTICE_PAUSE``), so each look must take every notice waiting, and the pipe must hold
what a busy child writes meanwhile."""

from __future__ import annotations

import fcntl
import os
import sys

import pytest

from conveyor.testing import memory_app
from conveyor.worker.prefork import PIPE_SIZE, Child, PreforkPool, _enlarge
from conveyor.worker.slots import SlotTable


def test_one_look_takes_every_notice_a_busy_child_wrote() -> None:
    """3,000 reservations (~250 KB of lines, several reads' worth) are all held after one
    look, the last line whole."""
    app = memory_app("supervisor-pipe")
    pool = PreforkPool(app, ["default"], 1, "sup@test", None, None)
    read_fd, write_fd = os.pipe()
    _enlarge(read_fd)
    os.set_blocking(read_fd, False)
    slots = SlotTable(1)
    try:
        lines = "".join(f"R\tmsg-{n:06d}\ttoken-{n}\t1\tdefault\n" for n in range(3000))
        data = lines.encode()
        while data:
            data = data[os.write(write_fd, data) :]
        child = Child(os.getpid(), read_fd, 0, slots)
        pool._read_child(child)
        assert len(pool.keeper.held) == 3000
        assert pool.keeper.held["msg-002999"].delivery.token == "token-2999"
        assert child.buffer == b""
    finally:
        os.close(read_fd)
        os.close(write_fd)
        slots.close()
        app.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="F_SETPIPE_SZ is Linux's")
def test_a_childs_pipe_holds_a_megabyte() -> None:
    read_fd, write_fd = os.pipe()
    try:
        assert fcntl.fcntl(read_fd, fcntl.F_GETPIPE_SZ) < PIPE_SIZE
        assert _enlarge(read_fd)
        assert fcntl.fcntl(write_fd, fcntl.F_GETPIPE_SZ) >= PIPE_SIZE
    finally:
        os.close(read_fd)
        os.close(write_fd)
