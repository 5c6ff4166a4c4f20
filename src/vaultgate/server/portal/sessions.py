"""Portal sessions: a signed cookie carrying the user, a CSRF nonce and two timestamps.

Nothing is stored server-side, so any node can serve any session. The idle timeout slides: every
answer to a signed-in request re-signs the cookie with a fresh ``seen`` time. Time comes from the
runtime's clock, so tests move it instead of waiting.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, replace
from datetime import datetime

from itsdangerous import BadSignature, URLSafeSerializer

COOKIE = "vaultgate_portal"
IDLE_TIMEOUT = 30 * 60
ABSOLUTE_TIMEOUT = 12 * 3600


@dataclass(frozen=True, slots=True)
class PortalSession:
    """``user`` is None before sign-in; ``nonce`` ties CSRF tokens to this one session."""

    nonce: str
    user: str | None = None
    started: float = 0.0
    seen: float = 0.0
    expired: bool = False  # a signed-in session that ran out: the login page says so

    def __repr__(self) -> str:
        return f"PortalSession(user={self.user!r}, expired={self.expired})"

    @classmethod
    def anonymous(cls, *, expired: bool = False) -> PortalSession:
        return cls(nonce=secrets.token_urlsafe(24), expired=expired)

    def signed_in(self, user: str, now: datetime) -> PortalSession:
        # A new nonce at sign-in: a token planted before login (session fixation) stops working.
        at = now.timestamp()
        return PortalSession(nonce=secrets.token_urlsafe(24), user=user, started=at, seen=at)

    def touched(self, now: datetime) -> PortalSession:
        return replace(self, seen=now.timestamp()) if self.user else self


class SessionCodec:
    """Signs and reads the cookie; a bad signature or a timed-out session reads as anonymous."""

    def __init__(self, key: bytes) -> None:
        self._serializer = URLSafeSerializer(key, salt="vaultgate.portal.session")
        self._csrf_key = hmac.new(key, b"vaultgate.portal.csrf", hashlib.sha256).digest()

    def dump(self, session: PortalSession) -> str:
        doc = {"n": session.nonce, "u": session.user, "s": session.started, "t": session.seen}
        return str(self._serializer.dumps(doc))

    def load(self, cookie: str | None, now: datetime) -> PortalSession:
        if not cookie:
            return PortalSession.anonymous()
        try:
            doc = self._serializer.loads(cookie)
            session = PortalSession(
                nonce=str(doc["n"]), user=doc["u"], started=float(doc["s"]), seen=float(doc["t"])
            )
        except (BadSignature, KeyError, TypeError, ValueError):
            return PortalSession.anonymous()
        if session.user is None:
            return session
        at = now.timestamp()
        if at - session.seen > IDLE_TIMEOUT or at - session.started > ABSOLUTE_TIMEOUT:
            return PortalSession.anonymous(expired=True)
        return session

    def csrf_token(self, session: PortalSession) -> str:
        return hmac.new(self._csrf_key, session.nonce.encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, session: PortalSession, presented: str | None) -> bool:
        return bool(presented) and hmac.compare_digest(self.csrf_token(session), str(presented))
