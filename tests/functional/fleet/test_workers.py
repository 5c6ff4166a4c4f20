"""``serve --workers N`` as an operator and an attacker meet it: supervision, sockets, shutdown."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from functional.fleet.nodes import VAULTGATE, Node, init_vault, start_node
from support import Upstream
from support.database import engine_of
from support.injection import Tenant
from vaultgate.server.fleet.sockets import bind_group


def _node(data_dir: Path, workers: int = 2) -> Node:
    return start_node(data_dir, init_vault(data_dir, None), None, workers)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    started = _node(tmp_path_factory.mktemp("workers") / "data")
    try:
        yield started
    finally:
        started.stop()


def _all_answered(node: Node, count: int = 20) -> None:
    """``count`` requests on fresh connections, each answered (any worker may take each)."""
    for _ in range(count):
        assert httpx.get(f"{node.base_url}/readyz", trust_env=False, timeout=30).status_code == 200


def _accepted(sock: socket.socket) -> int:
    """Connections waiting in ``sock``'s accept queue (the handshake is done by the kernel)."""
    sock.setblocking(False)
    count = 0
    while True:
        try:
            conn, _ = sock.accept()
        except BlockingIOError:
            return count
        conn.close()
        count += 1


def _foreign(port: int) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(64)
    return sock


def test_a_foreign_reuseport_socket_on_the_vaults_port_receives_nothing(node: Node) -> None:
    # The kernel lets a process of the same user join the group; the vault's steering means it
    # is never picked, so no client's connection (and API key) ever reaches it.
    with _foreign(node.port) as foreign:
        _all_answered(node, 40)
        assert _accepted(foreign) == 0


def test_a_plain_reuseport_group_would_have_shared_connections_with_it() -> None:
    """The twin, in process: unsteered, the same foreign socket takes its share; steered, none."""
    for steered in (False, True):
        if steered:
            group = bind_group("127.0.0.1", 0, 2)
        else:
            group = [_foreign(0)]
            group.append(_foreign(group[0].getsockname()[1]))
        port = group[0].getsockname()[1]
        with _foreign(port) as foreign:
            clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(60)]
            taken = _accepted(foreign)
            ours = sum(_accepted(sock) for sock in group)
            for sock in [*clients, *group]:
                sock.close()
        assert ours + taken == 60
        assert (taken == 0) if steered else (taken > 0)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_second_vault_on_a_taken_port_refuses_to_start(
    node: Node, tmp_path: Path, workers: int
) -> None:
    # Unchecked, a second `serve --workers 2` joined the running vault's SO_REUSEPORT group
    # and, never picked by its steering, ran on serving nothing; one process announced
    # "serving on" and then died of a traceback.
    data_dir = tmp_path / "data"
    init_vault(data_dir, None)
    command = [*VAULTGATE, "serve", "--port", str(node.port), "--workers", str(workers)]
    env = {**os.environ, "VAULTGATE_DATA_DIR": str(data_dir)}
    env.pop("VAULTGATE_DATABASE_URL", None)
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert f"refusing to start: cannot listen on 127.0.0.1:{node.port}" in done.stderr
    assert "in use" in done.stderr
    assert "Traceback" not in done.stderr and "serving on" not in done.stderr
    _all_answered(node, 20)  # the twin: the vault holding the port serves on


def _gone(pid: int) -> bool:
    """Whether ``pid`` has ended (a zombie nobody reaps has ended too)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "State:\tZ" in status


def test_workers_stop_when_their_supervisor_is_killed(tmp_path: Path) -> None:
    # SIGKILL leaves the parent no time to stop its workers. Orphaned, they went on serving the
    # port for good: a restarted vault then found it taken, and nobody supervised the workers.
    orphaned = _node(tmp_path / "data")
    workers = orphaned.worker_pids()
    assert len(workers) == 2
    orphaned.proc.kill()
    orphaned.proc.wait(timeout=30)
    deadline = time.monotonic() + 90
    try:
        while not all(_gone(pid) for pid in workers):
            assert time.monotonic() < deadline, f"workers outlived their supervisor: {workers}"
            time.sleep(0.1)
    finally:
        for pid in workers:  # none is left serving on the machine, whatever the outcome
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    orphaned.stop()  # their end of its log is closed now: the reader has finished
    with socket.socket() as probe:  # the port is free again for the vault's next start
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", orphaned.port))


def test_a_killed_worker_is_logged_and_replaced(node: Node) -> None:
    started = len(node.worker_pids())
    victim = node.worker_pids()[0]
    os.kill(victim, signal.SIGKILL)
    node.wait_for_log(f"(pid {victim}) died: killed by SIGKILL")
    node.wait_for_log("started (pid", count=started + 1)
    # The replacement took over the dead worker's socket: every connection is answered again.
    _all_answered(node, 20)
    assert node.proc.poll() is None


def test_the_parent_exits_non_zero_when_workers_keep_dying(tmp_path: Path) -> None:
    dying = _node(tmp_path / "data")
    killed: set[int] = set()
    deadline = time.monotonic() + 90
    while dying.proc.poll() is None:
        assert time.monotonic() < deadline, dying.log
        for pid in set(dying.worker_pids()) - killed:
            killed.add(pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)
    assert dying.stop() == 1
    assert any("stopping the vault" in line for line in dying.log), dying.log


def test_sigterm_drains_in_flight_requests_and_flushes_the_audit_trail(
    tmp_path: Path, upstream: Upstream
) -> None:
    stopping = _node(tmp_path / "data")
    tenant = Tenant.create(stopping.vault, "drain")
    grant = tenant.store(
        {"credential_type": "bearer", "credential": {"token": "canary-drain-Lr8Wd3"}},
        [upstream.origin],
    )
    answer: list[httpx.Response] = []

    def in_flight() -> None:
        answer.append(
            httpx.get(
                f"{stopping.base_url}/proxy/{grant}/gated-sse",
                headers={"Authorization": f"Bearer {tenant.key}"},
                trust_env=False,
                timeout=60,
            )
        )

    caller = threading.Thread(target=in_flight)
    caller.start()
    deadline = time.monotonic() + 30
    while not any("/gated-sse" in r.path for r in upstream.requests):
        assert time.monotonic() < deadline, "the request never reached the upstream"
        time.sleep(0.02)
    stopping.proc.send_signal(signal.SIGTERM)
    stopping.wait_for_log("stopping the workers")
    upstream.gate.set()  # only now may the in-flight response finish
    caller.join(60)
    assert stopping.stop() == 0
    [response] = answer
    assert response.status_code == 200 and response.text.count("data: ") == 4
    with engine_of(stopping.vault) as engine, engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT event, upstream_status FROM audit_events"
                " WHERE grant_id = :g AND event LIKE 'grant:%'"
            ),
            {"g": grant},
        ).all()
    # The outcome is written by the writer after the response: the drain flushed it.
    assert sorted(tuple(r) for r in rows) == [("grant:outcome", 200), ("grant:use", None)]
