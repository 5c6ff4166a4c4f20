"""Master key re-wrapping moves every kind of sealed value, not only secret versions.

Each kind is sealed under key A by the code that seals it in the server (or with its module's
``seal`` and the context the server uses), re-wrapped to key B, then opened with a keyring that
holds only B. The guard test keeps the list complete: a binary column the walk does not know
fails it.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from vaultgate.injection.credential import Credential
from vaultgate.server.approvals import sealing as approval_sealing
from vaultgate.server.audit.sink import AuditSink
from vaultgate.server.auth.services import Actor
from vaultgate.server.crypto import Barrier, Keyring, MasterKey, Sealed, aad_for, wrapping_key_id
from vaultgate.server.keys_at_rest import rewrap_all
from vaultgate.server.oauth import Holder, TokenStore
from vaultgate.server.oauth import sealing as oauth_sealing
from vaultgate.server.oauth.apps import OAuthAppCreate, OAuthAppService
from vaultgate.server.oauth.client import TokenAnswer
from vaultgate.server.sealed_values import COLUMNS, move, not_under
from vaultgate.server.sinks import SinkCreate, SinkStore
from vaultgate.server.sinks.store import open_secret, secret_key_id
from vaultgate.server.storage import tables as t
from vaultgate.server.storage.engine import reading

AUDIT_KEY = b"audit-key-for-tests-0123456789ab"
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
A = MasterKey("mk_a", bytes(range(32)))
B = MasterKey("mk_b", bytes(range(100, 132)))
BEFORE = Barrier(Keyring([A], active_id="mk_a"))
ROTATED = Barrier(Keyring([A, B], active_id="mk_b"))
# A is the root of the real key set; a keyring of B alone proves nothing needs A any more.
ONLY_B = Barrier(Keyring([B], active_id="mk_b"))
SECRET_VALUE = b"canary-version-Jq3"
ACCESS_TOKEN = "canary-access-Zt81"
CLIENT_SECRET = "canary-client-secret-Lw55"
VERIFIER = b"canary-verifier-Hk20"
HELD = b"canary-held-call-Rb47"
RESULT = b"canary-result-Mv09"
WEBHOOK_SECRET = "canary-webhook-0123456789"
KINDS = {column.name for column in COLUMNS}


class Ids:
    def __init__(self) -> None:
        self.app, self.secret, self.grant = (str(uuid.uuid4()) for _ in range(3))
        self.connect, self.approval, self.sink = "", str(uuid.uuid4()), ""


def _clock() -> datetime:
    return NOW


def _oauth_apps(engine: Engine, barrier: Barrier) -> OAuthAppService:
    return OAuthAppService(
        engine,
        barrier,
        AuditSink(AUDIT_KEY),
        _clock,
        callback_url="https://vault.example/oauth/callback",
        allow_http=False,
    )


def _tokens(engine: Engine, barrier: Barrier, answer: TokenAnswer | None) -> TokenStore:
    def fetch(*_: Any, **__: Any) -> TokenAnswer:
        assert answer is not None, "the stored token should have opened: no request expected"
        return answer

    return TokenStore(
        engine,
        barrier,
        AuditSink(AUDIT_KEY),
        _clock,
        lambda: 1000.0,
        fetch,
        margin=60,
        timeout=5,
    )


HOLDER_CREDENTIAL = Credential(
    "oauth2_client_credentials",
    {"token_url": "https://idp.example/token", "client_id": "c", "client_secret": "s"},
)


def _holder(ids: Ids) -> Holder:
    return Holder(ids.app, ids.secret, 1, ids.grant)


def _seal_every_kind(engine: Engine) -> Ids:
    """One value of each kind, sealed under A."""
    ids = Ids()
    with engine.begin() as conn:
        conn.execute(t.apps.insert().values(id=ids.app, name="rewrap", created_at=NOW))
        conn.execute(
            t.secrets.insert().values(
                id=ids.secret,
                app_id=ids.app,
                name="s",
                credential_type="oauth2_client_credentials",
                injection={},
                allowed_hosts=[],
                version=1,
                created_at=NOW,
                updated_at=NOW,
            )
        )
        sealed = BEFORE.seal_secret(SECRET_VALUE, aad=aad_for(ids.app, ids.secret, 1))
        conn.execute(
            t.secret_versions.insert().values(
                secret_id=ids.secret,
                version=1,
                ciphertext=sealed.ciphertext,
                wrapped_key=sealed.wrapped_key,
                master_key_id=sealed.master_key_id,
                created_at=NOW,
            )
        )
        conn.execute(
            t.grants.insert().values(
                id=ids.grant,
                secret_id=ids.secret,
                app_id=ids.app,
                policy={},
                status="active",
                depth=0,
                created_at=NOW,
            )
        )
    _tokens(engine, BEFORE, TokenAnswer(ACCESS_TOKEN, 3600)).obtain(_holder(ids), HOLDER_CREDENTIAL)
    body = OAuthAppCreate(
        app_id=ids.app,
        provider="google",
        template="google",
        client_id="cid",
        client_secret=CLIENT_SECRET,
    )
    _oauth_apps(engine, BEFORE).create(body, Actor())
    ids.connect = _insert_connect_session(engine, ids.app)
    _insert_approval(engine, ids)
    webhook = SinkCreate.model_validate(
        {
            "name": "hook",
            "kind": "webhook",
            "config": {"url": "https://siem.example.com/"},
            "secret": WEBHOOK_SECRET,
        }
    )
    sinks = SinkStore(engine, BEFORE, AuditSink(AUDIT_KEY), _clock)
    ids.sink = str(sinks.create(webhook, Actor())["id"])
    return ids


def _insert_connect_session(engine: Engine, app_id: str) -> str:
    session_id = str(uuid.uuid4())
    # The context ConnectService.begin seals the PKCE verifier with.
    verifier = oauth_sealing.seal(BEFORE, VERIFIER, "connect_sessions", session_id, "verifier")
    with engine.begin() as conn:
        conn.execute(
            t.connect_sessions.insert().values(
                id=session_id,
                app_id=app_id,
                token_hash=uuid.uuid4().hex,
                link_hash=uuid.uuid4().hex,
                verifier=verifier,
                providers=["google"],
                status="pending",
                created_at=NOW,
                expires_at=NOW + timedelta(minutes=10),
            )
        )
    return session_id


def _insert_approval(engine: Engine, ids: Ids) -> None:
    # The contexts ApprovalService seals a held call and its kept result with.
    context = {"app_id": ids.app, "approval_id": ids.approval}
    with engine.begin() as conn:
        conn.execute(
            t.approval_requests.insert().values(
                id=ids.approval,
                app_id=ids.app,
                grant_id=ids.grant,
                mode="proxy",
                method="POST",
                host="api.example.com",
                eligible=[],
                status="pending",
                request_sealed=approval_sealing.seal(BEFORE, HELD, **context, kind="request"),
                result_sealed=approval_sealing.seal(BEFORE, RESULT, **context, kind="result"),
                created_at=NOW,
                expires_at=NOW + timedelta(hours=1),
            )
        )


def _row(engine: Engine, table: sa.Table, **key: str) -> dict[str, Any]:
    with reading(engine) as conn:
        where = [table.c[name] == value for name, value in key.items()]
        return dict(conn.execute(sa.select(table).where(*where)).mappings().one())


def _wrapped_by(wrapped_key: bytes) -> str | None:
    return wrapping_key_id(Sealed(ciphertext=b"", wrapped_key=wrapped_key, master_key_id=""))


def _stored(engine: Engine) -> dict[str, list[bytes]]:
    """Every sealed value as stored, by column (the payload columns beside wrapped keys too)."""
    out: dict[str, list[bytes]] = {}
    with reading(engine) as conn:
        for column in COLUMNS:
            names = (
                [column.column, "ciphertext"] if column.column == "wrapped_key" else [column.column]
            )
            for name in names:
                order = [column.table.c[key] for key in column.key]
                query = sa.select(column.table.c[name]).order_by(*order)
                out[f"{column.table.name}.{name}"] = [
                    bytes(v) for v in conn.execute(query).scalars()
                ]
    return out


def _assert_opens_under_b_only(engine: Engine, ids: Ids) -> None:
    version = _row(engine, t.secret_versions, secret_id=ids.secret)
    assert _wrapped_by(version["wrapped_key"]) == "mk_b" and version["master_key_id"] == "mk_b"
    sealed = Sealed(version["ciphertext"], version["wrapped_key"], version["master_key_id"])
    opened = ONLY_B.open_secret(sealed, aad=aad_for(ids.app, ids.secret, 1))
    assert opened == SECRET_VALUE

    token = _row(engine, t.oauth_tokens, secret_id=ids.secret)
    assert _wrapped_by(token["wrapped_key"]) == "mk_b" and token["master_key_id"] == "mk_b"
    # No token request: the state opened under B alone (a failure to open would ask again).
    access = _tokens(engine, ONLY_B, None).obtain(_holder(ids), HOLDER_CREDENTIAL)
    assert access.value == ACCESS_TOKEN

    client_secret = _row(engine, t.oauth_apps, app_id=ids.app)["client_secret"]
    assert oauth_sealing.key_id_of(client_secret) == "mk_b"
    client = _oauth_apps(engine, ONLY_B).client_for(ids.app, "google")
    assert client.client_secret == CLIENT_SECRET

    verifier = _row(engine, t.connect_sessions, id=ids.connect)["verifier"]
    assert oauth_sealing.key_id_of(verifier) == "mk_b"
    context = ("connect_sessions", ids.connect, "verifier")
    assert oauth_sealing.open_sealed(ONLY_B, verifier, *context) == VERIFIER

    approval = _row(engine, t.approval_requests, id=ids.approval)
    where = {"app_id": ids.app, "approval_id": ids.approval}
    for kind, plaintext in (("request", HELD), ("result", RESULT)):
        blob = approval[f"{kind}_sealed"]
        assert approval_sealing.key_id_of(blob) == "mk_b"
        assert approval_sealing.open_sealed(ONLY_B, blob, **where, kind=kind) == plaintext  # type: ignore[arg-type]

    sinks = SinkStore(engine, ONLY_B, AuditSink(AUDIT_KEY), _clock)
    sink = sinks.find(ids.sink)
    assert secret_key_id(sink.secret_sealed or b"") == "mk_b"
    assert open_secret(ONLY_B, sink) == WEBHOOK_SECRET.encode()


def test_every_column_holding_sealed_bytes_is_walked() -> None:
    walked = {(c.table.name, c.column) for c in COLUMNS}
    # A payload beside a wrapped data key moves with it: only the wrapped key is re-wrapped.
    beside = {(table, "ciphertext") for table, column in walked if column == "wrapped_key"}
    binary = {
        (table.name, column.name)
        for table in t.metadata.tables.values()
        for column in table.columns
        if isinstance(column.type, sa.LargeBinary)
    }
    assert binary == walked | beside


def test_rewrap_moves_every_kind_to_the_new_key_and_a_rerun_changes_nothing(
    engine: Engine,
) -> None:
    ids = _seal_every_kind(engine)
    pending = not_under(engine, "mk_b")
    assert sorted(value.column.name for value in pending) == sorted(KINDS)
    assert {value.key_id for value in pending} == {"mk_a"}
    # No pass run: everything is reported as left under an older key (the CLI then fails).
    assert rewrap_all(engine, ROTATED, passes=0) == (0, len(KINDS), len(KINDS), ())

    assert rewrap_all(engine, ROTATED) == (len(KINDS), len(KINDS), 0, ())
    assert not_under(engine, "mk_b") == []
    _assert_opens_under_b_only(engine, ids)

    before_rerun = _stored(engine)
    assert rewrap_all(engine, ROTATED) == (0, len(KINDS), 0, ())
    assert _stored(engine) == before_rerun
    _assert_opens_under_b_only(engine, ids)


def test_a_value_that_does_not_open_is_named_and_every_other_value_still_moves(
    engine: Engine,
) -> None:
    # A corrupt row used to stop the re-wrap with a traceback, leaving every value after it
    # under the old key. Its wrapped key keeps its header (it is still listed under A) but its
    # tag is broken, so it cannot be unwrapped.
    ids = _seal_every_kind(engine)
    with engine.begin() as conn:
        wrapped = conn.execute(sa.select(t.secret_versions.c.wrapped_key)).scalar_one()
        broken = bytes(wrapped[:-1]) + bytes([wrapped[-1] ^ 1])
        conn.execute(t.secret_versions.update().values(wrapped_key=broken))
    done = rewrap_all(engine, ROTATED)
    assert (done.moved, done.total, done.left) == (len(KINDS) - 1, len(KINDS), 1)
    assert done.unreadable == (f"secret_versions.wrapped_key (secret_id={ids.secret}, version=1)",)
    left = not_under(engine, "mk_b")
    assert [value.column.name for value in left] == ["secret_versions.wrapped_key"]
    assert _row(engine, t.secret_versions, secret_id=ids.secret)["wrapped_key"] == broken
    # A re-run tries the broken value again, names it again, and moves nothing else.
    assert rewrap_all(engine, ROTATED) == (0, len(KINDS), 1, done.unreadable)


def test_a_sealed_value_too_short_to_name_its_key_is_named_too(engine: Engine) -> None:
    ids = _seal_every_kind(engine)
    with engine.begin() as conn:
        conn.execute(t.audit_sinks.update().values(secret_sealed=b"\x01\x02"))
    done = rewrap_all(engine, ROTATED)
    assert done.unreadable == (f"audit_sinks.secret_sealed (id={ids.sink})",)
    assert (done.moved, done.left) == (len(KINDS) - 1, 1)


def test_only_the_wrapped_key_changes_the_payload_stays(engine: Engine) -> None:
    _seal_every_kind(engine)
    before = _stored(engine)
    rewrap_all(engine, ROTATED)
    after = _stored(engine)
    for name in ("secret_versions.ciphertext", "oauth_tokens.ciphertext"):
        assert after[name] == before[name]
    for name in ("oauth_apps.client_secret", "approval_requests.request_sealed"):
        # version byte and length field, then the wrapped key: the payload after it is the same.
        old_end = 5 + int.from_bytes(before[name][0][1:5], "big")
        new_end = 5 + int.from_bytes(after[name][0][1:5], "big")
        assert after[name][0][new_end:] == before[name][0][old_end:]
        assert after[name][0] != before[name][0]


def test_a_row_gone_or_sealed_anew_meanwhile_is_left_alone(engine: Engine) -> None:
    ids = _seal_every_kind(engine)
    listed = {value.column.name: value for value in not_under(engine, "mk_b")}
    with engine.begin() as conn:
        conn.execute(t.connect_sessions.delete().where(t.connect_sessions.c.id == ids.connect))
        oauth_app = conn.execute(sa.select(t.oauth_apps.c.id)).scalar_one()
        fresh = oauth_sealing.seal(ROTATED, b"new", "oauth_apps", oauth_app, "client_secret")
        conn.execute(t.oauth_apps.update().values(client_secret=fresh))
    assert not move(engine, ROTATED, listed["connect_sessions.verifier"])
    assert not move(engine, ROTATED, listed["oauth_apps.client_secret"])
    assert _row(engine, t.oauth_apps, app_id=ids.app)["client_secret"] == fresh
    # Its allowed twin: a value still under A when its turn comes moves.
    assert move(engine, ROTATED, listed["audit_sinks.secret_sealed"])


def test_a_token_state_rewritten_for_a_new_version_moves_under_that_version(
    engine: Engine,
) -> None:
    ids = _seal_every_kind(engine)
    listed = {value.column.name: value for value in not_under(engine, "mk_b")}
    with engine.begin() as conn:
        conn.execute(t.secrets.update().values(version=2))
    # The secret was rotated after the listing: a node writes the new version's state under A.
    newer = Holder(ids.app, ids.secret, 2, ids.grant)
    _tokens(engine, BEFORE, TokenAnswer("canary-access-v2-Qq1", 3600)).obtain(
        newer, HOLDER_CREDENTIAL
    )
    assert move(engine, ROTATED, listed["oauth_tokens.wrapped_key"])
    assert _row(engine, t.oauth_tokens, secret_id=ids.secret)["master_key_id"] == "mk_b"
    opened = _tokens(engine, ONLY_B, None).obtain(newer, HOLDER_CREDENTIAL)
    assert opened.value == "canary-access-v2-Qq1"


@pytest.mark.parametrize("blob", [b"", b"\x01", b"\x02" + bytes(40)])
def test_a_malformed_blob_names_no_key(blob: bytes) -> None:
    assert oauth_sealing.key_id_of(blob) is None
    assert approval_sealing.key_id_of(blob) is None
    assert secret_key_id(blob[:3]) is None


def test_a_key_set_is_refused_where_any_kind_is_sealed_but_no_key_is_recorded(
    engine: Engine,
) -> None:
    # Only an OAuth client secret is sealed (no secret version): with the record of master keys
    # gone, a key set of another key must still be refused, not recorded as the vault's first.
    from vaultgate.server.crypto import MasterKeyError
    from vaultgate.server.keys_at_rest import check_against_database

    app_id = str(uuid.uuid4())
    with engine.begin() as conn:
        conn.execute(t.apps.insert().values(id=app_id, name="oauth", created_at=NOW))
    body = OAuthAppCreate(
        app_id=app_id,
        provider="google",
        template="google",
        client_id="cid",
        client_secret=CLIENT_SECRET,
    )
    _oauth_apps(engine, BEFORE).create(body, Actor())
    with engine.begin() as conn:
        conn.execute(t.master_keys.delete())
    with pytest.raises(MasterKeyError, match="holds sealed secrets"):
        check_against_database(engine, Keyring([B], active_id="mk_b"))
    # The allowed twin: a database with nothing sealed takes a first key set.
    with engine.begin() as conn:
        conn.execute(t.oauth_apps.delete())
    check_against_database(engine, Keyring([B], active_id="mk_b"))
