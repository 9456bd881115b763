"""``celery.utils``: the helpers Celery's tests import from the package itself."""

from celery._bridge import bind

bind(globals(), {"uuid": ("conveyor.utils", "conveyor")})
