"""ReplyWait polls a real socket for a quick reply before the read sleeps (see its
docstring for why), and stops polling where it does not pay.

pytest's process may hold other threads (left by earlier tests), so most tests tell the
ReplyWait that the thread is alone; the test of threads uses the real check."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator

import pytest

from conveyor.redis_connection import ReplyWait


def alone() -> bool:
    return True


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    yield a, b
    a.close()
    b.close()


def test_a_reply_that_is_there_counts_as_seen(pair: tuple[socket.socket, socket.socket]) -> None:
    mine, server = pair
    wait = ReplyWait(0.05, alone)
    wait.misses = 0.4
    server.sendall(b"+OK\r\n")
    wait.poll(mine)
    assert wait.poller is not None
    assert wait.misses == pytest.approx(0.35)
    assert mine.recv(16) == b"+OK\r\n"  # polling reads nothing


def test_polls_that_run_out_turn_polling_down_to_one_command_in_16(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    mine, server = pair
    wait = ReplyWait(0.0005, alone)
    for _ in range(6):  # no reply comes: every poll runs out
        wait.poll(mine)
    assert wait.misses > 0.5
    stuck = wait.misses
    for _ in range(9):  # commands 7-15 do not poll, so they cannot count a miss
        wait.poll(mine)
    assert wait.misses == stuck
    server.sendall(b"+OK\r\n")
    wait.poll(mine)  # the 16th polls, sees the reply: replies may be quick again
    assert wait.count == 16
    assert wait.misses == pytest.approx(stuck * 7 / 8)


def test_no_polling_while_other_threads_run(pair: tuple[socket.socket, socket.socket]) -> None:
    mine, _ = pair
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        wait = ReplyWait(0.05)
        wait.poll(mine)
        assert wait.poller is None and wait.misses == 0.0
    finally:
        stop.set()
        other.join()


def test_a_limit_of_zero_never_polls(pair: tuple[socket.socket, socket.socket]) -> None:
    mine, _ = pair
    wait = ReplyWait(0.0, alone)
    wait.poll(mine)
    assert wait.poller is None and wait.misses == 0.0


def test_tls_sockets_are_not_polled() -> None:
    context = ssl.create_default_context()
    with context.wrap_socket(socket.socket(), server_hostname="redis.example") as tls:
        wait = ReplyWait(0.05, alone)
        wait.poll(tls)
        assert wait.poller is None and wait.misses == 0.0


def test_a_new_socket_gets_a_new_poller(pair: tuple[socket.socket, socket.socket]) -> None:
    mine, server = pair
    wait = ReplyWait(0.05, alone)
    server.sendall(b"+OK\r\n")
    wait.poll(mine)
    first = wait.poller
    other, peer = socket.socketpair()
    with other, peer:
        peer.sendall(b"+OK\r\n")
        wait.poll(other)
        assert wait.poller is not first and wait.sock is other
        assert wait.misses == 0.0
