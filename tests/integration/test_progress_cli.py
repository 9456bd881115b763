"""PROGRESS states read from another process, and the ``conveyor`` command line."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from conveyor import states

from .support import APP_SPEC, DEFAULT_TIMEOUT, base_env, wait_until


def test_progress_meta_is_readable_while_the_task_runs(tasks, workers, workdir):
    workers.start()
    gate = workdir / "gate"

    result = tasks.crunch.delay(3, str(gate))

    wait_until(lambda: result.state == "PROGRESS", what="state PROGRESS")
    time.sleep(0.1)  # past the worker's late STARTED write, which must not hide PROGRESS
    assert result.state == "PROGRESS"
    assert result.info == {"current": 1, "total": 3}
    assert not result.ready()
    gate.touch()
    assert result.get(timeout=DEFAULT_TIMEOUT) == {"done": 3}
    assert result.state == states.SUCCESS


def test_cli_call_wait_prints_the_result(tasks, workers, cli):
    workers.start()

    called = cli(
        "call",
        "-A",
        APP_SPEC,
        "sample_tasks.add",
        "--args",
        "[1, 2]",
        "--wait",
        "--timeout",
        str(DEFAULT_TIMEOUT),
    )

    assert called.returncode == 0, called.stderr
    task_id, value = called.stdout.splitlines()
    assert value == "3"
    assert tasks.app.AsyncResult(task_id).get(timeout=DEFAULT_TIMEOUT) == 3


def test_cli_call_with_kwargs_without_wait_prints_the_id(tasks, workers, cli):
    called = cli("call", "-A", APP_SPEC, "sample_tasks.add", "--kwargs", '{"x": 5, "y": 6}')

    assert called.returncode == 0, called.stderr
    task_id = called.stdout.strip()
    assert tasks.app.AsyncResult(task_id).state == states.PENDING
    workers.start()
    assert tasks.app.AsyncResult(task_id).get(timeout=DEFAULT_TIMEOUT) == 11


def test_cli_call_wait_reports_a_failure_and_exits_1(tasks, workers, cli):
    workers.start()

    called = cli(
        "call",
        "-A",
        APP_SPEC,
        "sample_tasks.charge",
        "--args",
        '["4000", 7]',
        "--wait",
        "--timeout",
        str(DEFAULT_TIMEOUT),
    )

    assert called.returncode == 1
    assert "FAILURE" in called.stderr
    assert "card 4000 declined for 7" in called.stderr
    assert "PaymentDeclined" in called.stderr


def test_cli_call_wait_shows_a_progress_bar_on_stderr(
    tasks, workers, workdir, tmp_path, broker_url
):
    workers.start()
    gate = workdir / "gate"
    err_path = tmp_path / "call.stderr"
    with open(err_path, "w") as err:
        call = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "conveyor",
                "call",
                "-A",
                APP_SPEC,
                "sample_tasks.crunch",
                "--args",
                json.dumps([3, str(gate)]),
                "--wait",
                "--timeout",
                str(DEFAULT_TIMEOUT),
            ],
            cwd=tmp_path,
            env=base_env(broker_url),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
        try:
            # The task holds at 1/3 until the gate opens: the bar must be drawn by then.
            wait_until(lambda: "1/3" in err_path.read_text(), what="a progress bar on stderr")
            gate.touch()
            out, _ = call.communicate(timeout=DEFAULT_TIMEOUT)
        finally:
            gate.touch()
            if call.poll() is None:
                call.kill()
                call.wait()

    assert call.returncode == 0, err_path.read_text()
    assert out.splitlines()[-1] == json.dumps({"done": 3})
    bar = err_path.read_text()
    assert "[##########" in bar
    assert "] 1/3" in bar


def test_cli_call_malformed_json_args_is_a_usage_error(tasks, cli):
    called = cli("call", "-A", APP_SPEC, "sample_tasks.add", "--args", "[1, 2")

    assert called.returncode == 2
    assert "--args must be JSON" in called.stderr


def test_cli_queues_and_purge(tasks, cli):
    for i in range(3):
        tasks.add.delay(i, i)
    tasks.add.apply_async((9, 9), queue="reports")

    listed = cli("queues", "-A", APP_SPEC)
    assert listed.returncode == 0, listed.stderr
    rows = {line.split()[0]: line.split()[1:] for line in listed.stdout.splitlines()[1:]}
    assert rows == {"default": ["3", "0", "0"], "reports": ["1", "0", "0"]}

    purged = cli("purge", "-A", APP_SPEC, "-f", "-Q", "default")
    assert purged.returncode == 0, purged.stderr
    assert "purged 3 message(s) from queue 'default'" in purged.stdout
    assert {name: s.total for name, s in tasks.app.broker.stats().items()} == {"reports": 1}

    purged = cli("purge", "-A", APP_SPEC, "-f")
    assert "purged 1 message(s) from every queue" in purged.stdout
    assert tasks.app.broker.stats() == {}


def test_worker_with_an_unimportable_app_exits_with_a_usage_error(tasks, cli):
    started = cli("worker", "-A", "no_such_module:app", timeout=DEFAULT_TIMEOUT)

    assert started.returncode == 2
    assert "cannot import 'no_such_module'" in started.stderr
