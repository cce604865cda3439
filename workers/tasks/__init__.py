"""Celery tasks; each takes IDs, loads rows, calls an engine and writes results."""
