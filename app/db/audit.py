"""The audit trail: every create, change and delete a user makes, written where it happens.

A request's session carries its actor (`session.info["actor"]`, set by the API's session
dependency); each flush of such a session writes one `audit_events` row per tracked row it
inserts, updates or deletes, in the same transaction. Nothing a route does can forget it, and
work the workers do on their own (no actor) is not attributed to anyone.
"""

from datetime import timedelta
from typing import Any

from sqlalchemy import event, func, insert, inspect, select, update
from sqlalchemy.orm import Session

from app.db.accounts import ApiToken, AuditEvent, Membership, User
from app.db.session import utcnow
from app.db.tables import Document, GroundTruth, Project, Run, RunEvaluation
from app.errors import TooManyRequests
from app.identity import Actor

#: Row types whose changes are recorded, by the name the trail gives them.
TRACKED: dict[type, str] = {
    Project: "project",
    Document: "document",
    Run: "run",
    GroundTruth: "ground_truth",
    RunEvaluation: "evaluation",
    Membership: "membership",
    User: "user",
    ApiToken: "token",
}
#: Columns a worker or the pipeline changes; a user's request that only touches these is not
#: an edit worth a row (a run's status moving on, say).
_NOT_EDITS = {"status", "finished_at", "metrics", "error", "page_count", "last_used_at"}
#: Columns never copied into the trail (secrets and their hashes).
_SECRET = {"password_hash", "token_hash", "key_hash", "csrf_token"}
_PENDING = "histocr_audit_pending"


def session_actor(session: Session) -> Actor | None:
    """The actor a session acts for, if it was opened for a request."""
    actor = session.info.get("actor")
    return actor if isinstance(actor, Actor) else None


def _project_id(session: Session, row: Any) -> int | None:
    if isinstance(row, Project):
        return int(row.id)
    if isinstance(row, GroundTruth):
        document = session.get(Document, row.document_id)
        return document.project_id if document is not None else None
    if isinstance(row, RunEvaluation):
        run = session.get(Run, row.run_id)
        return run.project_id if run is not None else None
    project_id = getattr(row, "project_id", None)
    return int(project_id) if project_id is not None else None


def _target_id(row: Any) -> int | None:
    if isinstance(row, Membership):
        return int(row.user_id)
    return getattr(row, "id", None)


def _label(row: Any) -> dict[str, Any]:
    """A few identifying values, so the trail reads without joins (never a secret)."""
    keys = (
        "name", "filename", "kind", "role", "read_only", "version", "number", "reason",
        "page_id", "document_id", "run_id",
    )  # fmt: skip
    return {k: getattr(row, k) for k in keys if hasattr(row, k) and k not in _SECRET}


def _changed(row: Any) -> list[str]:
    state = inspect(row)
    return sorted(
        attr.key
        for attr in state.mapper.column_attrs
        if state.attrs[attr.key].history.has_changes() and attr.key not in _SECRET
    )


@event.listens_for(Session, "before_flush")
def _collect(session: Session, _context: Any, _instances: Any) -> None:
    actor = session_actor(session)
    if actor is None:
        return
    pending: list[tuple[str, Any, dict[str, Any]]] = session.info.setdefault(_PENDING, [])
    for row in session.deleted:
        if type(row) in TRACKED:
            pending.append(("delete", row, _label(row)))
    for row in session.dirty:
        if type(row) in TRACKED and session.is_modified(row):
            changed = [key for key in _changed(row) if key not in _NOT_EDITS]
            if changed:
                pending.append(("update", row, {"changed": changed}))
    for row in session.new:
        if type(row) in TRACKED:
            pending.append(("create", row, {}))
    for kind, table in (("uploads", Document), ("runs", Run)):
        adding = sum(isinstance(row, table) for row in session.new)
        if adding:
            check_quota(session, actor, kind, adding)


@event.listens_for(Session, "after_flush")
def _write(session: Session, _context: Any) -> None:
    actor = session_actor(session)
    pending = session.info.pop(_PENDING, None)
    if actor is None or not pending:
        return
    now = utcnow()
    rows = []
    for action, row, detail in pending:
        rows.append(
            {
                "at": now,
                "user_id": actor.user_id,
                "actor": actor.name,
                "action": action,
                "target_type": TRACKED[type(row)],
                "target_id": _target_id(row),
                "project_id": _project_id(session, row),
                "detail": detail or _label(row) or None,
            }
        )
    session.connection().execute(insert(AuditEvent), rows)


#: Audit actions that count against each daily quota.
QUOTA_ACTIONS = {"uploads": ("create", "document"), "runs": ("create", "run")}


def check_quota(session: Session, actor: Actor, kind: str, adding: int = 1) -> None:
    """Refuse (429) when `adding` more uploads or runs would pass the actor's daily quota."""
    limit = actor.quota_uploads_per_day if kind == "uploads" else actor.quota_runs_per_day
    if limit is None or actor.user_id is None:
        return
    action, target = QUOTA_ACTIONS[kind]
    # Take the user's row first (a no-op update: a row lock on PostgreSQL, the write lock on
    # SQLite), so two requests of one user at the same moment count one after the other.
    session.connection().execute(
        update(User).where(User.id == actor.user_id).values(name=User.name)
    )
    since = utcnow() - timedelta(days=1)
    used = int(
        session.scalar(
            select(func.count()).where(
                AuditEvent.user_id == actor.user_id,
                AuditEvent.action == action,
                AuditEvent.target_type == target,
                AuditEvent.at > since,
            )
        )
        or 0
    )
    if used + adding > limit:
        raise TooManyRequests(
            f"quota: {actor.name} may make {limit} {kind} a day and has made {used} "
            "in the last 24 hours",
            retry_after=3600,
        )
