"""`serve_many` on a port that was taken after `serve` checked it: the same one-line refusal
and exit code 1, no traceback and no worker started."""

from __future__ import annotations

import logging
import socket

import pytest

from vaultgate.server import serving
from vaultgate.server.settings import load_settings


def test_a_port_taken_meanwhile_is_refused_with_exit_code_1(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[object] = []
    monkeypatch.setattr(serving, "Supervisor", lambda *a: started.append(a))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = load_settings({"VAULTGATE_HOST": "127.0.0.1", "VAULTGATE_PORT": str(port)})
        with caplog.at_level(logging.ERROR, logger="vaultgate.serve"):
            assert serving.serve_many(settings, 2, {}) == 1
    assert f"refusing to start: cannot listen on 127.0.0.1:{port}" in caplog.text
    assert "in use" in caplog.text
    assert started == []  # no supervisor, so no worker
