"""``celery.contrib``: the pytest plugin and the testing helpers."""
