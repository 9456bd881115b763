"""Periodic tasks with real processes: two `conveyor beat` side by side, run-time edits
through the CLI, `conveyor beat list`, a killed and restarted beat, `conveyor worker --beat`."""

from __future__ import annotations

import itertools
import signal
import time
from collections import Counter
from datetime import datetime, timedelta

import pytest

from .beat_support import Processes, beat_env, dues, sent_messages, write_app
from .support import DEFAULT_TIMEOUT, read_jsonl, wait_until

EVERY_SECOND = {"tick": {"every": 1, "catch_up": "all"}}


@pytest.fixture
def processes(tmp_path, broker_url):
    write_app(tmp_path)
    started = Processes(tmp_path, broker_url)
    yield started
    started.stop_all()


def seconds(values: list[str]) -> list[int]:
    return [int(datetime.fromisoformat(v).timestamp()) for v in values]


def lateness(message) -> float:
    """Seconds between a run's due time and its sending."""
    return message.sent_at - datetime.fromisoformat(message.headers["beat_due"]).timestamp()


def assert_each_second_once(values: list[str]) -> None:
    counted = Counter(values)
    assert [v for v, n in counted.items() if n > 1] == []
    stamps = seconds(values)
    assert stamps == list(range(stamps[0], stamps[0] + len(stamps))), "a second was skipped"


def test_two_beats_side_by_side_send_each_due_second_once(processes, broker_url, tmp_path):
    env = beat_env(tmp_path, EVERY_SECOND)
    one = processes.beat(env)
    two = processes.beat(env)

    time.sleep(7)
    assert one.stop() == 0
    assert two.stop() == 0

    sent = dues(sent_messages(broker_url), "tick")
    assert len(sent) >= 7
    assert_each_second_once(sent)
    # Both were live for the whole window, each free to send any second it saw due.
    assert "beat: sent tick" in one.log() + two.log()


def test_a_cli_edit_takes_effect_without_a_restart(processes, broker_url, tmp_path, cli):
    env = beat_env(tmp_path, EVERY_SECOND)
    beat = processes.beat(env)
    wait_until(lambda: len(dues(sent_messages(broker_url), "tick")) >= 2, what="two ticks")

    disabled = cli("beat", "-A", "beat_app:app", "disable", "tick", env=env)
    assert disabled.returncode == 0, disabled.stderr
    disabled_at = time.time()
    added = cli(
        "beat",
        "-A",
        "beat_app:app",
        "add",
        "extra",
        "--task",
        "beat_app.tick",
        "--every",
        "1",
        "--args",
        '["extra"]',
        env=env,
    )
    assert added.returncode == 0, added.stderr
    assert "added extra: Every second" in added.stdout

    wait_until(lambda: dues(sent_messages(broker_url), "extra"), what="the added entry to run")
    time.sleep(1.5)
    late = [s for s in seconds(dues(sent_messages(broker_url), "tick")) if s > disabled_at + 1.5]
    assert late == [], "tick was still sent after it was disabled"
    assert beat.stop() == 0


def test_beat_list_shows_entries_in_plain_english(cli, tmp_path, broker_url):
    write_app(tmp_path)
    env = beat_env(tmp_path, {"tick": {"every": 30}}, BEAT_TZ="Europe/Paris")

    before = cli("beat", "-A", "beat_app:app", "list", env=env)
    added = cli(
        "beat",
        "-A",
        "beat_app:app",
        "add",
        "nightly",
        "--task",
        "beat_app.tick",
        "--cron",
        "30 2 * * mon-fri",
        "--args",
        '["nightly"]',
        env=env,
    )
    ran = cli("beat", "-A", "beat_app:app", "run-now", "nightly", env=env)
    cli(
        "beat",
        "-A",
        "beat_app:app",
        "add",
        "broken",
        "--task",
        "beat_app.tick",
        "--every",
        "60",
        env=env,
    )
    broken = cli("beat", "-A", "beat_app:app", "run-now", "broken", env=env)
    after = cli("beat", "-A", "beat_app:app", "list", env=env)
    missing = cli("beat", "-A", "beat_app:app", "disable", "nope", env=env)
    bad = cli(
        "beat", "-A", "beat_app:app", "add", "bad", "--task", "t", "--cron", "61 * * * *", env=env
    )

    assert before.returncode == 0, before.stderr
    assert "tick  [enabled, in code, not in the store until a scheduler starts]" in before.stdout
    assert "schedule:   Every 30 seconds" in before.stdout
    assert added.stdout.strip() == "added nightly: At 02:30 on Monday through Friday"
    assert ran.returncode == 0 and len(ran.stdout.strip()) == 36  # the task id
    assert broken.returncode == 1 and "missing a required argument" in broken.stderr
    lines = after.stdout.splitlines()
    start = lines.index("nightly  [enabled, added at run time]")
    block = dict(line.strip().split(":  ", 1) for line in lines[start + 1 : start + 6])
    assert block["task"].strip() == "beat_app.tick"
    assert block["schedule"].strip() == "At 02:30 on Monday through Friday  (30 2 * * mon-fri)"
    assert block["arguments"].strip() == "args=['nightly'] kwargs={} options={}"
    assert "(1 run(s), catch-up latest)" in block["last run"]
    runs = block["next runs"].strip().split(", ")
    assert len(runs) == 3
    assert all(" 02:30:00 CE" in run for run in runs)  # CET or CEST: the app's timezone
    days = [datetime.strptime(run[:10], "%Y-%m-%d") for run in runs]
    assert all(day.weekday() < 5 for day in days) and days == sorted(days)
    assert missing.returncode == 1 and "no periodic task named 'nope'" in missing.stderr
    assert bad.returncode != 0 and "minute" in bad.stderr


