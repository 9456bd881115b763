"""``celery.backends``: Celery's result backend classes have no counterpart in Conveyor."""
