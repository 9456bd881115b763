"""``python -m conveyor.cli``."""

from . import main

main()
