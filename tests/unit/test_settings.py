"""Settings as a Celery project writes them: Celery's names (current and old), a Flask
app's config, environment variables, and sources read when first needed."""

from __future__ import annotations

import re
import types
import warnings
from datetime import timedelta
from typing import Any

import pytest

from conveyor import Conveyor
from conveyor.brokers import MemoryBroker
from conveyor.celery_settings import IgnoredSettingWarning
from conveyor.config import Settings
from conveyor.exceptions import ImproperlyConfigured


def make_app(**settings: Any) -> Conveyor:
    return Conveyor("settings", broker="memory://", set_as_current=False, **settings)


def ignored(call: Any) -> list[str]:
    """The messages of the IgnoredSettingWarnings ``call()`` gives."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        call()
    return [str(w.message) for w in caught if issubclass(w.category, IgnoredSettingWarning)]


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sees the once-per-process warnings afresh."""
    monkeypatch.setattr("conveyor.celery_settings._warned", set())


def test_a_celery_setting_without_meaning_is_accepted_with_one_warning_naming_it() -> None:
    def configure() -> None:
        app = make_app(broker_connection_retry_on_startup=True, result_extended=True)
        app.conf.update(broker_transport_options={"visibility_timeout": 3600})
        app.conf.worker_hijack_root_logger = False
        app.conf.result_serializer = "json"
        app.conf.task_protocol = 2
        app.conf.result_cache_max = 100
        make_app(result_extended=True)  # the same name again: no second warning

    messages = ignored(configure)

    named = [re.search(r"setting '(\w+)'", m).group(1) for m in messages]  # type: ignore[union-attr]
    assert sorted(named) == sorted(
        [
            "broker_connection_retry_on_startup",
            "result_extended",
            "broker_transport_options",
            "worker_hijack_root_logger",
            "result_serializer",
            "task_protocol",
            "result_cache_max",
        ]
    )
    assert all("is ignored" in m for m in messages)


def test_a_name_neither_knows_raises_and_only_a_close_name_is_suggested() -> None:
    app = make_app()
    with pytest.raises(ImproperlyConfigured, match="did you mean 'task_always_eager'"):
        app.conf.task_always_egaer = True
    with pytest.raises(ImproperlyConfigured, match="did you mean 'broker_transport_options'"):
        app.conf.update(broker_transport_option={})
    for far in ("brokr", "queue", "eager", "task_default"):
        with pytest.raises(ImproperlyConfigured) as caught:
            app.conf.update({far: 1})
        assert f"unknown setting {far!r}" in str(caught.value)
        assert "did you mean" not in str(caught.value)
    with pytest.raises(ImproperlyConfigured, match="unknown setting"):
        Conveyor("kw", broker="memory://", set_as_current=False, task_always_eagre=True)


def test_a_flask_apps_config_updates_the_settings() -> None:
    flask_config = {
        "DEBUG": True,
        "SECRET_KEY": "dev",
        "SQLALCHEMY_DATABASE_URI": "sqlite:///app.db",
        "S3_BUCKET": "uploads",  # an app's own setting that looks like Celery's s3_bucket
        "CELERY_BROKER_URL": "redis://localhost:6379/0",
        "CELERY_RESULT_BACKEND": "redis://localhost:6379/1",
        "CELERY_TASK_ALWAYS_EAGER": True,
        "CONVEYOR_TASK_DEFAULT_QUEUE": "web",
    }
    app = make_app()

    assert ignored(lambda: app.conf.update(flask_config)) == []

    assert app.conf.broker_url == "redis://localhost:6379/0"
    assert app.conf.result_backend == "redis://localhost:6379/1"
    assert app.conf.task_always_eager is True
    assert app.conf.task_default_queue == "web"


def test_celerys_old_upper_case_names_map_to_the_new_ones() -> None:
    app = make_app()
    app.conf.update(
        {
            "BROKER_URL": "memory://",
            "CELERY_ALWAYS_EAGER": True,
            "CELERY_EAGER_PROPAGATES_EXCEPTIONS": True,
            "CELERYD_CONCURRENCY": 3,
            "CELERYD_TASK_SOFT_TIME_LIMIT": 30,
            "CELERY_DEFAULT_QUEUE": "jobs",
            "CELERY_ROUTES": {"a.b": {"queue": "x"}},
            "CELERYBEAT_SCHEDULE": {"tick": {"task": "a.b", "schedule": 5.0}},
            "CELERY_TASK_RESULT_EXPIRES": timedelta(hours=2),
            "CELERY_IMPORTS": ["proj.tasks"],
        }
    )
    conf = app.conf
    assert conf.broker_url == "memory://"
    assert (conf.task_always_eager, conf.task_eager_propagates) == (True, True)
    assert (conf.worker_concurrency, conf.task_soft_time_limit) == (3, 30)
    assert conf.task_default_queue == "jobs"
    assert conf.task_routes == {"a.b": {"queue": "x"}}
    assert list(conf.beat_schedule) == ["tick"]
    assert conf.result_expires == 7200.0
    assert conf.imports == ["proj.tasks"]


