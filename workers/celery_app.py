"""The workers' Celery app: the factory's app for this process's settings, with the tasks."""

from app.config import get_settings
from app.pipeline.celery_app import create_celery

TASK_MODULES = (
    "workers.tasks.ingest",
    "workers.tasks.stages",
    "workers.tasks.evaluate",
    "workers.tasks.train",
)

celery_app = create_celery(get_settings(), include=TASK_MODULES)
