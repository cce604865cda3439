"""The transactional outbox: the tasks a request (or a sweep) starts are rows written in the
transaction of the data they refer to, published right after the commit, and published again by
the recovery sweep while the broker cannot be reached.

Before, a route committed its rows and then published: with the broker down the publish raised
after the commit (a 500 for work that was stored and later done, so a client retried and got it
twice) or waited on the socket until the client gave up. Now the committed rows are the promise
that the work is sent; the answer does not depend on the broker.

Delivery is at least once: a task may be sent twice (a sender dies between the publish and the
delete), which the tasks allow (they claim their rows by conditional update).
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Engine, Table, delete, event, func, insert, select, text, update
from sqlalchemy.orm import Session

from app.db.session import utcnow
from app.db.tables import OutboxMessage
from app.pipeline.dispatch import Dispatch, Dispatcher

logger = logging.getLogger(__name__)

#: How long the sender that wrote a row owns it before a sweep may send it: far more than the
#: rest of a request plus a publish's bound (dispatch.PUBLISH_RETRY_POLICY, about two seconds),
#: so that the request's own publish and a sweep do not both send it.
CLAIM_S = 60.0
#: Rows one sweep claims at a time.
SWEEP_BATCH = 500
#: Ids per statement (SQLite allows 32,766 variables; one round trip each on PostgreSQL).
CHUNK = 1000
#: Where a session keeps the rows it publishes after its commit (`Session.info`).
INFO_KEY = "histocr.outbox"
#: The table, for statements that need nothing of the ORM (they run on every request).
OUTBOX = cast(Table, OutboxMessage.__table__)


@dataclass(frozen=True)
class Claimed:
    """An outbox row this process is about to publish: its id and its task."""

    id: int
    dispatch: Dispatch


@dataclass
class _AfterCommit:
    sender: Dispatcher
    messages: list[Claimed] = field(default_factory=list)


class Outbox:
    """The tasks of one unit of work: `add` them before the commit, they are sent after it."""

    def __init__(self, session: Session, sender: Dispatcher) -> None:
        self.session = session
        self.sender = sender

    def add(self, dispatches: Sequence[Dispatch]) -> None:
        """Record the tasks in the session's transaction; published when it commits."""
        enqueue(self.session, dispatches, sender=self.sender)


def enqueue(
    session: Session, dispatches: Sequence[Dispatch], *, sender: Dispatcher | None = None
) -> None:
    """Write the tasks as outbox rows in the session's transaction.

    With a sender the rows are claimed by this session and published as soon as it commits
    (nothing is sent when it rolls back); without one they wait for the next sweep.
    """
    if not dispatches:
        return
    now = utcnow()
    available = now + timedelta(seconds=CLAIM_S) if sender is not None else now
    # One statement for all of a run's tasks (thousands of pages: one round trip), with the ids
    # in the order given, to delete the rows once they are sent.
    ids = session.scalars(
        insert(OUTBOX).returning(OUTBOX.c.id, sort_by_parameter_order=True),
        [
            {
                "task": item.task,
                "args": list(item.args),
                "queue": item.queue,
                "countdown": item.countdown,
                "created_at": now,
                "available_at": available,
                "attempts": 0,
            }
            for item in dispatches
        ],
    ).all()
    if sender is None:
        return
    batches: list[_AfterCommit] = session.info.setdefault(INFO_KEY, [])
    batch = next((b for b in batches if b.sender is sender), None)
    if batch is None:
        batch = _AfterCommit(sender)
        batches.append(batch)
    batch.messages.extend(Claimed(i, item) for i, item in zip(ids, dispatches, strict=True))


@event.listens_for(Session, "after_commit")
def _publish_after_commit(session: Session) -> None:
    batches: list[_AfterCommit] = session.info.pop(INFO_KEY, [])
    if not batches:
        return
    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine  # a session on a connection
    for batch in batches:
        publish(engine, batch.sender, batch.messages)


@event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session: Session) -> None:
    session.info.pop(INFO_KEY, None)  # the rows are gone with the transaction


