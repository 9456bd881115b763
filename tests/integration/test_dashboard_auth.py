"""Beyond loopback the dashboard needs credentials: it will not start without them, and
an anonymous request is refused while a token or basic-auth password lets one in."""

from __future__ import annotations

import base64
import socket
import subprocess
from pathlib import Path

import pytest

from redis_server import free_port

from .dashboard_support import CHROMIUM, start_dashboard_process
from .support import wait_until

playwright = pytest.importorskip("playwright.sync_api")


def own_address() -> str:
    """An address of this machine that is not loopback (the dashboard binds 0.0.0.0)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks a route
            return str(probe.getsockname()[0])
    except OSError:  # no route at all: loopback reaches 0.0.0.0 too, and is asked the same
        return "127.0.0.1"


def test_refuses_to_listen_beyond_loopback_without_auth(broker_url: str, tmp_path: Path) -> None:
    process = start_dashboard_process(
        broker_url, tmp_path, ["--port", str(free_port())], host="0.0.0.0"
    )
    assert process.wait(20) == 1
    log = (tmp_path / "dashboard.log").read_text()
    assert "with no authentication" in log and "dashboard_token" in log


@pytest.mark.parametrize("scheme", ["token", "basic"])
def test_anonymous_requests_are_refused(broker_url: str, tmp_path: Path, scheme: str) -> None:
    import urllib.error
    import urllib.request

    port = free_port()
    creds = ["--token", "s3cret-token"] if scheme == "token" else ["--basic-auth", "ops:pa55"]
    process = start_dashboard_process(
        broker_url, tmp_path, ["--port", str(port), *creds], host="0.0.0.0"
    )
    base = f"http://{own_address()}:{port}"

    def get(path: str, headers: dict[str, str] | None = None) -> int:
        try:
            with urllib.request.urlopen(
                urllib.request.Request(base + path, headers=headers or {}), timeout=5
            ) as r:
                return int(r.status)
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError:
            return 0

    try:
        wait_until(lambda: get("/health") == 401, what="the dashboard to answer", timeout=20)
        for path in ["/", "/queues", "/dead-letters", "/periodic", "/tasks/x"]:
            assert get(path) == 401
        if scheme == "token":
            good = {"Authorization": "Bearer s3cret-token"}
            bad = {"Authorization": "Bearer guess"}
        else:
            good = {"Authorization": "Basic " + base64.b64encode(b"ops:pa55").decode()}
            bad = {"Authorization": "Basic " + base64.b64encode(b"ops:guess").decode()}
        assert get("/queues", bad) == 401
        assert get("/queues", good) == 200
        if scheme == "token":
            if not Path(CHROMIUM).exists():
                pytest.fail(f"apt-get install chromium ({CHROMIUM})")
            with playwright.sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
                page = browser.new_page()
                page.goto(base + "/login")
                page.get_by_label("Dashboard token").fill("guess")
                page.get_by_role("button", name="Log in").click()
                assert "wrong token" in page.locator(".notice.error").inner_text()
                page.get_by_label("Dashboard token").fill("s3cret-token")
                page.get_by_role("button", name="Log in").click()
                assert page.locator("h1").inner_text() == "Overview"
                page.goto(base + "/queues")
                assert page.locator("h1").inner_text() == "Queues"
                browser.close()
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
