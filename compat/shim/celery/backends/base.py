"""``celery.backends.base``: Celery's backend class tree. Conveyor's backends implement a
narrower interface (``conveyor.backends.base.ResultBackend``), so none of these map; the
stand-ins keep ``isinstance`` checks false and fail when used."""

from celery._bridge import bind

bind(
    globals(),
    {"Backend": None, "BaseKeyValueStoreBackend": None, "SyncBackendMixin": None},
)
