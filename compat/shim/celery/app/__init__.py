"""``celery.app``: the package of Celery's app internals; only the request context maps."""
