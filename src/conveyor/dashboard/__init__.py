"""The web dashboard: watch and steer the cluster from a browser.

``pip install 'conveyor-tasks[dashboard]'``, then ``conveyor dashboard -A proj`` serves it
on 127.0.0.1:5555; ``create_app(app)`` gives the ASGI app to mount elsewhere. It reads the
broker, result backend and schedule store the app already has: no extra server.
"""

from __future__ import annotations

from .web import create_app

__all__ = ["create_app"]
