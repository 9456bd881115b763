"""Credentials in broker and result URLs never reach a log line or an error message."""

from __future__ import annotations

import pytest

from conveyor import Conveyor
from conveyor.backends import backend_from_url
from conveyor.brokers import broker_from_url
from conveyor.brokers import redact_url as exported
from conveyor.coordination import coordinator_from_url
from conveyor.exceptions import ImproperlyConfigured
from conveyor.redaction import is_secret_option, redact_text, redact_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        # the password of the user information; a user name alone is shown
        ("redis://:s3cret@host:6379/0", "redis://:***@host:6379/0"),
        ("redis://user:s3cret@host/0", "redis://user:***@host/0"),
        ("rediss://user:s3cret@host:6380/2?ssl_cert_reqs=none", None),
        ("redis://user@host/0", "redis://user@host/0"),
        ("redis://:s3cret@[::1]:6379/0", "redis://:***@[::1]:6379/0"),
        ("redis://:p%40ss%2Fword@host/0", "redis://:***@host/0"),
        # unencoded "@" and "/" in a password: hidden with it, the host still shown
        ("redis://:s3@cret@host/0", "redis://:***@host/0"),
        ("redis://:s3/cret@host/0", "redis://:***@host/0"),
        # a port that is not a number (the URL an error message is about) is no obstacle
        ("redis://:s3cret@host:port/0", "redis://:***@host:port/0"),
        # query options that carry credentials, however they are spelled
        ("redis://host/0?password=s3cret", "redis://host/0?password=***"),
        ("redis://host/0?PASSWORD=s3cret", "redis://host/0?PASSWORD=***"),
        ("redis://host/0?pass%77ord=s3cret", "redis://host/0?pass%77ord=***"),
        (
            "redis://host/0?prefix=app:&sentinel_password=s3cret&socket_timeout=3",
            "redis://host/0?prefix=app:&sentinel_password=***&socket_timeout=3",
        ),
        ("rediss://host/0?ssl_password=s3cret", "rediss://host/0?ssl_password=***"),
        ("redis://host/0?token=s3cret&api_key=s3cret", "redis://host/0?token=***&api_key=***"),
        ("redis://host/0?client_secret=s3cret#frag", "redis://host/0?client_secret=***#frag"),
        ("redis://host/0?username=ada&password=", "redis://host/0?username=ada&password="),
        ("redis://u:s3cret@host/0?password=s3cret", "redis://u:***@host/0?password=***"),
        ("unix:///run/redis.sock?db=0&password=s3cret", "unix:///run/redis.sock?db=0&password=***"),
        ("sqlite:////srv/x.db?timeout=5&key=s3cret", "sqlite:////srv/x.db?timeout=5&key=***"),
        # nothing secret: unchanged
        ("redis://host:6379/0?client_name=ada@example", None),
        ("sqlite:////srv/team@work/conveyor.db", None),
        ("sqlite://", None),
        ("memory://", None),
        ("MemoryBackend", None),
        ("", None),
    ],
)
def test_redact_url(url: str, shown: str | None) -> None:
    expected = url.replace("s3cret", "***") if shown is None else shown
    assert redact_url(url) == expected
    assert "s3" not in redact_url(url)
    assert exported is redact_url


@pytest.mark.parametrize(
    "name", ["password", "sentinel_password", "ssl_password", "Token", "api_key", "secret"]
)
def test_secret_option_names(name: str) -> None:
    assert is_secret_option(name)


@pytest.mark.parametrize("name", ["username", "prefix", "db", "socket_timeout", "ssl_cert_reqs"])
def test_other_option_names_are_shown(name: str) -> None:
    assert not is_secret_option(name)


def test_redact_text_hides_pieces_of_a_misread_password() -> None:
    url = "redis://:pass/word@host/0?password=s3cret-xyz"
    text = "Port could not be cast to integer value as 'pass'; AUTH s3cret-xyz failed"
    assert (
        redact_text(text, url)
        == "Port could not be cast to integer value as '***'; AUTH *** failed"
    )
    assert redact_text("Error 111 connecting to host:6379.", url) == (
        "Error 111 connecting to host:6379."
    )


@pytest.mark.parametrize(
    "factory", [broker_from_url, backend_from_url, coordinator_from_url], ids=lambda f: f.__name__
)
@pytest.mark.parametrize(
    "url",
    [
        "amqp://guest:s3cret@host//",
        "sqlite:///x.db?password=s3cret",
        "sqlite://host/x.db?token=s3cret",
    ],
)
def test_configuration_errors_do_not_show_the_secret(factory: object, url: str) -> None:
    with pytest.raises(ImproperlyConfigured) as caught:
        factory(url)  # type: ignore[operator]
    assert "s3cret" not in str(caught.value)
    assert "***" in str(caught.value)


def test_redis_url_errors_do_not_show_the_secret() -> None:
    pytest.importorskip("redis")
    from conveyor.brokers.redis import RedisBroker

    for url in (
        "redis://:s3cret/pw@host:6379/0",
        "redis://:s3cret@host:6379/0?publish_retries=many",
        "redis://:s3cret@host:6379/0?password=s3cret&socket_timeout=soon",
    ):
        with pytest.raises(ImproperlyConfigured) as caught:
            RedisBroker(url)
        assert "s3cret" not in str(caught.value), url


def test_the_app_repr_hides_the_secret() -> None:
    app = Conveyor("redacted", broker="sqlite:////tmp/never-opened.db?password=s3cret")
    assert "s3cret" not in repr(app)
