"""Stand-in for the pytest-subtests plugin: pytest 9 has the ``subtests`` fixture built in,
and Celery's tests only import this module to make sure the fixture exists."""
