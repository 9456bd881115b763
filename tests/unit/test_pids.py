"""``current_pid``: the process id the stores compare on every command to notice a fork."""

from __future__ import annotations

import os

from conveyor.pids import current_pid


def test_current_pid_follows_a_fork() -> None:
    assert current_pid() == os.getpid()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(write, f"{current_pid()} {os.getpid()}".encode())
        os._exit(0)
    os.close(write)
    seen, actual = os.read(read, 64).decode().split()
    os.close(read)
    os.waitpid(pid, 0)
    assert seen == actual == str(pid)
    assert current_pid() == os.getpid()  # the parent's own, unchanged
