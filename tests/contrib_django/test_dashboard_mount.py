"""The dashboard mounted in a Django project (the shop's ``tasks/``): staff only, links
under the prefix, actions CSRF-checked, a task's page showing what the worker stored."""

from __future__ import annotations

import re
from urllib.parse import urlencode

from django.contrib.auth.models import User
from django.test import Client
from shop.emails.models import Email
from shop.emails.tasks import email_send as email_send_task

from conveyor.contrib.django import get_app

from .conftest import Worker, wait_until


def staff_client() -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("admin", "admin@example.com", "pw"))
    return client


def test_only_staff_see_it() -> None:
    anonymous = Client().get("/tasks/queues")
    assert anonymous.status_code == 302 and "/admin/login/" in anonymous["Location"]
    User.objects.create_user("clerk", "clerk@example.com", "pw")
    clerk = Client()
    clerk.login(username="clerk", password="pw")
    assert clerk.get("/tasks/").status_code == 302


def test_pages_and_links_stay_under_the_prefix() -> None:
    client = staff_client()
    for path in ["/tasks/", "/tasks/queues", "/tasks/dead-letters", "/tasks/periodic"]:
        response = client.get(path)
        assert response.status_code == 200, path
        html = response.content.decode()
        links = re.findall(r'(?:href|action|src)="([^"]+)"', html)
        assert links and all(link.startswith("/tasks/") for link in links), links
        assert "script-src 'self'" in response["Content-Security-Policy"]


def test_a_purge_needs_the_dashboard_csrf_token() -> None:
    app = get_app()
    for n in range(3):
        email_send_task.apply_async((n,), queue="parked")
    client = staff_client()
    page = client.get("/tasks/queues/parked/purge").content.decode()
    token = re.search(r'name="csrf" value="([^"]+)"', page)
    assert token is not None
    form = "application/x-www-form-urlencoded"  # what a browser sends for these forms
    refused = client.post(
        "/tasks/queues/parked/purge", urlencode({"confirm": "parked", "csrf": "guess"}), form
    )
    assert refused.status_code == 403
    assert app.broker.stats()["parked"].ready == 3
    done = client.post(
        "/tasks/queues/parked/purge",
        urlencode({"confirm": "parked", "csrf": token.group(1), "back": "/queues"}),
        form,
    )
    assert done.status_code == 303 and done["Location"].startswith("/tasks/queues?done=")
    assert app.broker.stats().get("parked") is None or app.broker.stats()["parked"].ready == 0


def test_a_task_page_shows_the_stored_outcome(worker: Worker) -> None:
    email = Email.objects.create(  # as email_create makes it, without its own send
        to="ada@example.com", subject="hi", plain_text="hello", status=Email.Status.SENDING
    )
    result = email_send_task.delay(email.pk)
    wait_until(lambda: result.state == "SUCCESS", what="the email task")
    html = staff_client().get(f"/tasks/tasks/{result.id}").content.decode()
    assert 'data-state="SUCCESS"' in html and email_send_task.name in html
