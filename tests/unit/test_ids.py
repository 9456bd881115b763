"""Task ids: valid random UUIDs, never repeated, and never shared with a forked child."""

from __future__ import annotations

import os
import sys
import uuid

import pytest

from conveyor.ids import new_id


def test_ids_are_version_4_uuids_in_canonical_form() -> None:
    for text in (new_id() for _ in range(2000)):
        parsed = uuid.UUID(text)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
        assert str(parsed) == text


def test_ids_do_not_repeat_across_many_refills() -> None:
    ids = [new_id() for _ in range(50_000)]
    assert len(set(ids)) == len(ids)


@pytest.mark.skipif(sys.platform == "win32", reason="needs os.fork")
def test_a_forked_child_draws_fresh_randomness() -> None:
    new_id()  # leave unread bytes in this thread's pool
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(write, new_id().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    os.close(read)
    os.close(write)
    assert child != new_id()
