"""The Celery app factory and the queues: shared by the web process (which only sends tasks by
name) and the workers (which register the tasks on it)."""

from collections.abc import Sequence
from typing import Any

from celery import Celery
from kombu import Exchange, Queue

from app.config import Settings
from app.pipeline import fs_transport

#: cpu: ingest, Tesseract, rules; llm: calls to OpenAI-compatible endpoints; gpu: local models.
QUEUES = ("cpu", "llm", "gpu")


def broker_options(settings: Settings) -> dict[str, Any]:
    """Transport options; the filesystem transport reads and writes one shared folder."""
    if not settings.uses_embedded_broker:
        # Redis re-delivers an unacknowledged task after this long; stage leases cover the rest.
        return {"visibility_timeout": 3600}
    folder = settings.broker_folder
    for sub in ("queue", "processed", "control"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    return {
        "data_folder_in": str(folder / "queue"),
        "data_folder_out": str(folder / "queue"),
        "processed_folder": str(folder / "processed"),
        # Exchange tables; kombu's default is "control" in the current directory.
        "control_folder": str(folder / "control"),
        "store_processed": False,
        "polling_interval": 0.05,
    }


def create_celery(settings: Settings, *, include: Sequence[str] = ()) -> Celery:
    """A Celery app for these settings; `include` names the task modules a worker imports."""
    broker = settings.resolved_broker_url
    if settings.uses_embedded_broker:
        broker = f"{fs_transport.ALIAS}://"
    app = Celery("histocr", broker=broker, include=list(include))
    app.conf.update(
        broker_transport_options=broker_options(settings),
        broker_connection_retry_on_startup=True,
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue="cpu",
        task_queues=[Queue(name, Exchange(name), routing_key=name) for name in QUEUES],
        task_serializer="json",
        accept_content=["json"],
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
    )
    return app
