"""Portal users: email and an argon2 password hash (argon2 is for people, never for API keys)."""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.engine import Engine

from vaultgate.server.errors import Conflict, NotFound, Unprocessable
from vaultgate.server.storage import tables as t
from vaultgate.server.storage.engine import reading

_hasher = PasswordHasher()
# Verifying against this when the user does not exist keeps "unknown user" and "wrong password"
# equally slow, so timing does not tell which it was.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))
MIN_PASSWORD = 12


def generate_password() -> str:
    return secrets.token_urlsafe(18)


def _check(email: str, password: str) -> str:
    email = email.strip().lower()
    if "@" not in email or len(email) > 320 or any(c.isspace() for c in email):
        raise Unprocessable("email: not an email address", field="email")
    if len(password) < MIN_PASSWORD:
        raise Unprocessable(f"password: at least {MIN_PASSWORD} characters", field="password")
    return email


def create_user(engine: Engine, email: str, password: str, now: datetime) -> str:
    email = _check(email, password)
    # Hashed before the transaction opens: argon2 takes tens of milliseconds, and on SQLite a
    # write transaction holds the database's only write lock for its whole length.
    password_hash = _hasher.hash(password)
    with engine.begin() as conn:
        if conn.execute(
            sa.select(t.portal_users.c.id).where(t.portal_users.c.email == email)
        ).first():
            raise Conflict(f"email: a user {email} exists", code="duplicate_user", field="email")
        user_id = str(uuid.uuid4())
        conn.execute(
            t.portal_users.insert().values(
                id=user_id, email=email, password_hash=password_hash, created_at=now
            )
        )
    return user_id


def set_password(engine: Engine, email: str, password: str) -> None:
    email = _check(email, password)
    password_hash = _hasher.hash(password)  # outside the transaction, as in create_user
    with engine.begin() as conn:
        done = conn.execute(
            t.portal_users.update()
            .where(t.portal_users.c.email == email)
            .values(password_hash=password_hash)
        )
        if done.rowcount == 0:
            raise NotFound(f"no portal user {email}", code="user_not_found")


def verify_login(engine: Engine, email: str, password: str, now: datetime) -> str | None:
    """The user's email when the password is right; None otherwise (same cost either way).

    The hash is read, then checked with no transaction open (a sign-in flood must not hold the
    write lock every audited request needs); only a success writes, briefly.
    """
    email = email.strip().lower()
    with reading(engine) as conn:
        row = (
            conn.execute(
                sa.select(t.portal_users.c.id, t.portal_users.c.password_hash).where(
                    t.portal_users.c.email == email
                )
            )
            .mappings()
            .first()
        )
    try:
        _hasher.verify(row["password_hash"] if row else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    if row is None:
        return None
    with engine.begin() as conn:
        conn.execute(
            t.portal_users.update()
            .where(t.portal_users.c.id == row["id"])
            .values(last_login_at=now)
        )
    return email
