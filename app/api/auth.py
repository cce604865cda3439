"""Authentication, CSRF and single-user mode, for every request before any route runs.

One ASGI middleware decides who a request acts for and puts it in `request.state.actor`:
- `Authorization: Bearer hocr_…` — an API token (scripts); no CSRF check, a read-only token
  may only read;
- the `histocr_session` cookie — a logged-in browser; every state-changing request must send
  the session's CSRF token back (`X-CSRF-Token` header, which a cross-site form cannot set);
- neither — the local single user, only while no user exists, authentication is not required
  (`HISTOCR_AUTH_REQUIRED`), the server listens on loopback, and both the client address and
  the Host header are loopback (a page on another site, or DNS rebinding, is not local);
- otherwise 401 (API) or a redirect to the login page (UI).
Whatever the credentials, a state-changing request that a browser marks as coming from another
site (`Sec-Fetch-Site: cross-site`, or an `Origin` that is not this server) is refused.
Lookups are cached for a few seconds per process, so polled routes cost no extra query.
"""

import ipaddress
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.responses import JSONResponse, RedirectResponse, Response

from app.config import Settings
from app.db.session import get_sessionmaker, utcnow
from app.identity import LOCAL_ACTOR, Actor
from app.services import accounts
from app.services.ratelimit import RateLimiter

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SESSION_COOKIE = "histocr_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: Reachable without credentials: the health check, the login page and what it needs.
PUBLIC_PATHS = frozenset({"/healthz", "/login", "/static/favicon.svg"})
PUBLIC_PREFIXES = ("/static/",)
#: Routes that check their own CSRF token (a form field): logging in and out.
OWN_CSRF = frozenset({"/login", "/logout"})
CACHE_S = 5.0


@dataclass(frozen=True)
class Credential:
    """What a token or session key resolved to: the actor, the session's CSRF token."""

    actor: Actor
    csrf_token: str | None = None
    token_id: int | None = None


def is_loopback(host: str | None) -> bool:
    """Whether a host name or address is this machine's loopback."""
    if not host:
        return False
    host = host.strip("[]")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def auth_required(settings: Settings) -> bool:
    """Whether every request must authenticate whatever users exist: set, or not on loopback."""
    return settings.auth_required or not is_loopback(settings.host)


class AuthMiddleware:
    """Sets `request.state.actor`, or answers 401/403/429 itself (see the module docstring)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self._cache: dict[str, tuple[float, Credential | None]] = {}
        self._users_seen: tuple[float, bool] = (0.0, False)
        self.token_limiter = RateLimiter(settings.token_rate_per_minute, 60.0)

    def invalidate(self) -> None:
        """Forget cached credentials (after a logout, a revocation, a new user)."""
        self._cache.clear()
        self._users_seen = (0.0, False)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})["auth"] = self
        answer = await self._authenticate(scope)
        if answer is not None:
            await answer(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _authenticate(self, scope: Scope) -> Response | None:
        path: str = scope["path"]
        method: str = scope["method"]
        headers = Headers(scope=scope)
        unsafe = method not in SAFE_METHODS
        public = path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)
        bearer = _bearer(headers.get("authorization"))
        if unsafe and bearer is None and _cross_site(headers, scope):
            return _refuse(403, "cross-site request refused")
        credential: Credential | None = None
        if bearer is not None:
            credential = await self._lookup("t:" + bearer, bearer, "token")
            if credential is None:
                return _refuse(401, "invalid, expired or revoked API token", bearer=True)
            if not self.token_limiter.allow(str(credential.token_id)):
                return _refuse(429, "too many requests with this token", retry_after=60)
            if unsafe and credential.actor.read_only:
                return _refuse(403, "this token is read-only")
        elif (key := _cookie(headers, SESSION_COOKIE)) is not None:
            credential = await self._lookup("s:" + key, key, "session")
            if credential is not None and unsafe and path not in OWN_CSRF:
                sent = headers.get(CSRF_HEADER)
                if not sent or sent != credential.csrf_token:
                    return _refuse(403, "missing or wrong CSRF token (reload the page)")
        if credential is not None:
            scope["state"]["actor"] = credential.actor
            scope["state"]["csrf_token"] = credential.csrf_token
            return None
        if await self._local_mode(scope, headers):
            scope["state"]["actor"] = LOCAL_ACTOR
            return None
        if public:
            return None
        return _unauthenticated(scope, headers)

    async def _lookup(self, cache_key: str, secret: str, kind: str) -> Credential | None:
        now = time.monotonic()
        hit = self._cache.get(cache_key)
        if hit is not None and hit[0] > now:
            return hit[1]
        credential = await run_in_threadpool(self._resolve, secret, kind)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[cache_key] = (now + CACHE_S, credential)
        return credential

    def _resolve(self, secret: str, kind: str) -> Credential | None:
        maker = get_sessionmaker(self.settings.resolved_database_url)
        with maker() as session, session.begin():
            now = utcnow()
            if kind == "token":
                found = accounts.token_user(session, secret, now)
                if found is None:
                    return None
                user, token = found
                token.last_used_at = now
                return Credential(
                    accounts.actor_for(user, read_only=token.read_only), token_id=token.id
                )
            found_session = accounts.session_user(session, secret, now)
            if found_session is None:
                return None
            user, web = found_session
            return Credential(accounts.actor_for(user), csrf_token=web.csrf_token)

    async def _local_mode(self, scope: Scope, headers: Headers) -> bool:
        if auth_required(self.settings):
            return False
        client = scope.get("client")
        if not is_loopback(client[0] if client else None):
            return False
        if not is_loopback(urlsplit("//" + headers.get("host", "")).hostname):
            return False
        return not await self._any_user()

    async def _any_user(self) -> bool:
        now = time.monotonic()
        until, seen = self._users_seen
        if until > now:
            return seen
        maker = get_sessionmaker(self.settings.resolved_database_url)

        def read() -> bool:
            with maker() as session:
                return accounts.any_user(session)

        seen = await run_in_threadpool(read)
        self._users_seen = (now + CACHE_S, seen)
        return seen


def _bearer(value: str | None) -> str | None:
    if not value:
        return None
    scheme, _, secret = value.partition(" ")
    return secret.strip() if scheme.lower() == "bearer" and secret.strip() else None


def _cookie(headers: Headers, name: str) -> str | None:
    for part in headers.get("cookie", "").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name and value:
            return value
    return None


def _cross_site(headers: Headers, scope: Scope) -> bool:
    """Whether a browser says this request comes from another site."""
    if headers.get("sec-fetch-site") == "cross-site":
        return True
    origin = headers.get("origin")
    if origin is None:
        return False
    if origin == "null":
        return True
    own = headers.get("host", "")
    return urlsplit(origin).netloc.lower() != own.lower()


def _refuse(
    status: int, message: str, *, bearer: bool = False, retry_after: int | None = None
) -> Response:
    headers = {}
    if bearer or status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="histocr"'
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return JSONResponse({"detail": message}, status_code=status, headers=headers)


def _unauthenticated(scope: Scope, headers: Headers) -> Response:
    path: str = scope["path"]
    wants_page = scope["method"] == "GET" and "text/html" in headers.get("accept", "")
    if wants_page and not path.startswith("/api/"):
        query = scope.get("query_string", b"").decode("latin-1")
        target = path + ("?" + query if query else "")
        return RedirectResponse("/login?next=" + quote(target, safe=""), status_code=303)
    return _refuse(401, "authentication required: log in, or send an API token")