def test_an_unknown_prefixed_upper_case_key_raises_with_its_spelling() -> None:
    app = make_app()
    with pytest.raises(ImproperlyConfigured) as caught:
        app.conf.update({"CELERY_TASK_ALWAYS_EGAER": True})
    message = str(caught.value)
    assert "'task_always_egaer' (CELERY_TASK_ALWAYS_EGAER)" in message
    assert "did you mean 'task_always_eager' (CELERY_TASK_ALWAYS_EAGER)?" in message
    with pytest.raises(ImproperlyConfigured, match="CONVEYOR_NOT_A_SETTING"):
        app.conf.update({"CONVEYOR_NOT_A_SETTING": 1})


def test_environment_variables_must_name_settings() -> None:
    conf = Settings()
    conf.load_environment(
        {
            "CONVEYOR_TASK_DEFAULT_QUEUE": "env",
            "CONVEYOR_TASK_QUEUES": "env,high",
            "CONVEYOR_APP": "proj:app",  # the command line's, not a setting
            "PATH": "/usr/bin",
        }
    )
    assert conf.task_default_queue == "env"
    assert conf.task_queues == ["env", "high"]
    with pytest.raises(ImproperlyConfigured) as caught:
        Settings().load_environment({"CONVEYOR_TASK_ALWAYS_EGAER": "true"})
    assert "environment variable CONVEYOR_TASK_ALWAYS_EGAER" in str(caught.value)
    assert "did you mean 'task_always_eager'" in str(caught.value)
    with pytest.raises(ImproperlyConfigured, match="environment variable CONVEYOR_BENCH_DB"):
        Settings().load_environment({"CONVEYOR_BENCH_DB": "/tmp/x.db"})


def test_a_config_module_is_read_when_the_settings_are_first_needed() -> None:
    celeryconfig = types.ModuleType("celeryconfig")
    app = make_app()
    app.config_from_object(celeryconfig)
    # the module gets its values after config_from_object, as a half-imported one would
    celeryconfig.task_default_queue = "late"  # type: ignore[attr-defined]
    celeryconfig.result_expires = timedelta(minutes=5)  # type: ignore[attr-defined]
    celeryconfig.helper = lambda: None  # type: ignore[attr-defined]

    assert app.conf.task_default_queue == "late"
    assert app.conf.result_expires == 300.0


def test_later_sources_win_in_the_order_they_happen() -> None:
    class Config:
        task_default_queue = "from-object"
        task_default_priority = 4

    app = make_app(task_default_queue="from-keyword")
    app.conf.task_default_priority = 1
    app.config_from_object(Config)
    assert (app.conf.task_default_queue, app.conf.task_default_priority) == ("from-object", 4)
    app.conf.task_default_queue = "assigned"
    assert app.conf.task_default_queue == "assigned"


def test_a_typo_in_a_config_object_raises_where_the_settings_are_read() -> None:
    class Config:
        task_always_eagr = True
        celery_is_nice = True  # not a setting prefix: an attribute of the object's own

    app = make_app()
    app.config_from_object(Config)
    with pytest.raises(ImproperlyConfigured, match="did you mean 'task_always_eager'"):
        _ = app.conf.task_always_eager


def test_override_applies_for_the_block_only() -> None:
    class Config:
        task_always_eager = False

    app = make_app()
    app.config_from_object(Config)
    with app.conf.override(task_always_eager=True):
        assert app.conf.task_always_eager is True
        Config.task_always_eager = True  # the source changes meanwhile
        app.config_from_object(Config)
    assert app.conf.task_always_eager is True  # the source's value, not the one saved


def test_a_new_broker_url_reaches_the_app_at_once() -> None:
    app = make_app()
    first = app.broker
    app.conf.broker_url = "memory://other"
    assert app.broker is not first  # rebuilt from the new URL
    assert app.broker_url == "memory://other"
    handed = MemoryBroker()
    given = Conveyor("given", broker=handed, set_as_current=False)
    given.conf.broker_url = "memory://other"
    assert given.broker is handed  # a broker handed over is the app's own choice


def test_celerys_beat_scheduler_setting_selects_the_django_store() -> None:
    app = make_app(beat_scheduler="django_celery_beat.schedulers:DatabaseScheduler")
    assert app.conf.beat_store == "conveyor.contrib.django.store:DjangoStore"
    default = make_app(beat_scheduler="celery.beat:PersistentScheduler")
    assert default.conf.beat_store is None


@pytest.mark.parametrize("url", ["amqp://guest:secret@rabbit//", "pyamqp://rabbit//"])
def test_a_rabbitmq_broker_url_says_it_is_not_supported_and_what_to_use(url: str) -> None:
    app = Conveyor("rabbit", broker=url, set_as_current=False)
    with pytest.raises(ImproperlyConfigured) as caught:
        _ = app.broker
    message = str(caught.value)
    assert message.startswith("the broker_url setting: ")
    assert "RabbitMQ is not supported; use Redis (redis://host:6379/0)" in message
    assert "secret" not in message


def test_a_bad_url_names_the_setting_it_came_from() -> None:
    app = Conveyor("urls", broker="memory://", backend="rpc://", set_as_current=False)
    with pytest.raises(ImproperlyConfigured, match="^the result_backend setting: 'rpc://'"):
        _ = app.backend
    app.conf.result_backend = "sqlite://db-host/results.db"
    with pytest.raises(ImproperlyConfigured, match="^the result_backend setting: bad SQLite"):
        _ = app.backend
    app.conf.broker_url = "sqlite://db-host/broker.db"
    with pytest.raises(ImproperlyConfigured, match="^the broker_url setting: bad SQLite"):
        _ = app.broker
