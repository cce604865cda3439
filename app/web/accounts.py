"""The accounts pages: logging a browser in and out (the session cookie and its CSRF token),
and the user's own page (API tokens)."""

import hmac
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.api.actor import ActorDep
from app.api.auth import SESSION_COOKIE
from app.api.deps import SessionDep, SettingsDep
from app.services import accounts
from app.services.ratelimit import RateLimiter
from app.web.templates import TEMPLATES

router = APIRouter(include_in_schema=False)

_FAILURES: dict[int, RateLimiter] = {}


def _failures(limit: int) -> RateLimiter:
    """One limiter of failed logins per configured limit (per process), over 5 minutes."""
    return _FAILURES.setdefault(limit, RateLimiter(limit, 300.0))


def _safe_next(target: str | None) -> str:
    """Where to go after logging in: a path on this site only (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _page(request: Request, status_code: int = 200, **context: str) -> HTMLResponse:
    values = {"next": "/", "username": "", "error": "", **context}
    return TEMPLATES.TemplateResponse(request, "login.html", values, status_code=status_code)


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str | None = None) -> HTMLResponse:
    """The login form."""
    return _page(request, next=_safe_next(next))


@router.post("/login", response_model=None)
def login(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=1000)],
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    """Check the password; on success set the session cookie and go on to `next`."""
    limiter = _failures(settings.login_failures_per_5_min)
    client = request.client.host if request.client else "?"
    keys = ("ip:" + client, "user:" + username.lower())
    wait = max(limiter.blocked(key) for key in keys)
    if wait:
        response = _page(
            request, 429, next=_safe_next(next), username=username,
            error=f"Too many failed logins: try again in {wait} s.",
        )  # fmt: skip
        response.headers["Retry-After"] = str(wait)
        return response
    user = accounts.authenticate(session, username, password)
    if user is None:
        for key in keys:
            limiter.allow(key)
        return _page(
            request, 401, next=_safe_next(next), username=username,
            error="Wrong user name or password.",
        )  # fmt: skip
    for key in keys:
        limiter.reset(key)
    new = accounts.start_session(session, user)
    redirect = RedirectResponse(_safe_next(next), status_code=303)
    secure = settings.cookie_secure
    redirect.set_cookie(
        SESSION_COOKIE,
        new.key,
        max_age=accounts.SESSION_DAYS * 86400,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https" if secure is None else secure,
        path="/",
    )
    return redirect


@router.post("/logout", response_model=None)
def logout(
    request: Request, session: SessionDep, csrf_token: Annotated[str, Form()] = ""
) -> Response:
    """End the browser's session (the form carries the session's CSRF token)."""
    expected = request.scope.get("state", {}).get("csrf_token")
    key = request.cookies.get(SESSION_COOKIE)
    if key and expected and hmac.compare_digest(csrf_token, expected):
        accounts.end_session(session, key)
        auth = request.scope["state"].get("auth")
        if auth is not None:
            auth.invalidate()
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/account", response_class=HTMLResponse)
def account_page(request: Request, actor: ActorDep) -> HTMLResponse:
    """The user's tokens: create one (its secret shown once), revoke one."""
    return TEMPLATES.TemplateResponse(request, "account.html", {"actor": actor})
