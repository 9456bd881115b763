"""The app from Django settings, autodiscovered tasks, the CLI finding the project, and the
clear error for a model instance passed as an argument."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.conf import settings
from django.test import override_settings
from shop.emails.models import Email
from shop.emails.tasks import email_send

from conveyor import Conveyor
from conveyor.cli import load_app
from conveyor.contrib.django import autodiscover_tasks, get_app
from conveyor.contrib.django.conf import _find_app, configure
from conveyor.contrib.django.results import DjangoResultBackend
from conveyor.contrib.django.store import DjangoStore
from conveyor.exceptions import EncodeError, ImproperlyConfigured

from .conftest import BROKER_URL, SHOP, TESTS, Database


def test_the_app_is_configured_from_conveyor_settings() -> None:
    app = get_app()

    assert app.main == "contrib_django"  # named after the settings' package
    assert app.broker_url == BROKER_URL  # CONVEYOR_BROKER_URL
    assert isinstance(app.backend, DjangoResultBackend)  # CONVEYOR_RESULT_BACKEND = "django://"
    assert app.conf.beat_store == "conveyor.contrib.django.store:DjangoStore"
    from conveyor.beat import default_store

    assert isinstance(default_store(app), DjangoStore)


def test_config_from_object_with_the_namespace_reads_the_same_settings() -> None:
    app = Conveyor("mine", set_as_current=False)
    with override_settings(CONVEYOR_TASK_ALWAYS_EAGER=True, CONVEYOR_APP="elsewhere:app"):
        app.config_from_object("django.conf:settings", namespace="CONVEYOR")
        assert app.conf.task_always_eager is True

    assert app.conf.broker_url == BROKER_URL
    assert app.conf.task_always_eager is False  # live: the override ended
    assert app.conf.result_backend == "django://"


def test_a_misspelt_setting_is_an_error_that_names_it() -> None:
    app = Conveyor("typo", set_as_current=False)
    with (
        override_settings(CONVEYOR_TASK_ALWAYS_EGAER=True),
        pytest.raises(ImproperlyConfigured, match="task_always_eager"),
    ):
        configure(app)


def test_tasks_modules_and_packages_of_installed_apps_are_discovered() -> None:
    names = set(get_app().tasks)

    assert {"testapp.ping", "testapp.discovered"} <= names  # tasks/ and tasks/more.py
    assert "shop.emails.tasks.email_send" in names  # tasks.py
    assert "contrib_django.testapp.tasks.more.add" in names  # a Django @task
    assert autodiscover_tasks(["contrib_django.testapp"]) == [
        "contrib_django.testapp.tasks",
        "contrib_django.testapp.tasks.more",
    ]
    assert autodiscover_tasks(["shop"]) == []  # no tasks module: nothing, no error


def test_passing_a_model_instance_fails_at_call_time_and_says_to_pass_its_pk() -> None:
    email = Email.objects.create(to="ada@example.com", subject="s", plain_text="p")

    for send in (email_send.delay, email_send.delay_on_commit, lambda e: email_send.apply([e])):
        with pytest.raises(EncodeError) as caught:
            send(email)
        message = str(caught.value)
        assert "a Django model instance (shop.emails.models.Email)" in message
        assert f"pass its primary key (obj.pk = {email.pk})" in message


def test_load_app_finds_the_project_from_a_package_or_django_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", settings.SETTINGS_MODULE)
    assert load_app(None) is get_app()  # DJANGO_SETTINGS_MODULE, no -A
    assert load_app("shop") is get_app()  # -A names the project package
    monkeypatch.delenv("DJANGO_SETTINGS_MODULE")
    monkeypatch.delenv("CONVEYOR_APP", raising=False)
    assert load_app("contrib_django") is get_app()  # finds contrib_django.settings itself
    assert os.environ["DJANGO_SETTINGS_MODULE"] == "contrib_django.settings"


def test_the_cli_needs_no_app_argument_in_a_django_project(database: Database) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    env.update(
        database.env,
        PYTHONPATH=os.pathsep.join([str(SHOP), str(TESTS), env.get("PYTHONPATH", "")]),
        SHOP_BROKER_URL=BROKER_URL,
    )
    run = subprocess.run(
        [sys.executable, "-m", "conveyor", "-A", "shop", "beat", "list"],
        cwd=SHOP,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "no periodic tasks"


OWN = Conveyor("own", set_as_current=False)


def test_the_projects_app_is_named_or_adopted_or_made() -> None:
    with override_settings(CONVEYOR_APP="contrib_django.test_setup:OWN"):
        assert _find_app() is OWN
    with override_settings(CONVEYOR_APP="contrib_django.test_setup.OWN"):
        assert _find_app() is OWN
    with (
        override_settings(CONVEYOR_APP="contrib_django.test_setup:settings"),
        pytest.raises(ImproperlyConfigured, match="not a Conveyor app"),
    ):
        _find_app()

    celery_layout = Conveyor("proj")  # made (and current) before Django configures it
    assert _find_app() is celery_layout
    Conveyor("default").set_current()  # only a default app: make one for the project
    made = _find_app()
    assert made.main == "contrib_django" and made is not get_app()
