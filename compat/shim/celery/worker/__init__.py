"""``celery.worker``: the in-process worker's internals; only the package exists here."""
