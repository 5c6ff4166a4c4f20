"""One real vault, one recording upstream and one headless Chromium per module.

Chromium is Debian's (``/usr/bin/chromium``): missing, the tests skip, except under CI where a
skipped browser test would be a broken promise, so they fail. The same goes for axe-core, which
``npm ci`` installs from ``axe/package-lock.json`` (one pinned version) the first time it is needed.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from support import Upstream, Vault, run_upstream, run_vault

CHROMIUM = Path(os.environ.get("VAULTGATE_TEST_CHROMIUM", "/usr/bin/chromium"))
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "portal"
AXE_DIR = Path(__file__).resolve().parent / "axe"
AXE_SCRIPT = AXE_DIR / "node_modules" / "axe-core" / "axe.min.js"


def _missing(message: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        _missing(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def vault(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vault]:
    with run_vault(tmp_path_factory.mktemp("portal") / "data") as server:
        yield server


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    with run_upstream() as server:
        yield server


@pytest.fixture(scope="module")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def axe_source() -> str:
    """axe-core's script, to inject into each page; installed once from the lock file."""
    # Parallel test workers (pytest-xdist) each have this session fixture: the first one in
    # installs while the others wait on the lock, then find the script there.
    with (AXE_DIR / ".install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not AXE_SCRIPT.exists():
            npm = shutil.which("npm")
            if npm is None:
                _missing("npm not found: it installs axe-core for the accessibility tests")
            assert npm is not None
            done = subprocess.run(
                [npm, "ci", "--prefix", str(AXE_DIR), "--no-audit", "--no-fund"],
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            assert done.returncode == 0, f"npm ci for axe-core failed:\n{done.stderr}"
    return AXE_SCRIPT.read_text()
