"""Sign-in and sign-out. A wrong password and an unknown email get the same page and status."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from vaultgate.server.api.deps import request_ip, runtime
from vaultgate.server.audit.events import (
    PORTAL_LOGIN,
    PORTAL_LOGIN_FAILED,
    PORTAL_LOGOUT,
    AuditEvent,
)
from vaultgate.server.auth.users import verify_login
from vaultgate.server.portal.pages import render
from vaultgate.server.portal.routing import (
    Fields,
    Form,
    PortalRoute,
    context,
    current_session,
    portal_state,
    replace_session,
    see_other,
)
from vaultgate.server.portal.sessions import PortalSession

router = APIRouter(prefix="/portal", route_class=PortalRoute)
WRONG = "Wrong email or password."
BUSY = "The vault is checking many sign-ins right now. Try again in a few seconds."
BUSY_RETRY = 2


def _next(target: str | None) -> str:
    """Only a portal path: an open redirect to another site would make a fine phishing link."""
    if (
        target
        and target.startswith("/portal")
        and not target.startswith("//")
        and "\\" not in target
    ):
        return target
    return "/portal/secrets"


@router.get("", include_in_schema=False)
@router.get("/", include_in_schema=False)
def home() -> Response:
    return see_other("/portal/secrets")


@router.get("/login", include_in_schema=False)
def login_page(request: Request, next: str | None = None, expired: int = 0) -> Response:
    session = current_session(request)
    if session.user is not None:
        return see_other(_next(next))
    notice = "Your session expired; sign in again." if expired or session.expired else None
    return render(
        "login.html",
        context(request, "login", title="Sign in", notice=notice, next=_next(next), email=""),
    )


@router.post("/login", include_in_schema=False)
def login(request: Request, form: Form) -> Response:
    """Order matters: a free verification slot, then the attempt counted, then the password
    checked, so neither a flood nor a burst of concurrent guesses gets more than its share."""
    state = portal_state(request)
    with state.slots.take() as free:
        if not free:
            return _refused(request, form, 429, {"": BUSY}, {"Retry-After": str(BUSY_RETRY)})
        return _sign_in(request, form)


def _sign_in(request: Request, form: Fields) -> Response:
    rt, state = runtime(request), portal_state(request)
    email, ip, now = form.get("email"), request_ip(request), rt.clock()
    missing = _missing(email, form.get("password"))
    if missing:
        return _refused(request, form, 422, missing, {})
    wait = state.throttle.reserve(email, ip, now.timestamp())
    if wait:
        message = f"Too many sign-in attempts. Try again in {wait} seconds."
        return _refused(request, form, 429, {"": message}, {"Retry-After": str(wait)})
    user = verify_login(rt.engine, email, form.get("password"), now)
    if user is None:
        rt.audit.record_sync(
            AuditEvent.new(
                event=PORTAL_LOGIN_FAILED,
                outcome="denied",
                now=now,
                portal_user=email[:320] or None,
                source_ip=ip,
            )
        )
        return _refused(request, form, 401, {"": WRONG}, {})
    state.throttle.succeeded(email, ip)
    rt.audit.record_sync(
        AuditEvent.new(event=PORTAL_LOGIN, outcome="ok", now=now, portal_user=user, source_ip=ip)
    )
    replace_session(request, current_session(request).signed_in(user, now))
    return see_other(_next(form.get("next")))


def _missing(email: str, password: str) -> dict[str, str]:
    """Empty fields, named before any attempt is counted: an empty form guesses nothing."""
    errors = {}
    if not email:
        errors["email"] = "Email: enter the email address you sign in with"
    if not password:
        errors["password"] = "Password: enter your password"
    return errors


def _refused(
    request: Request, form: Fields, status: int, errors: dict[str, str], headers: dict[str, str]
) -> Response:
    ctx = context(
        request,
        "login",
        title="Sign in",
        next=_next(form.get("next")),
        email=form.get("email"),
        errors=errors,
    )
    return render("login.html", ctx, status=status, headers=headers)


@router.post("/logout", include_in_schema=False)
def logout(request: Request, form: Form) -> Response:
    session = current_session(request)
    if session.user is not None:
        rt = runtime(request)
        rt.audit.record_sync(
            AuditEvent.new(
                event=PORTAL_LOGOUT,
                outcome="ok",
                now=rt.clock(),
                portal_user=session.user,
                source_ip=request_ip(request),
            )
        )
    replace_session(request, PortalSession.anonymous())
    return see_other("/portal/login")
