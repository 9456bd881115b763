"""Database connections in workers: a forked child never uses (or closes) its parent's
connection, each task starts on a fresh one, and a transaction is never touched."""

from __future__ import annotations

import os

from django.core.cache import caches
from django.db import connection, transaction

from conveyor.contrib.django import get_app
from conveyor.contrib.django.db import (
    close_inherited_connections,
    close_old_connections,
    forget_inherited_caches,
)

from .conftest import Database, Worker


def _session_id(database: Database) -> object:
    with connection.cursor() as cursor:
        if database.kind == "postgresql":
            cursor.execute("SELECT pg_backend_pid()")
            return cursor.fetchone()[0]
        cursor.execute("SELECT 1")
    return id(connection.connection)


def test_a_forked_child_leaves_the_parents_connection_alone(database: Database) -> None:
    before = _session_id(database)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            close_inherited_connections()
            assert connection.connection is None
            with connection.cursor() as cursor:  # a connection of its own
                cursor.execute("SELECT 1")
            connection.close()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert _session_id(database) == before  # the parent's session is still alive


def test_a_forked_child_builds_its_own_cache_clients() -> None:
    inherited = caches["default"]
    inherited.set("seen-by", "parent")
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            forget_inherited_caches()
            mine = caches["default"]
            code = 0 if mine is not inherited and caches["default"] is mine else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert caches["default"] is inherited and inherited.get("seen-by") == "parent"


def test_stale_connections_are_closed_but_never_inside_a_transaction() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    with transaction.atomic():
        close_old_connections()  # CONN_MAX_AGE = 0: obsolete, but in a transaction
        assert connection.connection is not None
    close_old_connections()
    assert connection.connection is None


def test_every_task_in_a_prefork_worker_starts_on_a_fresh_connection(worker: Worker) -> None:
    app = get_app()
    results = [app.send_task("testapp.connection_state") for _ in range(4)]
    states = [r.get(timeout=20) for r in results]

    assert all(state["fresh"] for state in states), states
    assert all(state["pid"] != os.getpid() for state in states)
