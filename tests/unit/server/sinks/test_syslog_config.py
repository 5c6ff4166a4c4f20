"""The syslog sink's TLS settings: RFC 5425's port by default, verification always on, and a
row stored before TLS existed still delivered over plain TCP."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from support.audit import wait_until
from support.certs import Authority
from support.receivers import syslog_listener
from unit.server.sinks.conftest import NOW, append_events
from vaultgate.server.auth.services import Actor
from vaultgate.server.crypto import Barrier
from vaultgate.server.sinks import Deliverer, SinkCreate, SinkStore, transports
from vaultgate.server.sinks.delivery import DeliverySettings
from vaultgate.server.sinks.models import SyslogConfig
from vaultgate.server.storage.tables import audit_sinks


@pytest.mark.parametrize(
    ("given", "port"),
    [({}, 514), ({"tls": True}, 6514), ({"tls": True, "port": 10514}, 10514)],
)
def test_tls_listens_on_rfc_5425s_port_unless_told(given: dict[str, object], port: int) -> None:
    assert SyslogConfig.model_validate({"host": "logs.internal", **given}).port == port


def test_the_tls_context_always_verifies_chain_and_name_from_tls_1_2(tmp_path: Path) -> None:
    ca = Authority.create(tmp_path, "logs")
    for context in (transports.tls_context(None), transports.tls_context(str(ca.pem))):
        assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
        assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
    pinned = transports.tls_context(str(ca.pem)).get_ca_certs()
    assert [c["subject"] for c in pinned] == [((("commonName", "logs"),),)]  # only that CA


async def test_a_syslog_row_from_before_tls_is_delivered_over_plain_tcp(
    engine: Engine, store: SinkStore, barrier: Barrier
) -> None:
    with syslog_listener() as listener:
        config = {"host": "127.0.0.1", "port": listener.port}
        body = SinkCreate.model_validate({"name": "old", "kind": "syslog", "config": config})
        sink_id = store.create(body, Actor())["id"]
        with engine.begin() as conn:  # as an older version stored it
            old = {**config, "facility": 13, "app_name": "vaultgate"}
            conn.execute(sa.update(audit_sinks).values(config=old))
        append_events(engine, 2)
        deliverer = Deliverer(engine, store, barrier, lambda: NOW, DeliverySettings())
        await deliverer.run_once()
        wait_until(lambda: len(listener.messages) == 2)  # the handler splits after the close
    sink = store.find(sink_id)
    assert (sink.cursor, sink.last_error) == (3, None)  # past its creation (1) and the two


async def test_a_bracketed_ipv6_receiver_is_reached_at_its_address(
    engine: Engine, store: SinkStore, barrier: Barrier
) -> None:
    # "[::1]" was stored as given and looked up as a name: every delivery failed.
    with syslog_listener("::1") as listener:
        config = {"host": "[::1]", "port": listener.port}
        body = SinkCreate.model_validate({"name": "v6", "kind": "syslog", "config": config})
        sink_id = store.create(body, Actor())["id"]
        append_events(engine, 2)
        deliverer = Deliverer(engine, store, barrier, lambda: NOW, DeliverySettings())
        await deliverer.run_once()
        wait_until(lambda: len(listener.messages) == 2)
    sink = store.find(sink_id)
    assert (sink.cursor, sink.last_error) == (3, None)


@pytest.mark.parametrize("host", ["[::1]", "::1", "[2001:db8::1]"])
def test_an_ipv6_host_is_kept_without_brackets(host: str) -> None:
    assert SyslogConfig.model_validate({"host": host}).host == host.strip("[]")


@pytest.mark.parametrize("host", ["[logs.internal]", "logs[1].internal", "[::1", "[127.0.0.1]"])
def test_brackets_around_anything_but_an_ipv6_address_are_refused(host: str) -> None:
    with pytest.raises(ValueError, match="brackets may only hold an IPv6 address"):
        SyslogConfig.model_validate({"host": host})