def publish(
    engine: Engine, sender: Dispatcher, messages: Sequence[Claimed], *, one_by_one: bool = False
) -> int:
    """Publish claimed rows in order and delete those the broker took; returns how many.

    At once (a request's tasks, right after its commit): one call to the sender, since each
    call costs a pool checkout; when it fails none counts as sent (the broker is down; a task
    it took before failing is sent again, which tasks allow). One by one (the sweep): stops at
    the first failure, which alone counts an attempt, so that a task the broker refuses goes
    behind the others. Either way the unsent rows are handed back to the sweep at once.
    Never raises: it runs after a commit, where an error is no answer to give a client.
    """
    sent: list[int] = []
    error: str | None = None
    for group in [[m] for m in messages] if one_by_one else [list(messages)]:
        try:
            sender.send([m.dispatch for m in group])
        except Exception as exc:  # any failure to publish: the rows stay for the sweep
            error = f"{type(exc).__name__}: {exc}"[:2000]
            break
        sent.extend(m.id for m in group)
    unsent = [m.id for m in messages[len(sent) :]]
    failed = unsent[:1] if one_by_one else unsent
    try:
        _settle(engine, sent=sent, failed=failed if error else [], unsent=unsent, error=error)
    except Exception:  # the rows stay claimed; a sweep sends them again after CLAIM_S
        logger.exception("outbox: cannot record %d published task(s)", len(sent))
    if error is not None:
        logger.warning(
            "outbox: the broker did not take a task (%s); %d task(s) left to the recovery sweep",
            error,
            len(unsent),
        )
    return len(sent)


def _settle(
    engine: Engine, *, sent: list[int], failed: list[int], unsent: list[int], error: str | None
) -> None:
    """Delete the sent rows; count an attempt on the failed ones; make the unsent ones due."""
    now = utcnow()
    # A connection, not a session: this runs on every request that starts work, and the
    # statements need nothing of the ORM.
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            # Not worth a wait for the disk on every request: a delete lost in a crash only
            # means the task is sent once more, which tasks allow.
            connection.execute(text("SET LOCAL synchronous_commit TO OFF"))
        for start in range(0, len(sent), CHUNK):
            connection.execute(delete(OUTBOX).where(OUTBOX.c.id.in_(sent[start : start + CHUNK])))
        for start in range(0, len(failed), CHUNK):
            connection.execute(
                update(OUTBOX)
                .where(OUTBOX.c.id.in_(failed[start : start + CHUNK]))
                .values(attempts=OUTBOX.c.attempts + 1, last_error=error)
            )
        for start in range(0, len(unsent), CHUNK):
            connection.execute(
                update(OUTBOX)
                .where(OUTBOX.c.id.in_(unsent[start : start + CHUNK]))
                .values(available_at=now)
            )


def send_due(engine: Engine, sender: Dispatcher, *, batch: int = SWEEP_BATCH) -> int:
    """Publish every row that is due (its request could not, or died first); returns how many.

    Rows that failed fewer times go first, oldest first among equals: a task the broker keeps
    refusing does not hold up the others. Stops at the first failure, as `publish` does.
    """
    total = 0
    while True:
        claimed = _claim_due(engine, batch)
        if not claimed:
            return total
        sent = publish(engine, sender, claimed, one_by_one=True)
        total += sent
        if sent < len(claimed) or len(claimed) < batch:
            return total


def _claim_due(engine: Engine, batch: int) -> list[Claimed]:
    """Claim up to `batch` due rows by conditional update, so that two sweeps (the web process's
    and each worker's) never send the same row: the second finds them no longer due (PostgreSQL
    skips rows another claim holds; SQLite has one writer)."""
    now = utcnow()
    due = (
        select(OutboxMessage.id)
        .where(OutboxMessage.available_at <= now)
        .order_by(OutboxMessage.attempts, OutboxMessage.id)
        .limit(batch)
        .with_for_update(skip_locked=True)
    )
    with Session(engine) as session, session.begin():
        rows = session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(due.scalar_subquery()), OutboxMessage.available_at <= now)
            .values(available_at=now + timedelta(seconds=CLAIM_S))
            .returning(
                OutboxMessage.id,
                OutboxMessage.task,
                OutboxMessage.args,
                OutboxMessage.queue,
                OutboxMessage.countdown,
                OutboxMessage.created_at,
            )
            .execution_options(synchronize_session=False)
        ).all()
    return [
        Claimed(
            row.id, _dispatch(row.task, row.args, row.queue, row.countdown, row.created_at, now)
        )
        for row in sorted(rows, key=lambda r: r.id)
    ]


def _dispatch(
    task: str,
    args: list[object],
    queue: str,
    countdown: float | None,
    created_at: datetime,
    now: datetime,
) -> Dispatch:
    """The task as it was meant: a delay counts from when it was recorded, not from now."""
    if countdown is not None:
        countdown = max(0.0, countdown - (now - created_at).total_seconds())
    return Dispatch(task=task, args=tuple(args), queue=queue, countdown=countdown)


def pending_count(engine: Engine) -> int:
    """Tasks recorded and not yet sent."""
    with Session(engine) as session:
        return session.scalar(select(func.count()).select_from(OutboxMessage)) or 0
