"""What a Redis server's settings risk for the queues it holds, told when a worker starts."""

from __future__ import annotations

from typing import Any

from redis.exceptions import RedisError

from ..redaction import redact_text
from ..redis_connection import UNREACHABLE, RedisLink

__all__ = ["config_warnings"]


def config_warnings(link: RedisLink) -> list[str]:
    """Warnings about the server's settings, for the worker to print at start.

    Any ``maxmemory-policy`` but ``noeviction`` lets Redis delete queue keys when it
    runs out of memory; no AOF and no RDB snapshots lose every queued task on restart.
    Never raises: an unreachable server or a refused CONFIG is a warning too.
    """
    url = link.safe_url
    client = link.client
    warnings: list[str] = []
    try:
        policy = _config_value(client.config_get("maxmemory-policy"), "maxmemory-policy")
    except UNREACHABLE as exc:
        reason = redact_text(str(exc), link.url)
        return [f"could not reach Redis at {url} to check its configuration: {reason}"]
    except RedisError as exc:
        reason = redact_text(str(exc), link.url)
        return [
            f"could not read maxmemory-policy of Redis at {url} ({reason}); unless it is "
            "noeviction, Redis may delete queued tasks when it runs out of memory"
        ]
    if policy is None:
        warnings.append(
            f"Redis at {url} did not report its maxmemory-policy; unless it is "
            "noeviction, Redis may delete queued tasks when it runs out of memory"
        )
    elif policy != "noeviction":
        warnings.append(
            f"Redis at {url} has maxmemory-policy {policy}: when it runs out of memory "
            "it may delete queued tasks and results; set maxmemory-policy noeviction"
        )
    try:
        config = client.config_get("appendonly")
        config.update(client.config_get("save"))
    except (RedisError, *UNREACHABLE):
        return warnings
    appendonly = _config_value(config, "appendonly")
    save = _config_value(config, "save")
    if appendonly == "no" and not (save or "").strip():
        warnings.append(
            f"Redis at {url} persists nothing (appendonly no, no save points): every "
            "queued task is lost if it restarts; enable appendonly"
        )
    return warnings


def _config_value(config: dict[Any, Any], name: str) -> str | None:
    for key, value in config.items():
        text = key.decode() if isinstance(key, bytes) else str(key)
        if text == name:
            return value.decode() if isinstance(value, bytes) else str(value)
    return None
