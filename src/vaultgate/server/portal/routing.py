"""How a portal request is handled: the session, the CSRF check, and errors turned into pages.

``PortalRoute`` wraps every portal endpoint: a ``VaultError`` from a service becomes a page with
its message (never a JSON envelope), a missing session a redirect to sign-in, and the session
cookie is re-signed on the way out so the idle timeout slides.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Annotated, Any, cast
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.datastructures import FormData
from starlette.responses import RedirectResponse, Response

from vaultgate.server.api.deps import request_ip, runtime
from vaultgate.server.api.errors import error_answer
from vaultgate.server.auth.services import Actor
from vaultgate.server.errors import VaultError
from vaultgate.server.portal.pages import render
from vaultgate.server.portal.sessions import COOKIE, PortalSession, SessionCodec
from vaultgate.server.portal.throttle import LoginThrottle, VerifySlots


@dataclass(frozen=True)
class PortalState:
    codec: SessionCodec
    throttle: LoginThrottle
    slots: VerifySlots = field(default_factory=VerifySlots)


class LoginRequired(Exception):
    def __init__(self, *, expired: bool) -> None:
        super().__init__("sign-in required")
        self.expired = expired


class CsrfRefused(Exception):
    """The form's token is missing or does not belong to this session."""


class Fields:
    """A submitted form's text values (file parts ignored), read without echoing anything."""

    def __init__(self, items: list[tuple[str, str]]) -> None:
        self._items = items

    @classmethod
    def of(cls, form: FormData) -> Fields:
        return cls([(k, v) for k, v in form.multi_items() if isinstance(v, str)])

    def get(self, name: str) -> str:
        for key, value in self._items:
            if key == name:
                return value.strip()
        return ""

    def getlist(self, name: str) -> list[str]:
        return [v.strip() for k, v in self._items if k == name and v.strip()]

    def lines(self, name: str) -> list[str]:
        return [line.strip() for line in self.get(name).splitlines() if line.strip()]

    def names(self) -> set[str]:
        return {k for k, _ in self._items}


def portal_state(request: Request) -> PortalState:
    return cast(PortalState, request.app.state.portal)


def current_session(request: Request) -> PortalSession:
    session = getattr(request.state, "portal_session", None)
    if session is None:
        session = portal_state(request).codec.load(
            request.cookies.get(COOKIE), runtime(request).clock()
        )
        request.state.portal_session = session
    return cast(PortalSession, session)


def replace_session(request: Request, session: PortalSession) -> None:
    request.state.portal_session = session


def signed_in(request: Request) -> str:
    session = current_session(request)
    if session.user is None:
        raise LoginRequired(expired=session.expired)
    return session.user


def portal_actor(request: Request, user: Annotated[str, Depends(signed_in)]) -> Actor:
    return Actor(portal_user=user, source_ip=request_ip(request))


async def checked_form(request: Request) -> Fields:
    session = current_session(request)
    form = await request.form()
    try:
        token = form.get("csrf")
        if not portal_state(request).codec.csrf_ok(
            session, token if isinstance(token, str) else None
        ):
            raise CsrfRefused()
        return Fields.of(form)
    finally:
        await form.close()


User = Annotated[str, Depends(signed_in)]
PortalActor = Annotated[Actor, Depends(portal_actor)]
Form = Annotated[Fields, Depends(checked_form)]


def context(request: Request, nav: str, **values: Any) -> dict[str, Any]:
    """What every page needs: the signed-in user, this session's CSRF token, the active tab."""
    session = current_session(request)
    return {
        "user": session.user,
        "csrf": portal_state(request).codec.csrf_token(session),
        "nav": nav,
        "errors": {},
        "notice": None,
        **values,
    }


def error_page(request: Request, status: int, title: str, message: str) -> Response:
    ctx = context(request, "", title=title, status=status, errors={"": message})
    return render("error.html", ctx, status=status)


def see_other(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


class PortalRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            response = await _answer(handler, request)
            session = getattr(request.state, "portal_session", None)
            if session is not None:
                _set_cookie(request, response, session)
            return response

        return handle


async def _answer(
    handler: Callable[[Request], Coroutine[Any, Any, Response]], request: Request
) -> Response:
    try:
        return await handler(request)
    except LoginRequired as exc:
        if request.method != "GET":
            return _sign_in_again(request, expired=exc.expired)
        query = f"?next={quote(request.url.path, safe='/')}" + ("&expired=1" if exc.expired else "")
        return see_other("/portal/login" + query)
    except CsrfRefused:
        return error_page(
            request,
            403,
            "Form expired",
            "This form's security token is missing or out of date, so nothing "
            "was changed. Go back, reload the page and try again.",
        )
    except RequestValidationError:
        return error_page(request, 400, "Bad request", "The address or form is malformed.")
    except VaultError as exc:
        # The status every other surface gives this error (api/errors.py), shown as a page.
        answer = error_answer(exc)
        return error_page(request, answer.status, "Not done", answer.message)


# A form's action with the page it was on: where to go back to after signing in again.
_ACTIONS = ("/clone", "/policy", "/keys", "/rotate")


def _sign_in_again(request: Request, *, expired: bool) -> Response:
    """A form sent without a live session: the sign-in page itself, saying nothing was saved."""
    path = request.url.path
    page = next((path.removesuffix(a) for a in _ACTIONS if path.endswith(a)), None)
    if page is None:
        page = path if path in ("/portal/apps",) or path.startswith("/portal/secrets/new/") else ""
    why = "Your session expired" if expired else "You are not signed in"
    ctx = context(
        request,
        "login",
        title="Sign in",
        next=page or "/portal/secrets",
        email="",
        errors={"": f"{why}, so nothing was saved. Sign in, then send the form again."},
    )
    return render("login.html", ctx, status=401)


def _set_cookie(request: Request, response: Response, session: PortalSession) -> None:
    codec = portal_state(request).codec
    response.set_cookie(
        COOKIE,
        codec.dump(session.touched(runtime(request).clock())),
        path="/portal",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
