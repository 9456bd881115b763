"""The dashboard in a real Chromium, over real workers on SQLite and Redis: every page
shows live data, every action works end to end, secrets never reach the page, and the
pages run under a strict Content-Security-Policy."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from .dashboard_support import CHROMIUM, dashboard
from .support import Workers, project_on, run_cli, wait_until, workers_for

playwright = pytest.importorskip("playwright.sync_api")

APP = "dashboard_tasks:app"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"the dashboard tests drive Debian's Chromium: apt-get install chromium ({CHROMIUM})"
        )
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context()
    page = context.new_page()
    page.problems = []
    page.on("console", lambda m: m.type == "error" and page.problems.append(m.text))
    page.on("pageerror", lambda e: page.problems.append(str(e)))
    yield page
    context.close()


@pytest.fixture
def dt(url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    with project_on(url, "dashboard_tasks", monkeypatch, "DASHBOARD_WITHOUT_FIX") as module:
        yield module


@pytest.fixture
def crew(
    request: pytest.FixtureRequest, tmp_path: Path, url: str, dt: ModuleType
) -> Iterator[Workers]:
    with workers_for(request, tmp_path, url) as workers:
        yield workers


def outcome(result: Any) -> Any:
    """The task's result. Not ``get()``: Playwright's sync API runs an event loop in this
    thread, where a blocking ``get()`` is refused (it names ``aget``)."""
    wait_until(result.ready, what=f"task {result.id} to finish", timeout=20)
    return result.result


def no_inline_script(html: str) -> None:
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "an inline script"
    assert not re.search(r"\son[a-z]+\s*=", html), "an inline event handler"
    assert "style=" not in html, "an inline style"


def test_pages_show_live_data_and_steer_the_cluster(
    url: str, tmp_path: Path, dt: ModuleType, crew: Workers, page: Any
) -> None:
    # A worker deployed before `report` existed: its message dies as an unknown task.
    old = crew.start("-P", "threads", env={"DASHBOARD_WITHOUT_FIX": "1"}, app=APP)
    dead = dt.app.send_task("dashboard_tasks.report", ["2026-12-05"])
    wait_until(lambda: dt.app.broker.dead_letters(10), what="the unknown task's dead letter")
    old.stop()
    secret = dt.sign_in.delay("ada", "hunter2")
    crew.start(app=APP)
    assert outcome(secret) == {"user": "ada", "token": "tok-hunter2"}
    entry = run_cli(
        url,
        tmp_path,
        "-A",
        APP,
        "beat",
        "add",
        "nightly",
        "--task",
        "dashboard_tasks.add",
        "--cron",
        "0 3 * * *",
        "--args",
        "[1, 2]",
    )
    assert entry.returncode == 0, entry.stderr

    with dashboard(url, tmp_path) as board:
        for path in [
            "/",
            "/workers",
            "/tasks",
            "/queues",
            "/dead-letters",
            "/periodic",
            f"/tasks/{secret.id}",
            f"/dead-letters/{dead.id}",
        ]:
            status, html = board.get(path)
            assert status == 200, (path, html)
            no_inline_script(html)
            assert "hunter2" not in html

        page.goto(board.base + f"/tasks/{secret.id}")
        assert page.locator("[data-state]").inner_text() == "SUCCESS"
        assert "ada" in page.locator("pre.result").inner_text()
        assert "hunter2" not in page.content()

        # Re-send the dead letter now that a worker knows the task.
        page.goto(board.base + "/dead-letters")
        row = page.locator(f"tr[data-letter='{dead.id}']")
        assert "dashboard_tasks.report" in row.inner_text()
        assert "no task named" in row.inner_text()
        row.locator("input[type=checkbox]").check()
        page.get_by_role("button", name="Re-send selected").click()
        assert "re-sent 1 message" in page.locator(".notice").inner_text()
        assert outcome(dead) == "report for 2026-12-05"
        assert not dt.app.broker.dead_letters(10)

        # Disable the periodic task, then send it once by hand.
        page.goto(board.base + "/periodic")
        row = page.locator("tr[data-entry='nightly']")
        assert "At 03:00" in row.inner_text() or "3:00" in row.inner_text()
        row.get_by_role("button", name="Disable").click()
        assert "disabled nightly" in page.locator(".notice").inner_text()
        listed = run_cli(url, tmp_path, "-A", APP, "beat", "list")
        assert "nightly  [disabled" in listed.stdout
        page.locator("tr[data-entry='nightly']").get_by_role("button", name="Run now").click()
        sent = re.search(r"as task (\S+)", page.locator(".notice").inner_text())
        assert sent is not None
        assert outcome(dt.app.AsyncResult(sent.group(1))) == 3

        # Terminate a running task from its page.
        slow = dt.nap.delay(60)
        wait_until(lambda: slow.state == "STARTED", what="the nap to start")
        page.goto(board.base + f"/tasks/{slow.id}")
        assert page.locator("[data-state]").inner_text() == "STARTED"
        page.get_by_role("button", name="Terminate").click()
        wait_until(lambda: slow.state == "REVOKED", what="the nap to be terminated")
        page.goto(board.base + f"/tasks/{slow.id}")
        assert page.locator("[data-state]").inner_text() == "REVOKED"
        assert page.problems == []


def test_a_page_updates_by_itself(url: str, tmp_path: Path, dt: ModuleType, page: Any) -> None:
    with dashboard(url, tmp_path) as board:
        page.goto(board.base + "/queues")
        assert "No queue holds a message" in page.content()
        for n in range(3):
            dt.add.apply_async((n, n), queue="mail")
        page.wait_for_selector("tr[data-queue='mail']", timeout=10_000)
        assert page.locator("tr[data-queue='mail'] td").nth(1).inner_text() == "3"
        assert page.problems == []


def test_purge_asks_for_the_queue_name(url: str, tmp_path: Path, dt: ModuleType, page: Any) -> None:
    for n in range(4):
        dt.add.apply_async((n, n), queue="bulk")
    with dashboard(url, tmp_path) as board:
        page.goto(board.base + "/queues")
        page.locator("tr[data-queue='bulk']").get_by_role("link", name="Purge…").click()
        page.get_by_label("Type the queue's name to confirm").fill("wrong")
        page.get_by_role("button", name="Purge bulk").click()
        assert "type the queue's name" in page.locator(".notice.error").inner_text()
        assert dt.app.broker.stats()["bulk"].ready == 4
        page.goto(board.base + "/queues/bulk/purge")
        page.get_by_label("Type the queue's name to confirm").fill("bulk")
        page.get_by_role("button", name="Purge bulk").click()
        assert "purged 4 message(s) from bulk" in page.locator(".notice").inner_text()
        assert "bulk" not in dt.app.broker.stats() or dt.app.broker.stats()["bulk"].ready == 0


def test_actions_need_the_csrf_token_and_read_only_hides_them(
    url: str, tmp_path: Path, dt: ModuleType
) -> None:
    import urllib.request

    dt.add.apply_async((1, 1), queue="keep")
    with dashboard(url, tmp_path) as board:
        forged = urllib.request.Request(
            board.base + "/queues/keep/purge", data=b"confirm=keep&csrf=guess", method="POST"
        )
        try:
            urllib.request.urlopen(forged, timeout=10)
            raise AssertionError("a POST without the visitor's CSRF cookie was accepted")
        except urllib.error.HTTPError as exc:
            assert exc.code == 403
        assert dt.app.broker.stats()["keep"].ready == 1
    with dashboard(url, tmp_path, "--read-only") as board:
        status, html = board.get("/queues")
        assert status == 200 and "read-only" in html and "Purge" not in html


def test_workers_page_shows_and_steers_a_worker(
    url: str, tmp_path: Path, dt: ModuleType, crew: Workers, page: Any
) -> None:
    worker = crew.start("-c", "2", app=APP)
    done = [dt.add.delay(n, 1) for n in range(5)]
    slow = dt.nap.delay(30)
    for result in done:
        assert outcome(result) is not None
    wait_until(lambda: slow.state == "STARTED", what="the nap to start")
    with dashboard(url, tmp_path) as board:
        page.goto(board.base + "/workers")
        running = f"section[data-worker='w1@integration'] tr[data-running='{slow.id}']"
        page.wait_for_selector(running, timeout=15_000)  # the registry's next heartbeat
        card = page.locator("section[data-worker='w1@integration']")
        assert "online" in card.inner_text()
        assert "prefork \N{MULTIPLICATION SIGN} 2" in card.locator("[data-field=pool]").inner_text()

        card.get_by_role("button", name="Grow pool").click()
        assert "asked w1@integration to grow" in page.locator(".notice").inner_text()
        page.wait_for_function(
            "() => document.querySelector(\"section[data-worker='w1@integration'] "
            "[data-field=pool]\").innerText.includes('\N{MULTIPLICATION SIGN} 3')",
            timeout=15_000,
        )
        card = page.locator("section[data-worker='w1@integration']")
        card.get_by_label("queue to add to w1@integration").fill("extra")
        card.get_by_role("button", name="Add queue").click()
        page.wait_for_function(
            "() => document.querySelector(\"section[data-worker='w1@integration'] "
            "[data-field=queues]\").innerText.includes('extra')",
            timeout=15_000,
        )
        extra = dt.add.apply_async((20, 22), queue="extra")
        assert outcome(extra) == 42

        page.goto(board.base + "/")
        assert page.locator("[data-metric=workers]").inner_text() == "1"
        page.wait_for_selector("svg.chart rect.bar.succeeded", timeout=15_000)
        assert "dashboard_tasks.add" in page.locator("tr[data-slow]").first.inner_text() or (
            page.locator("tr[data-slow='dashboard_tasks.add']").count() == 1
        )

        page.goto(board.base + "/workers")
        slow_revoked = dt.app.control.revoke(slow.id, terminate=True)
        del slow_revoked
        page.locator("section[data-worker='w1@integration']").get_by_role(
            "button", name="Shut down"
        ).click()
        assert worker.wait(20) == 0
        assert page.problems == []


def test_a_task_page_shows_its_timeline_and_workflow_and_retries_a_failure(
    url: str, tmp_path: Path, dt: ModuleType, crew: Workers, page: Any
) -> None:
    from conveyor import chain

    crew.start("-P", "threads", "-c", "2", app=APP)
    feed = tmp_path / "feed.txt"
    failed = dt.import_feed.delay(str(feed))
    wait_until(lambda: failed.state == "FAILURE", what="the import to fail")
    flow = chain(dt.add.s(1, 2), dt.double.s(), dt.double.s()).apply_async()
    assert outcome(flow) == 12
    with dashboard(url, tmp_path) as board:
        page.goto(board.base + f"/tasks/{failed.id}")
        assert page.locator("[data-state]").inner_text() == "FAILURE"
        assert "FileNotFoundError" in page.locator("pre.result").inner_text()
        assert str(feed) in page.locator("pre.args").inner_text()
        kinds = page.locator("table.timeline tr[data-event]").evaluate_all(
            "rows => rows.map(r => r.dataset.event)"
        )
        assert kinds[-3:] == ["task-received", "task-started", "task-failed"] or kinds[-2:] == [
            "task-started",
            "task-failed",
        ], kinds
        feed.write_text("one two three")
        page.get_by_role("button", name="Retry with the same arguments").click()
        again = re.search(r"sent again as task (\S+)", page.locator(".notice").inner_text())
        assert again is not None
        assert outcome(dt.app.AsyncResult(again.group(1))) == 3

        page.goto(board.base + f"/tasks/{flow.id}")
        nodes = page.locator(".flow [data-flow]")
        assert nodes.count() == 3
        assert [nodes.nth(i).inner_text().split()[0] for i in range(3)] == ["SUCCESS"] * 3
        assert "current" in (nodes.nth(2).get_attribute("class") or "")
        assert page.problems == []


def test_the_task_list_filters_and_pages_in_the_store(
    url: str, tmp_path: Path, dt: ModuleType, crew: Workers, page: Any
) -> None:
    crew.start("-P", "threads", "-c", "4", "-Q", "default,mail", app=APP)
    sums = [dt.add.delay(n, n) for n in range(60)]
    mailed = [dt.add.apply_async((n, 100), queue="mail") for n in range(4)]
    fails = [dt.import_feed.delay(str(tmp_path / f"missing-{n}")) for n in range(3)]
    for result in sums + mailed:
        outcome(result)
    for result in fails:
        wait_until(lambda r=result: r.state == "FAILURE", what="the failures")
    with dashboard(url, tmp_path) as board:
        page.goto(board.base + "/tasks")
        assert page.locator("tr[data-task]").count() == 50
        page.get_by_role("link", name="Older").click()
        assert page.locator("tr[data-task]").count() == 17
        assert page.get_by_role("link", name="Older").count() == 0

        page.goto(board.base + "/tasks")
        page.get_by_label("State").select_option("FAILURE")
        page.get_by_role("button", name="Filter").click()
        shown = page.locator("tr[data-task]").evaluate_all("rows => rows.map(r => r.dataset.task)")
        assert sorted(shown) == sorted(r.id for r in fails)
        page.get_by_label("Name").select_option("dashboard_tasks.add")
        page.get_by_role("button", name="Filter").click()
        assert page.locator("tr[data-task]").count() == 0
        assert "No stored task matches" in page.content()

        page.goto(board.base + "/tasks?name=dashboard_tasks.add&since=1h")
        assert page.locator("tr[data-task]").count() == 50
        page.get_by_label("Queue").select_option("mail")
        page.get_by_role("button", name="Filter").click()
        shown = page.locator("tr[data-task]").evaluate_all("rows => rows.map(r => r.dataset.task)")
        assert sorted(shown) == sorted(r.id for r in mailed)
        page.get_by_label("Task id").fill(sums[7].id)
        page.get_by_role("button", name="Find").click()
        assert page.locator("pre.result").inner_text() == "14"
        assert page.problems == []


def test_deleting_every_dead_letter_asks_first(
    url: str, tmp_path: Path, dt: ModuleType, crew: Workers, page: Any
) -> None:
    crew.start("-P", "threads", env={"DASHBOARD_WITHOUT_FIX": "1"}, app=APP)
    for day in ("mon", "tue"):
        dt.app.send_task("dashboard_tasks.report", [day])
    wait_until(lambda: len(dt.app.broker.dead_letters(10)) == 2, what="two dead letters")
    with dashboard(url, tmp_path) as board:
        page.goto(board.base + "/dead-letters")
        page.get_by_role("link", name="Delete all…").click()
        page.get_by_label('Type "delete all" to confirm').fill("yes")
        page.get_by_role("button", name="Delete 2 dead letter(s)").click()
        assert "type 'delete all'" in page.locator(".notice.error").inner_text()
        assert len(dt.app.broker.dead_letters(10)) == 2
        page.get_by_role("link", name="Delete all…").click()
        page.get_by_label('Type "delete all" to confirm').fill("delete all")
        page.get_by_role("button", name="Delete 2 dead letter(s)").click()
        assert "deleted 2 dead letter(s)" in page.locator(".notice").inner_text()
        assert dt.app.broker.dead_letters(10) == []
        assert page.problems == []
