"""A tasks module that configures logging itself, through Celery's ``setup_logging``
signal: the worker must then leave logging alone (no handler of its own), so each line
the application logs is printed once, in the application's format.

The broker comes from CONVEYOR_BROKER_URL, set by the test to a file of its own.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from conveyor import Conveyor
from conveyor.signals import setup_logging

BROKER_URL = os.environ.get("CONVEYOR_BROKER_URL", "")
if not BROKER_URL.startswith(("sqlite:////", "redis://")):
    raise RuntimeError(f"own_logging_tasks needs CONVEYOR_BROKER_URL ({BROKER_URL!r})")

app = Conveyor("own-logging", broker=BROKER_URL, broker_lease=2)
logger = logging.getLogger("shop.tasks")


@setup_logging.connect
def configure_logging(loglevel: Any = None, **kwargs: Any) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("SHOP %(levelname)s %(name)s: %(message)s"))
    shop = logging.getLogger("shop")
    shop.addHandler(handler)
    shop.setLevel(loglevel)


@app.task
def restock(sku: str) -> str:
    logger.warning("restocking %s", sku)
    return sku
