"""Orchestration: run configs, what is ready to run, dispatching, recovery."""