def test_beat_add_refuses_a_task_no_module_registers_unless_forced(cli, tmp_path):
    write_app(tmp_path)
    env = beat_env(tmp_path, {})
    add = ("beat", "-A", "beat_app:app", "add", "nightly", "--task", "beat_app.tik")

    typo = cli(*add, "--cron", "0 3 * * *", env=env)
    before = cli("beat", "-A", "beat_app:app", "list", env=env)
    forced = cli(*add, "--cron", "0 3 * * *", "--force", env=env)
    after = cli("beat", "-A", "beat_app:app", "list", env=env)

    assert typo.returncode == 1
    assert typo.stderr.splitlines() == [
        "Error: no task named 'beat_app.tik' is registered by the app's modules (did you mean "
        "'beat_app.tick'?): check the name, or pass --force to add it anyway"
    ]
    assert before.stdout.strip() == "no periodic tasks"
    assert forced.returncode == 0, forced.stderr
    assert forced.stdout.strip() == "added nightly: At 03:00"
    assert "task:       beat_app.tik" in after.stdout


def test_a_killed_beat_restarted_neither_double_fires_nor_over_catches_up(
    processes, broker_url, tmp_path
):
    env = beat_env(
        tmp_path,
        {"all": {"every": 1, "catch_up": "all"}, "latest": {"every": 1, "catch_up": "latest"}},
    )
    first = processes.beat(env)
    wait_until(lambda: len(dues(sent_messages(broker_url), "all")) >= 2, what="first runs")
    first.kill()
    killed_at = time.time()
    time.sleep(3)
    second = processes.beat(env)
    wait_until(
        lambda: seconds(dues(sent_messages(broker_url), "latest"))[-1] >= killed_at + 5,
        what="runs after restart",
    )
    assert second.stop() == 0

    messages = sent_messages(broker_url)
    assert_each_second_once(dues(messages, "all"))  # every missed second caught up, once
    late_all = [m for m in messages if m.headers["beat_entry"] == "all" and lateness(m) > 1.0]
    assert len(late_all) >= 2, "the beat was down long enough to miss runs"
    latest = [m for m in messages if m.headers["beat_entry"] == "latest"]
    assert len({m.headers["beat_due"] for m in latest}) == len(latest)
    caught_up = [m for m in latest if lateness(m) > 1.0]
    assert len(caught_up) <= 1
    latest_seconds = seconds(dues(messages, "latest"))
    gap = max(b - a for a, b in itertools.pairwise(latest_seconds))
    assert gap >= 2, "catch_up='latest' should not send every missed second"


@pytest.mark.parametrize("pool", ["prefork", "threads"])
def test_worker_with_beat_runs_scheduled_tasks(processes, tmp_path, pool):
    env = beat_env(tmp_path, EVERY_SECOND)
    worker = processes.worker(env, "--beat", "-P", pool)

    wait_until(lambda: len(read_jsonl(tmp_path / "runs.jsonl")) >= 3, what="scheduled tasks to run")
    assert worker.stop() == 0

    runs = read_jsonl(tmp_path / "runs.jsonl")
    assert {run["entry"] for run in runs} == {"tick"}
    assert_each_second_once(sorted(run["due"] for run in runs))
    assert "beat: sent tick" in worker.log()
    started = datetime.fromisoformat(runs[0]["due"])
    assert started > datetime.now(started.tzinfo) - timedelta(seconds=30)


def test_worker_with_beat_stops_sending_when_its_warm_shutdown_begins(processes, tmp_path):
    env = beat_env(tmp_path, {"tick": {"every": 1}, "slow": {"every": 1}}, BEAT_SLOW="3")
    worker = processes.worker(env, "--beat")
    wait_until(
        lambda: any(run["entry"] == "slow" for run in read_jsonl(tmp_path / "runs.jsonl")),
        what="the slow task to start",
    )
    worker.proc.send_signal(signal.SIGTERM)
    worker.wait_for_log("warm shutdown")
    assert worker.proc.wait(DEFAULT_TIMEOUT) == 0  # after the slow task ended (up to 3 s)
    log = worker.log()
    after = log[log.index("warm shutdown") :]
    assert "beat: sent" not in after, after
