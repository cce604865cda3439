"""A background loop that re-queues work left behind by dead workers or lost messages."""

import logging
import threading
from datetime import timedelta

from sqlalchemy import delete
from sqlalchemy.orm import Session

from app.config import Settings
from app.db.session import get_engine, session_scope, utcnow
from app.db.tables import IDEMPOTENCY_KEY_TTL_S, IdempotencyKey
from app.pipeline.dispatch import Dispatch, Dispatcher
from app.pipeline.outbox import enqueue, send_due
from app.pipeline.scheduler import recover_stale
from app.services.recognizers import fail_stale_trainings

logger = logging.getLogger(__name__)


def recover_once(settings: Settings, dispatcher: Dispatcher) -> list[Dispatch]:
    """One sweep: reset expired leases and record what became runnable in the outbox (in the
    same transaction), then send every task due there, those a request could not send
    included; forget Idempotency-Keys past their time; fail recogniser trainings whose worker
    stopped beating (they are not resumed: app/services/recognizers.py)."""
    with session_scope(settings.resolved_database_url) as session:
        dispatches = recover_stale(
            session,
            lease_s=settings.stage_lease_s,
            requeue_after_s=settings.stage_requeue_after_s,
            max_attempts=settings.stage_max_attempts,
        )
        enqueue(session, dispatches)
        _forget_expired_idempotency_keys(session)
        for stale in fail_stale_trainings(session, lease_s=settings.stage_lease_s):
            logger.warning("recogniser training %s: its worker stopped; failed", stale.id)
    sent = send_due(get_engine(settings.resolved_database_url), dispatcher)
    if sent:
        logger.info("recovery sent %d task(s) from the outbox", sent)
    return dispatches


def _forget_expired_idempotency_keys(session: Session) -> None:
    cutoff = utcnow() - timedelta(seconds=IDEMPOTENCY_KEY_TTL_S)
    session.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at < cutoff))


class RecoveryLoop:
    """Runs `recover_once` every `recovery_interval_s` seconds in a daemon thread."""

    def __init__(self, settings: Settings, dispatcher: Dispatcher) -> None:
        self.settings = settings
        self.dispatcher = dispatcher
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="histocr-recovery", daemon=True)

    def start(self) -> "RecoveryLoop":
        """Start sweeping."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop after the current sweep."""
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                sent = recover_once(self.settings, self.dispatcher)
                if sent:
                    logger.info("recovery queued %d task(s)", len(sent))
            except Exception:  # the loop must outlive a database hiccup; it tries again
                logger.exception("recovery sweep failed")
            self._stop.wait(self.settings.recovery_interval_s)
