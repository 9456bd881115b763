"""Celery's setting names, for reading a Celery project's configuration unchanged.

A setting Celery documents but Conveyor has no use for (``broker_transport_options``,
``result_extended``, ...) is accepted with one warning naming it; a name neither knows is
an error. Celery's pre-4.0 upper-case names (``CELERY_ALWAYS_EAGER``, ``BROKER_URL``,
``CELERYD_CONCURRENCY``) map to the new ones, as Celery maps them.
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Iterable

__all__ = [
    "CELERY_ONLY",
    "DJANGO_STORE",
    "IgnoredSettingWarning",
    "close_name",
    "old_name",
    "store_for_scheduler",
    "warn_ignored",
]

_CELERY_ONLY_NAMES = """
    arangodb_backend_settings
    azureblockblob_base_path azureblockblob_connection_timeout azureblockblob_container_name
    azureblockblob_read_timeout azureblockblob_retry_increment_base
    azureblockblob_retry_initial_backoff_sec azureblockblob_retry_max_attempts
    beat_max_loop_interval beat_schedule_filename beat_scheduler beat_sync_every
    broker_channel_error_retry broker_connection_max_retries broker_connection_retry
    broker_connection_retry_on_startup broker_connection_timeout broker_failover_strategy
    broker_heartbeat broker_heartbeat_checkrate broker_host broker_login_method
    broker_native_delayed_delivery_queue_type broker_password broker_pool_limit broker_port
    broker_read_url broker_transport broker_transport_options broker_use_ssl broker_user
    broker_vhost broker_write_url
    cache_backend cache_backend_options
    cassandra_auth_kwargs cassandra_auth_provider cassandra_bundle_path cassandra_entry_ttl
    cassandra_keyspace cassandra_options cassandra_port cassandra_read_consistency
    cassandra_secure_bundle_path cassandra_servers cassandra_table
    cassandra_write_consistency
    control_exchange control_queue_expires control_queue_ttl
    cosmosdbsql_collection_name cosmosdbsql_consistency_level cosmosdbsql_database_name
    cosmosdbsql_max_retry_attempts cosmosdbsql_max_retry_wait_time
    couchbase_backend_settings
    database_create_tables_at_setup database_engine_options database_short_lived_sessions
    database_table_names database_table_schemas database_url
    elasticsearch_max_retries elasticsearch_retry_on_timeout elasticsearch_save_meta_as_text
    elasticsearch_timeout
    enable_utc
    event_exchange event_queue_expires event_queue_prefix event_queue_ttl event_serializer
    gcs_base_path gcs_bucket gcs_project gcs_ttl
    mongodb_backend_settings
    override_backends
    redis_backend_health_check_interval redis_backend_use_ssl redis_db redis_host
    redis_max_connections redis_password redis_port redis_retry_on_timeout
    redis_socket_connect_timeout redis_socket_keepalive redis_socket_timeout redis_username
    result_accept_content result_backend_always_retry
    result_backend_base_sleep_between_retries_ms result_backend_max_retries
    result_backend_max_sleep_between_retries_ms result_backend_thread_safe
    result_backend_transport_options result_cache_max result_chord_join_timeout
    result_chord_retry_interval result_compression result_exchange result_exchange_type
    result_extended result_persistent result_serializer
    s3_access_key_id s3_base_path s3_bucket s3_endpoint_url s3_region s3_secret_access_key
    security_cert_store security_certificate security_digest security_key
    security_key_password
    task_acks_on_failure_or_timeout task_allow_error_cb_on_chord_header task_annotations
    task_compression task_default_delivery_mode task_default_exchange
    task_default_exchange_type task_default_queue_type task_default_rate_limit
    task_default_routing_key task_inherit_parent_priority task_protocol task_publish_retry
    task_publish_retry_policy task_queue_max_priority task_reject_on_worker_lost
    task_remote_tracebacks task_store_eager_result
    task_store_errors_even_if_ignored
    worker_agent worker_autoscaler worker_cancel_long_running_tasks_on_connection_loss
    worker_consumer worker_deduplicate_successful_tasks worker_detect_quorum_queues
    worker_direct worker_disable_rate_limits worker_enable_prefetch_count_reduction
    worker_enable_remote_control worker_enable_soft_shutdown_on_idle
    worker_hijack_root_logger worker_log_color worker_log_format worker_lost_wait
    worker_max_memory_per_child worker_pool_putlocks worker_pool_restarts
    worker_proc_alive_timeout worker_redirect_stdouts worker_redirect_stdouts_level
    worker_soft_shutdown_timeout worker_state_db
    worker_task_log_format worker_timer worker_timer_precision
