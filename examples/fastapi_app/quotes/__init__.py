"""A FastAPI service that hands work to Conveyor tasks and awaits their results."""
