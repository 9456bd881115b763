"""The harness that runs Celery's own tests against Conveyor (see compat/README.md)."""