"""
CELERY_ONLY = frozenset(_CELERY_ONLY_NAMES.split())
"""Celery 5.5's documented settings that mean nothing on Conveyor's brokers and workers
(Conveyor's own settings of the same names are not in it)."""

_OLD_EXCEPTIONS = {
    "CELERY_DISABLE_RATE_LIMITS": "worker_disable_rate_limits",
    "CELERY_EAGER_PROPAGATES_EXCEPTIONS": "task_eager_propagates",
    "CELERY_ENABLE_REMOTE_CONTROL": "worker_enable_remote_control",
    "CELERY_ENABLE_UTC": "enable_utc",
    "CELERY_MAX_CACHED_RESULTS": "result_cache_max",
    "CELERY_MESSAGE_COMPRESSION": "task_compression",
    "CELERY_REDIRECT_STDOUTS": "worker_redirect_stdouts",
    "CELERY_REDIRECT_STDOUTS_LEVEL": "worker_redirect_stdouts_level",
    "CELERY_RESULT_DBURI": "database_url",
    "CELERY_RESULT_DB_SHORT_LIVED_SESSIONS": "database_short_lived_sessions",
    "CELERY_RESULT_DB_TABLENAMES": "database_table_names",
    "CELERY_RESULT_ENGINE_OPTIONS": "database_engine_options",
    "CELERY_SEND_EVENTS": "worker_send_task_events",
    "CELERY_SEND_TASK_SENT_EVENT": "task_send_sent_event",
    "CELERY_TASK_RESULT_EXPIRES": "result_expires",
    "CELERYD_TASK_SOFT_TIME_LIMIT": "task_soft_time_limit",
    "CELERYD_TASK_TIME_LIMIT": "task_time_limit",
    "CELERYD_WORKER_LOST_WAIT": "worker_lost_wait",
}
"""Old names that the prefix rules of ``old_name`` do not give."""

_OLD_PREFIXES = (
    ("CELERYBEAT_", "beat_"),
    ("CELERYD_", "worker_"),
    ("CELERY_", "task_"),
    ("BROKER_", "broker_"),
)

_REASONS = {
    "broker_transport_options": "Conveyor's brokers take their options in the URL",
    "broker_connection_retry_on_startup": "Conveyor reconnects to its broker by itself",
    "broker_connection_retry": "Conveyor reconnects to its broker by itself",
    "broker_connection_max_retries": "Conveyor reconnects to its broker by itself",
    "task_protocol": "Conveyor has one message format",
    "enable_utc": "times are always time-zone aware; `timezone` sets the crontab zone",
}

DJANGO_STORE = "conveyor.contrib.django.store:DjangoStore"
_SCHEDULERS = {
    "django": DJANGO_STORE,
    "django_celery_beat.schedulers:DatabaseScheduler": DJANGO_STORE,
    "django_celery_beat.schedulers.DatabaseScheduler": DJANGO_STORE,
    DJANGO_STORE: DJANGO_STORE,
    "celery.beat:PersistentScheduler": None,
    "celery.beat.PersistentScheduler": None,
}

_warned: set[str] = set()


class IgnoredSettingWarning(UserWarning):
    """A Celery setting that has no meaning on Conveyor was given, and is ignored."""


def old_name(key: str, known: Iterable[str]) -> str | None:
    """The new name of Celery's old upper-case setting ``key`` (None if it is not one)."""
    if key in _OLD_EXCEPTIONS:
        return _OLD_EXCEPTIONS[key]
    names = set(known) | CELERY_ONLY
    for old, new in _OLD_PREFIXES:
        if key.startswith(old) and new + key[len(old) :].lower() in names:
            return new + key[len(old) :].lower()
    return None


def close_name(name: str, known: Iterable[str]) -> str | None:
    """The one known name really close to ``name`` (a typo of it), if there is one."""
    found = difflib.get_close_matches(name, [*known, *CELERY_ONLY], n=1, cutoff=0.85)
    return found[0] if found else None


READ_AS_CELERY = frozenset({"task_allow_error_cb_on_chord_header"})
"""Celery-only settings that Conveyor reads from ``app.conf`` where Celery does, so they
are not ignored (nor warned about): ``chord.link_error`` reads this one."""


def warn_ignored(name: str, source: str | None = None) -> None:
    """Warn, once per process and name, that Celery's setting ``name`` is ignored."""
    if name in _warned or name in READ_AS_CELERY:
        return
    _warned.add(name)
    where = f" ({source})" if source else ""
    reason = _REASONS.get(name, "it has no meaning on Conveyor's brokers and workers")
    warnings.warn(
        f"Celery's setting {name!r}{where} is ignored: {reason}",
        IgnoredSettingWarning,
        stacklevel=4,
    )


def store_for_scheduler(spec: str) -> str | None:
    """The schedule store that Celery's beat scheduler ``spec`` stands for: the Django
    database store for django_celery_beat's (and for the store's own path); None for
    Celery's file-based default (Conveyor keeps schedules beside the broker)."""
    if spec in _SCHEDULERS:
        return _SCHEDULERS[spec]
    return spec
