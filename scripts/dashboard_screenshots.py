"""Take the dashboard screenshots in docs/images/ (for the README and docs/dashboard.md).

    python scripts/dashboard_screenshots.py

Starts a real worker and the dashboard on a temporary SQLite file, sends a little traffic
of every kind (successes, a retry, failures, a chain, a dead letter, a periodic task), and
photographs each page in Debian's Chromium: light and dark, desktop and phone.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

from conveyor import chain

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "images"
CHROMIUM = "/usr/bin/chromium"

SHOP = textwrap.dedent(
    """
    import random, time
    from conveyor import Conveyor, chain

    app = Conveyor("shop", broker_url="sqlite:///{db}")

    @app.task(bind=True, max_retries=2, default_retry_delay=1)
    def send_email(self, to: str, subject: str) -> str:
        if "retry" in subject and self.request.retries == 0:
            raise self.retry()
        time.sleep(random.uniform(0.01, 0.2))
        return f"sent to {{to}}"

    @app.task
    def resize_image(path: str, width: int) -> dict:
        time.sleep(random.uniform(0.05, 0.6))
        return {{"path": path, "width": width}}

    @app.task(dashboard_mask=["card_number"])
    def charge_card(order: int, card_number: str) -> str:
        if order % 7 == 0:
            raise ValueError(f"card declined for order {{order}}")
        return f"charged order {{order}}"

    @app.task
    def build_report(day: str) -> int:
        time.sleep(2)
        return 42

    @app.task
    def fetch_rates() -> dict:
        return {{"EUR": 1.0}}
    """
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="conveyor-shots-"))
    db = work / "shop.db"
    (work / "shop.py").write_text(SHOP.format(db=db))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    env["PYTHONPATH"] = str(work)
    conveyor = [sys.executable, "-m", "conveyor", "-A", "shop:app"]
    sys.path.insert(0, str(work))
    import shop  # type: ignore[import-not-found]

    # A message no worker knows yet: a dead letter to show.
    shop.app.send_task("shop.refund", [1234])
    worker = subprocess.Popen(
        [*conveyor, "worker", "-c", "3", "-n", "shop-1@web"], env=env, cwd=work
    )
    port = free_port()
    board = subprocess.Popen([*conveyor, "dashboard", "--port", str(port)], env=env, cwd=work)
    base = f"http://127.0.0.1:{port}"
    try:
        subprocess.run(
            [
                *conveyor,
                "beat",
                "add",
                "nightly-report",
                "--task",
                "shop.build_report",
                "--cron",
                "0 3 * * *",
                "--args",
                '["today"]',
            ],
            env=env,
            cwd=work,
            check=True,
        )
        subprocess.run(
            [
                *conveyor,
                "beat",
                "add",
                "exchange-rates",
                "--task",
                "shop.fetch_rates",
                "--every",
                "900",
            ],
            env=env,
            cwd=work,
            check=True,
        )
        for n in range(1, 60):
            shop.send_email.delay(f"user{n}@example.com", "retry me" if n % 10 == 0 else "hi")
            shop.resize_image.delay(f"/img/{n}.jpg", 640)
            shop.charge_card.delay(n, "4111111111111111")
        flow = chain(
            shop.resize_image.s("/img/hero.jpg", 1200), shop.fetch_rates.si()
        ).apply_async()
        failed = shop.charge_card.delay(14, "4111111111111111")
        slow = shop.build_report.delay("2026-12-05")
        for _ in range(100):
            time.sleep(0.2)
            if failed.ready() and flow.ready():
                break
        for _ in range(50):
            try:
                urllib.request.urlopen(base + "/health", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        shop.build_report.delay("2026-12-06")
        time.sleep(2.5)
        OUT.mkdir(parents=True, exist_ok=True)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            shots = [
                ("overview", "/", "light", (1280, 900)),
                ("workers", "/workers", "light", (1280, 800)),
                ("tasks", "/tasks", "light", (1280, 900)),
                ("task-failed", f"/tasks/{failed.id}", "light", (1280, 900)),
                ("task-chain", f"/tasks/{flow.id}", "dark", (1280, 900)),
                ("queues", "/queues", "light", (1280, 600)),
                ("dead-letters", "/dead-letters", "dark", (1280, 600)),
                ("periodic", "/periodic", "light", (1280, 600)),
                ("overview-phone", "/", "dark", (390, 844)),
            ]
            for name, path, scheme, (width, height) in shots:
                context = browser.new_context(
                    viewport={"width": width, "height": height}, color_scheme=scheme
                )
                page = context.new_page()
                page.goto(base + path)
                page.screenshot(
                    path=str(OUT / f"dashboard-{name}.png"), full_page=name != "overview-phone"
                )
                context.close()
                print(f"docs/images/dashboard-{name}.png")
            browser.close()
        del slow
    finally:
        board.terminate()
        worker.terminate()
        board.wait(10)
        worker.wait(30)


if __name__ == "__main__":
    main()
