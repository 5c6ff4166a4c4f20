"""Syslog over TLS (RFC 5425) on both databases, with real sockets on loopback.

A receiver that the configured CA vouches for gets the trail framed as over TCP, in order, and
encrypted on the wire. A receiver it does not vouch for (another CA, a self-signed certificate
against the system store, a certificate for another name) gets not one byte, and the sink keeps
its cursor until its config is fixed, then gets everything once. A receiver that never answers
the handshake times out and delivery goes on.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from functional.sinks.conftest import FAST
from support import Vault, run_vault
from support.audit import wait_until
from support.certs import Authority, KeyPair, self_signed
from support.receivers import (
    RFC5424,
    TlsSyslogListener,
    as_json,
    silent_listener,
    tls_syslog_listener,
)
from vaultgate.cli.commands import cli

LOOPBACK = "127.0.0.1"


@pytest.fixture
def vault(tmp_path: Path, db_url: str) -> Iterator[Vault]:
    url = None if db_url.startswith("sqlite") else db_url
    with run_vault(tmp_path / "data", url, extra_env=FAST) as server:
        yield server


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    folder = tmp_path / "pki"
    folder.mkdir()
    return folder


def _state(admin: httpx.Client, name: str) -> dict[str, Any]:
    answer = admin.get(f"/v1/audit/sinks/{name}")
    assert answer.status_code == 200, answer.text
    state: dict[str, Any] = answer.json()["state"]
    return state


def _trail_after(admin: httpx.Client, cursor: int) -> list[dict[str, Any]]:
    """The events a sink starting at ``cursor`` is due, oldest first."""
    items = admin.get("/v1/audit", params={"limit": 500}).json()["items"]
    return sorted((e for e in items if e["seq"] > cursor), key=lambda e: e["seq"])


def _caught_up(admin: httpx.Client, name: str, due: list[dict[str, Any]]) -> bool:
    # The cursor moves after the receiver has the batch: wait for the vault's side too.
    return bool(_state(admin, name)["cursor"] >= due[-1]["seq"])


def _received(listener: TlsSyslogListener) -> list[dict[str, Any]]:
    with listener.lock:
        return [as_json(m) for m in listener.messages]


def test_a_receiver_the_configured_ca_vouches_for_gets_the_trail_framed_in_order_encrypted(
    vault: Vault, pki: Path
) -> None:
    ca = Authority.create(pki, "logs")
    receiver = ca.issue(pki, [LOOPBACK])
    env = {"VAULTGATE_URL": vault.base_url, "VAULTGATE_ADMIN_KEY": vault.admin_key}
    with tls_syslog_listener(receiver.cert, receiver.key) as listener, vault.admin() as admin:
        config = json.dumps({"tls": True, "ca_file": str(ca.pem)})
        where = f"{LOOPBACK}:{listener.port}"
        added = CliRunner().invoke(
            cli,
            ["audit", "sinks", "add", "rsyslog", "--syslog", where, "--config", config, "--json"],
            obj={"env": env},
        )  # the README's command, as a user types it
        assert added.exit_code == 0, added.output
        sink = json.loads(added.output)
        for i in range(3):
            assert admin.post("/v1/apps", json={"name": f"app-{i}"}).status_code == 201
        due = _trail_after(admin, sink["state"]["cursor"])
        wait_until(lambda: _caught_up(admin, "rsyslog", due), tries=2400)
        state = _state(admin, "rsyslog")

    assert sink["config"] == {
        "host": LOOPBACK,
        "port": listener.port,
        "facility": 13,
        "app_name": "vaultgate",
        "tls": True,
        "ca_file": str(ca.pem),
        "server_name": None,
        "cert_file": None,
        "key_file": None,
    }
    assert [e["event"] for e in due] == ["app:create"] * 3
    for message in listener.messages:
        assert RFC5424.match(message) is not None, message  # framed and formatted as over TCP
    assert [(e["id"], e["seq"]) for e in _received(listener)] == [(e["id"], e["seq"]) for e in due]
    assert (state["attempts"], state["last_error"]) == (0, None)
    assert state["cursor"] >= due[-1]["seq"]
    assert listener.refused == []
    for event in due:  # in the clear inside TLS, never on the wire
        assert event["id"].encode() in listener.plaintext
        assert event["id"].encode() not in listener.raw
    assert b"vaultgate@32473" not in listener.raw


@dataclass(frozen=True)
class Mismatch:
    """A receiver the sink must refuse, the config that refuses it, and the fix."""

    receiver: KeyPair
    refused: dict[str, Any]
    fixed: dict[str, Any]


def _another_ca(pki: Path) -> Mismatch:
    ours, theirs = Authority.create(pki, "ours"), Authority.create(pki, "theirs")
    return Mismatch(
        theirs.issue(pki, [LOOPBACK]),
        {"ca_file": str(ours.pem)},
        {"ca_file": str(theirs.pem)},  # the operator trusts the receiver's real CA
    )


def _self_signed_against_the_system_store(pki: Path) -> Mismatch:
    receiver = self_signed(pki, [LOOPBACK])
    return Mismatch(receiver, {}, {"ca_file": str(receiver.cert)})  # pinned as the CA file


def _another_name(pki: Path) -> Mismatch:
    ours = Authority.create(pki, "ours")
    return Mismatch(
        ours.issue(pki, ["logs.internal"]),  # a good chain, but not for 127.0.0.1
        {"ca_file": str(ours.pem)},
        {"ca_file": str(ours.pem), "server_name": "logs.internal"},
    )


@pytest.mark.parametrize(
    "mismatch", [_another_ca, _self_signed_against_the_system_store, _another_name]
)
def test_a_receiver_the_ca_does_not_vouch_for_gets_not_one_byte_until_the_config_is_fixed(
    vault: Vault, pki: Path, mismatch: Callable[[Path], Mismatch]
) -> None:
    case = mismatch(pki)
    with (
        tls_syslog_listener(case.receiver.cert, case.receiver.key) as listener,
        vault.admin() as admin,
    ):
        base = {"host": LOOPBACK, "port": listener.port, "tls": True}
        body = {"name": "rsyslog", "kind": "syslog", "config": {**base, **case.refused}}
        created = admin.post("/v1/audit/sinks", json=body)
        assert created.status_code == 201, created.text
        cursor = created.json()["state"]["cursor"]
        for i in range(3):
            assert admin.post("/v1/apps", json={"name": f"app-{i}"}).status_code == 201
        wait_until(
            lambda: _state(admin, "rsyslog")["attempts"] >= 2 and len(listener.refused) >= 2,
            tries=2400,
        )  # refused, and retried: both handshakes failed
        refused = _state(admin, "rsyslog")
        with listener.lock:
            raw_when_refused, clear_when_refused = bytes(listener.raw), bytes(listener.plaintext)
            messages_when_refused = list(listener.messages)
        withheld = _trail_after(admin, cursor)

        fixed = admin.patch("/v1/audit/sinks/rsyslog", json={"config": {**base, **case.fixed}})
        assert fixed.status_code == 200, fixed.text
        due = _trail_after(admin, cursor)  # the withheld events and the fix's own sink:update
        wait_until(lambda: _caught_up(admin, "rsyslog", due), tries=2400)
        delivered = _state(admin, "rsyslog")

    assert clear_when_refused == b"" and messages_when_refused == []
    assert raw_when_refused  # the vault did connect and offer a handshake
    for event in withheld:
        assert event["id"].encode() not in raw_when_refused
    assert b"vaultgate@32473" not in raw_when_refused
    assert refused["cursor"] == cursor
    assert (refused["last_error"] or "").startswith("syslog: certificate verify failed")
    assert [e["event"] for e in withheld] == ["app:create"] * 3
    # Fixed: everything, once, in order.
    assert [e["id"] for e in _received(listener)] == [e["id"] for e in due]
    assert due[-1]["event"] == "sink:update"
    assert (delivered["attempts"], delivered["last_error"]) == (0, None)


def test_a_receiver_that_never_answers_the_handshake_times_out_and_delivery_goes_on(
    tmp_path: Path, db_url: str, pki: Path
) -> None:
    ca = Authority.create(pki, "logs")
    receiver = ca.issue(pki, [LOOPBACK])
    url = None if db_url.startswith("sqlite") else db_url
    env = {**FAST, "VAULTGATE_SINK_TIMEOUT_SECONDS": "1"}
    with (
        run_vault(tmp_path / "data", url, extra_env=env) as vault,
        silent_listener() as silent_port,
        tls_syslog_listener(receiver.cert, receiver.key) as listener,
        vault.admin() as admin,
    ):
        for name, port in (("silent", silent_port), ("rsyslog", listener.port)):
            config = {"host": LOOPBACK, "port": port, "tls": True, "ca_file": str(ca.pem)}
            body = {"name": name, "kind": "syslog", "config": config}
            assert admin.post("/v1/audit/sinks", json=body).status_code == 201
        cursor = _state(admin, "silent")["cursor"]

        def app(name: str) -> str:
            created = admin.post("/v1/apps", json={"name": name})
            assert created.status_code == 201, created.text
            return str(created.json()["id"])

        def got(*app_ids: str) -> bool:
            return set(app_ids) <= {e["app_id"] for e in _received(listener)}

        first = app("first")
        wait_until(lambda: _state(admin, "silent")["attempts"] >= 1, tries=1200)
        second = app("second")  # written after the silent sink's attempt timed out
        wait_until(lambda: got(first, second), tries=1200)  # so the loop went on
        silent = _state(admin, "silent")

    assert silent["last_error"] == "syslog: timed out"
    assert silent["cursor"] == cursor


def test_a_ca_file_gone_after_the_sink_was_made_fails_clearly_and_delivers_once_back(
    vault: Vault, pki: Path
) -> None:
    ca = Authority.create(pki, "logs")
    receiver = ca.issue(pki, [LOOPBACK])
    anchor = ca.pem.read_bytes()
    with tls_syslog_listener(receiver.cert, receiver.key) as listener, vault.admin() as admin:
        config = {"host": LOOPBACK, "port": listener.port, "tls": True, "ca_file": str(ca.pem)}
        created = admin.post(
            "/v1/audit/sinks", json={"name": "rsyslog", "kind": "syslog", "config": config}
        )
        assert created.status_code == 201, created.text
        cursor = created.json()["state"]["cursor"]
        ca.pem.unlink()  # a node without the file, or an operator's slip
        assert admin.post("/v1/apps", json={"name": "app"}).status_code == 201
        wait_until(lambda: _state(admin, "rsyslog")["attempts"] >= 1, tries=2400)
        failed = _state(admin, "rsyslog")
        with listener.lock:
            reached = bytes(listener.raw)
        ca.pem.write_bytes(anchor)
        due = _trail_after(admin, cursor)
        wait_until(lambda: _caught_up(admin, "rsyslog", due), tries=2400)

    assert failed["last_error"] == "syslog: ca_file cannot be read (FileNotFoundError)"
    assert failed["cursor"] == cursor
    assert reached == b""  # without its trust anchor it does not even connect
    assert [e["id"] for e in _received(listener)] == [e["id"] for e in due]


def test_a_receiver_that_requires_a_client_certificate_gets_the_trail_once_the_vault_has_one(
    vault: Vault, pki: Path
) -> None:
    """Mutual TLS (rsyslog's ``x509/name`` mode): without a certificate of its own the vault gets
    not one event through and keeps its cursor; given its certificate and key, the receiver
    sees the vault's name and gets everything, once, in order."""
    logs, clients = Authority.create(pki, "logs"), Authority.create(pki, "clients")
    receiver = logs.issue(pki, [LOOPBACK])
    ours = clients.issue(pki, ["vault.example"], client=True)
    with (
        tls_syslog_listener(receiver.cert, receiver.key, client_ca=clients.pem) as listener,
        vault.admin() as admin,
    ):
        base = {"host": LOOPBACK, "port": listener.port, "tls": True, "ca_file": str(logs.pem)}
        body = {"name": "rsyslog", "kind": "syslog", "config": base}
        created = admin.post("/v1/audit/sinks", json=body)
        assert created.status_code == 201, created.text
        cursor = created.json()["state"]["cursor"]
        assert admin.post("/v1/apps", json={"name": "app-1"}).status_code == 201
        wait_until(
            lambda: _state(admin, "rsyslog")["attempts"] >= 2 and len(listener.refused) >= 2,
            tries=2400,
        )
        refused = _state(admin, "rsyslog")
        with listener.lock:
            clear_when_refused, messages_when_refused = (
                bytes(listener.plaintext),
                list(listener.messages),
            )
        withheld = _trail_after(admin, cursor)

        mutual = {**base, "cert_file": str(ours.cert), "key_file": str(ours.key)}
        fixed = admin.patch("/v1/audit/sinks/rsyslog", json={"config": mutual})
        assert fixed.status_code == 200, fixed.text
        assert (fixed.json()["config"]["cert_file"], fixed.json()["config"]["key_file"]) == (
            str(ours.cert),
            str(ours.key),
        )
        due = _trail_after(admin, cursor)
        wait_until(lambda: _caught_up(admin, "rsyslog", due), tries=2400)
        delivered = _state(admin, "rsyslog")

    assert clear_when_refused == b"" and messages_when_refused == []
    assert refused["cursor"] == cursor
    # Read from the receiver's alert, not a timeout: the refusal is named.
    assert refused["last_error"] == "syslog: TLS failed: TLSV13_ALERT_CERTIFICATE_REQUIRED"
    assert [e["event"] for e in withheld] == ["app:create"]
    assert [e["id"] for e in _received(listener)] == [e["id"] for e in due]
    assert set(listener.clients) == {"vault.example"}
    assert (delivered["attempts"], delivered["last_error"]) == (0, None)


def test_a_client_certificate_that_cannot_be_used_is_refused_naming_the_file(
    vault: Vault, pki: Path
) -> None:
    clients = Authority.create(pki, "clients")
    ours, other = (clients.issue(pki, [name], client=True) for name in ("vault", "other"))
    key_text = ours.key.read_text()
    fifo = pki / "key.fifo"
    os.mkfifo(fifo)
    base = {"host": LOOPBACK, "port": 6514, "tls": True}
    cases = [
        ({"cert_file": str(ours.cert)}, "config", "key_file is missing"),
        ({"key_file": str(ours.key)}, "config", "cert_file is missing"),
        (
            {"cert_file": str(ours.cert), "key_file": str(other.key)},
            "config.key_file",
            "is not the key of cert_file's certificate",
        ),
        (
            {"cert_file": str(pki / "gone.pem"), "key_file": str(ours.key)},
            "config.cert_file",
            "cannot be read (FileNotFoundError)",
        ),
        (
            {"cert_file": str(ours.key), "key_file": str(ours.key)},
            "config.cert_file",
            "PEM certificate (chain) and its unencrypted private key",
        ),
        (
            {"cert_file": str(ours.cert), "key_file": "relative/key.pem"},
            "config.key_file",
            "absolute",
        ),
        ({"tls": False, "cert_file": str(ours.cert)}, "config.cert_file", "needs tls: true"),
        (
            {"cert_file": str(ours.cert), "key_file": str(fifo)},
            "config.key_file",
            "is not a regular file",  # opening a FIFO would block the loading thread
        ),
        ({"server_name": "logs..example"}, "config.server_name", "1 to 63 characters"),
    ]
    with vault.admin() as admin:
        for i, (given, field, message) in enumerate(cases):
            body = {"name": f"bad-{i}", "kind": "syslog", "config": {**base, **given}}
            answer = admin.post("/v1/audit/sinks", json=body)
            assert answer.status_code == 422, (given, answer.text)
            detail = answer.json()["detail"]
            assert detail["field"] == field, (given, detail)
            assert message in detail["message"], (given, detail)
            assert key_text not in answer.text and "PRIVATE KEY" not in answer.text
        assert admin.get("/v1/audit/sinks").json()["items"] == []
