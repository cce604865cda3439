"""`Idempotency-Key` on the creating POSTs: a retry gets the first answer, not a second copy.

An archive script whose request timed out cannot know whether the server created the run. With
a key it sends the same request again and gets the answer the first one got (same status, same
JSON, header `Idempotent-Replayed: true`), and nothing is done twice.

- The key is claimed at the start of the request's transaction (a row, unique per actor and
  key) and the answer is written into that row before the commit: the data and the answer are
  committed together, or neither is.
- A second request with the key while the first is in progress waits on the first's
  uncommitted row (the unique index holds it), then replays the first's answer; after
  `IN_PROGRESS_WAIT_S` it gets a 409 to retry later (PostgreSQL: `lock_timeout`; SQLite waits
  for the write lock, as long as its busy timeout).
- The same key with another request (method, path or body): a 422 that says so.
- Only successes are stored: a request that fails leaves nothing, and its retry runs again.
- Keys belong to the actor (`actor.name`) and answer for `IDEMPOTENCY_KEY_TTL_S` (24 hours);
  the recovery sweep deletes older ones (app/pipeline/recovery.py).
"""

import hashlib
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from typing import Annotated, Any, TypeVar

from fastapi import Depends, FastAPI, Header, Request, Response
from fastapi.responses import JSONResponse
from pydantic import TypeAdapter
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile

from app.api.actor import ActorDep
from app.api.deps import SessionDep
from app.db.session import utcnow
from app.db.tables import IDEMPOTENCY_KEY_TTL_S, IdempotencyKey
from app.errors import Conflict, InvalidRequest

logger = logging.getLogger(__name__)

KEY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
#: How long a request waits for another one in progress with its key, before a 409.
IN_PROGRESS_WAIT_S = 10.0
CHUNK = 1024 * 1024

T = TypeVar("T")


class IdempotentReplay(Exception):
    """Raised by the dependency to answer with a stored response (see `install`)."""

    def __init__(self, status_code: int, body: Any) -> None:
        super().__init__(status_code)
        self.status_code = status_code
        self.body = body


class KeyInProgress(Conflict):
    """Another request with the same key has not finished."""

    @property
    def headers(self) -> dict[str, str]:
        """`Retry-After`: the first request is likely done by then."""
        return {"Retry-After": "2"}


def install(app: FastAPI) -> None:
    """Answer `IdempotentReplay` with the stored status and JSON."""

    async def replay(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, IdempotentReplay)
        return JSONResponse(
            exc.body, status_code=exc.status_code, headers={REPLAYED_HEADER: "true"}
        )

    app.add_exception_handler(IdempotentReplay, replay)


@dataclass(frozen=True)
class KeyedRequest:
    """A request that carries a key: the key, what it asks ("POST /path") and its body's hash."""

    key: str
    request: str
    fingerprint: str


async def keyed_request(
    request: Request,
    key: Annotated[
        str | None,
        Header(
            alias=KEY_HEADER,
            min_length=1,
            max_length=255,
            pattern=r"^[!-~]+$",
            description=(
                "A unique string of visible ASCII (a UUID, say) to retry this request safely: "
                "the same key with the same request within 24 hours answers what the first "
                f"answered, with `{REPLAYED_HEADER}: true`, and does nothing again; with "
                "another request it is refused (422)."
            ),
        ),
    ] = None,
) -> KeyedRequest | None:
    """The key and the request's fingerprint (async: the body is already read and parsed)."""
    if key is None:
        return None
    if request.headers.get("content-type", "").startswith(
        ("multipart/form-data", "application/x-www-form-urlencoded")
    ):
        # A retried multipart body has another boundary: the parts are compared, not the bytes.
        form = await request.form()
        fingerprint = await run_in_threadpool(_form_fingerprint, form)
    else:
        fingerprint = hashlib.sha256(_canonical_json(await request.body())).hexdigest()
    return KeyedRequest(key, f"{request.method} {request.url.path}"[:500], fingerprint)


def _canonical_json(body: bytes) -> bytes:
    """The body with key order and spacing made irrelevant (as it is to the route)."""
    try:
        return json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
    except ValueError:
        return body


def _form_fingerprint(form: FormData) -> str:
    digest = hashlib.sha256()

    def part(data: bytes) -> None:
        digest.update(b"%d:" % len(data))
        digest.update(data)

    for name, value in form.multi_items():
        part(name.encode())
        if isinstance(value, UploadFile):
            part((value.filename or "").encode())
            digest.update(b"%d:" % value.file.seek(0, 2))  # its size, then its bytes
            value.file.seek(0)
            while chunk := value.file.read(CHUNK):
                digest.update(chunk)
            value.file.seek(0)
        else:
            part(value.encode())
    return digest.hexdigest()


