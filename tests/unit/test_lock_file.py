"""requirements.lock pins every server and dev dependency that pyproject.toml names.

`make run` and `make test` install from the lock; a dependency added to pyproject.toml without
`make lock` would still install (unpinned) and this test says what to run.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    wanted = [*project["dependencies"], *extras["server"], *extras["dev"]]
    names = {_normal(m[0]) for req in wanted if (m := NAME.match(req))}
    return names - {"vaultgate"}


def _locked() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if m := re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^ ;\\]+)", line):
            pins[_normal(m[1])] = m[2]
    return pins


def test_every_declared_dependency_is_pinned_in_the_lock() -> None:
    missing = sorted(_declared() - set(_locked()))
    assert not missing, f"not in requirements.lock: {missing}; run `make lock` and commit it"


def test_every_pin_carries_hashes() -> None:
    text = (ROOT / "requirements.lock").read_text()
    blocks = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 2)[-1])
    unhashed = [b.split()[0] for b in blocks if "==" in b and "--hash=sha256:" not in b]
    assert not unhashed


def test_uvicorn_comes_without_a_file_watcher() -> None:
    # uvicorn imports watchfiles whenever it is installed: 0.6 MiB of every worker for
    # `--reload`, which `serve` never offers (pyproject.toml lists what `serve` does use).
    assert "watchfiles" not in _locked()
    assert {"uvicorn", "httptools", "websockets", "uvloop"} <= set(_locked())
