"""The package's public names: sorted, complete, and free of the server."""

from __future__ import annotations

import subprocess
import sys

import vaultgate.injection as injection


def test_all_is_sorted_and_importable() -> None:
    assert injection.__all__ == sorted(injection.__all__)
    for name in injection.__all__:
        assert getattr(injection, name) is not None


def test_importing_the_package_does_not_import_the_server() -> None:
    code = (
        "import sys, vaultgate.injection; "
        "print(any(m.startswith('vaultgate.server') for m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