class Idempotency:
    """The request's claim on its key (or nothing, without a key): `save` the answer in it."""

    def __init__(
        self,
        session: Session,
        request: Request,
        response: Response,
        row: IdempotencyKey | None,
    ) -> None:
        self.session = session
        self.request = request
        self.response = response
        self.row = row

    def save(self, result: T) -> T:
        """Store the answer the route returns (call before the commit); returns `result`."""
        if self.row is None:
            return result
        route = self.request.scope["route"]
        self.row.status_code = self.response.status_code or route.status_code or 200
        self.row.response = _as_json(route.response_model, result)
        self.session.flush()
        return result


@lru_cache(maxsize=32)
def _adapter(model: Any) -> TypeAdapter[Any]:
    return TypeAdapter(model)


def _as_json(model: Any, result: Any) -> Any:
    """The JSON FastAPI sends for `result` under the route's response model."""
    if model is None:
        return json.loads(json.dumps(result, default=str))
    adapter = _adapter(model)
    return adapter.dump_python(adapter.validate_python(result, from_attributes=True), mode="json")


def claim_key(
    keyed: Annotated[KeyedRequest | None, Depends(keyed_request)],
    session: SessionDep,
    actor: ActorDep,
    request: Request,
    response: Response,
) -> Idempotency:
    """Claim the request's key in its transaction, or answer a retry with the stored answer."""
    if keyed is None:
        return Idempotency(session, request, response, None)
    stored = _find(session, actor.name, keyed.key)
    if stored is not None:
        if stored.status_code is not None and not _expired(stored):
            _answer_with(stored, keyed)
        if stored.status_code is None:  # committed without an answer: a route forgot `save`
            logger.error("Idempotency-Key row %s has no answer; replacing it", stored.id)
    row = IdempotencyKey(
        actor=actor.name,
        key=keyed.key,
        request=keyed.request,
        fingerprint=keyed.fingerprint,
        created_at=utcnow(),
    )
    try:
        with _bounded_wait(session):
            if stored is not None:  # expired: its own flush, a flush inserts before it deletes
                session.delete(stored)
                session.flush()
            session.add(row)
            session.flush()
    except IntegrityError:
        # Another request with the key committed first (this one waited for it): its answer.
        session.rollback()
        stored = _find(session, actor.name, keyed.key)
        if stored is not None and stored.status_code is not None and not _expired(stored):
            _answer_with(stored, keyed)
        raise _in_progress(keyed.key) from None
    except OperationalError as exc:
        session.rollback()
        if _is_lock_wait(exc):
            raise _in_progress(keyed.key) from None
        raise
    return Idempotency(session, request, response, row)


IdempotencyDep = Annotated[Idempotency, Depends(claim_key)]


def _find(session: Session, actor: str, key: str) -> IdempotencyKey | None:
    return session.scalar(
        select(IdempotencyKey).where(IdempotencyKey.actor == actor, IdempotencyKey.key == key)
    )


def _expired(row: IdempotencyKey) -> bool:
    return row.created_at < utcnow() - timedelta(seconds=IDEMPOTENCY_KEY_TTL_S)


def _answer_with(stored: IdempotencyKey, keyed: KeyedRequest) -> None:
    """Replay the stored answer, or refuse a key reused for another request."""
    if stored.request != keyed.request:
        raise InvalidRequest(
            f"{KEY_HEADER} {keyed.key!r} was used for {stored.request}; "
            "use a new key for a new request"
        )
    if stored.fingerprint != keyed.fingerprint:
        raise InvalidRequest(
            f"{KEY_HEADER} {keyed.key!r} was used with another body; "
            "use a new key for a new request"
        )
    raise IdempotentReplay(stored.status_code or 200, stored.response)


def _in_progress(key: str) -> KeyInProgress:
    return KeyInProgress(
        f"a request with {KEY_HEADER} {key!r} is still in progress; retry in a moment"
    )


@contextmanager
def _bounded_wait(session: Session) -> Iterator[None]:
    """Wait at most IN_PROGRESS_WAIT_S for a row lock (PostgreSQL), then the previous limit."""
    if session.get_bind().dialect.name != "postgresql":
        yield  # SQLite: the write lock's busy timeout bounds the wait
        return
    previous = session.execute(
        text("SELECT current_setting('lock_timeout'), set_config('lock_timeout', :limit, true)"),
        {"limit": f"{int(IN_PROGRESS_WAIT_S * 1000)}ms"},
    ).scalar_one()
    yield
    session.execute(text("SELECT set_config('lock_timeout', :limit, true)"), {"limit": previous})


def _is_lock_wait(exc: OperationalError) -> bool:
    """PostgreSQL's lock_timeout (55P03) or SQLite's busy timeout, not any database error."""
    return getattr(exc.orig, "sqlstate", None) == "55P03" or "database is locked" in str(exc)
