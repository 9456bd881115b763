#!/usr/bin/env python
"""Run Celery's own tests against Conveyor and print what passes (see compat/README.md).

    python compat/run.py                       # both brokers and the unit tests
    python compat/run.py --brokers sqlite --suites integration -k chord
    python compat/run.py --json failures.json --readme

Downloads the sdist of the pinned Celery release (the only network use) into compat/.cache,
starts a private redis-server (Celery's tasks write to Redis even on the SQLite run), then
runs pytest on the chosen files with the ``celery`` shim first on the path: the integration
files once per broker against real ``conveyor worker`` processes, the unit files once on
Conveyor's in-memory broker.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(HERE), str(REPO / "tests")]

from harness.report import Run, load_records, write_json, write_readme  # noqa: E402
from harness.report import table as render_table  # noqa: E402

from redis_server import RedisServer, redis_server_binary  # noqa: E402

CELERY_VERSION = "5.5.3"
CACHE = HERE / ".cache"

INTEGRATION = ("t/integration/test_tasks.py", "t/integration/test_canvas.py")
UNIT = (
    "t/unit/app/test_schedules.py",
    "t/unit/tasks/test_canvas.py",
    "t/unit/tasks/test_result.py",
    "t/unit/test_canvas.py",
)


def fetch_celery(version: str) -> Path:
    """The sdist's test suite and pytest settings, downloaded and unpacked once into the cache.

    Celery's own package is left packed, so that ``import celery`` finds the shim.
    """
    root = CACHE / f"celery-{version}"
    if (root / "t").is_dir():
        return root
    CACHE.mkdir(exist_ok=True)
    archive = CACHE / f"celery-{version}.tar.gz"
    if not archive.exists():
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
             f"celery=={version}", "-d", str(CACHE)],
            check=True,
        )  # fmt: skip
    wanted = (f"{root.name}/t/", f"{root.name}/pyproject.toml")
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if m.name.startswith(wanted)]
        tar.extractall(CACHE, members=members, filter="data")
    return root


def pytest_env(workdir: Path, broker_url: str, redis: RedisServer) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    env.update(
        {
            "PYTHONPATH": os.pathsep.join([str(HERE / "shim"), str(HERE), str(REPO)]),
            "TEST_BROKER": broker_url,
            "TEST_BACKEND": broker_url,
            "REDIS_HOST": "127.0.0.1",
            "REDIS_PORT": str(redis.port),
            "COMPAT_WORKDIR": str(workdir),
            "COMPAT_NOTES": str(workdir / "notes.jsonl"),
        }
    )
    return env


def run_pytest(
    celery: Path, files: tuple[str, ...], broker: str, env: dict[str, str], args: argparse.Namespace
) -> Run:
    workdir = Path(env["COMPAT_WORKDIR"])
    record = workdir / "record.jsonl"
    for stale in (record, workdir / "notes.jsonl"):
        stale.unlink(missing_ok=True)
    argv = [
        sys.executable, "-m", "pytest", "-p", "harness.plugin", "-p", "celery.contrib.pytest",
        "-p", "no:cacheprovider", "-q", "--continue-on-collection-errors", "-rN", "--color=no",
        f"--compat-record={record}", f"--compat-broker={broker}",
        f"--compat-timeout={args.timeout}",
        f"--compat-deadline={time.time() + args.budget * 60}",
    ]  # fmt: skip
    if broker == "memory":
        argv += ["--noconftest", "-p", "harness.unit_fixtures"]
    if args.k:
        argv += ["-k", args.k]
    argv += [f for f in files if (celery / f).exists()]
    log = workdir / "pytest.log"
    started = time.monotonic()
    with open(log, "wb") as out:
        done = subprocess.run(
            argv, cwd=celery, env=env, stdout=out, stderr=subprocess.STDOUT, check=False
        )
    elapsed = time.monotonic() - started
    print(f"  {broker}: {elapsed:.0f}s, pytest output in {log}", flush=True)
    records = load_records(record)
    if not records:
        print(f"  {broker}: pytest ran no test (exit {done.returncode}); its output ends:")
        print("    " + "\n    ".join(log.read_text(errors="replace").splitlines()[-15:]))
    return Run(broker, records, elapsed, load_records(workdir / "notes.jsonl"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--celery", default=CELERY_VERSION, help="Celery release [%(default)s].")
    parser.add_argument("--brokers", default="sqlite,redis", help="sqlite,redis [%(default)s].")
    parser.add_argument("--suites", default="integration,unit", help="[%(default)s].")
    parser.add_argument("--timeout", type=float, default=60.0, help="Seconds a test may take.")
    parser.add_argument("--budget", type=float, default=40.0, help="Minutes a pytest run may take.")
    parser.add_argument("-k", help="Only tests matching this pytest -k expression.")
    parser.add_argument("--json", help="Write the failures as JSON to this file (- for stdout).")
    parser.add_argument("--readme", action="store_true", help="Put the table in compat/README.md.")
    parser.add_argument("--workdir", help="Keep logs and records here [a temporary directory].")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))  # so redis-server stops

    if redis_server_binary() is None:
        parser.error("redis-server is not on PATH (apt-get install redis-server)")
    celery = fetch_celery(args.celery)
    suites = {s.strip() for s in args.suites.split(",")}
    brokers = [b.strip() for b in args.brokers.split(",") if b.strip()]
    base = Path(args.workdir or tempfile.mkdtemp(prefix="conveyor-compat-"))
    started = time.monotonic()
    runs: list[Run] = []
    redis = RedisServer(base / "redis").start()
    try:
        if "integration" in suites:
            for broker in brokers:
                workdir = base / broker
                workdir.mkdir(parents=True, exist_ok=True)
                url = {
                    "sqlite": f"sqlite:///{workdir / 'conveyor.db'}",
                    "redis": f"redis://127.0.0.1:{redis.port}/1",
                }[broker]
                env = pytest_env(workdir, url, redis)
                runs.append(run_pytest(celery, INTEGRATION, broker, env, args))
        if "unit" in suites:
            workdir = base / "memory"
            workdir.mkdir(parents=True, exist_ok=True)
            env = pytest_env(workdir, "memory://", redis)
            runs.append(run_pytest(celery, UNIT, "memory", env, args))
    finally:
        redis.stop()
    elapsed = time.monotonic() - started
    given = list(argv if argv is not None else sys.argv[1:])
    for option in ("--workdir", "--json"):  # where the logs went, not what ran
        while option in given:
            at = given.index(option)
            del given[at : at + 2]
    command = "python compat/run.py " + " ".join(given)
    print(render_table(runs))
    if args.json:
        write_json(runs, args.json)
    if args.readme:
        write_readme(HERE / "README.md", runs, args.celery, command.strip(), elapsed)
    print(f"\nCelery {args.celery}, {elapsed / 60:.1f} min; logs in {base}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
