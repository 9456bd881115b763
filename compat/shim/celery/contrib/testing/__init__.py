"""``celery.contrib.testing``: the helpers Celery's integration tests use."""
