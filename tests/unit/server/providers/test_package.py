"""The package's public surface and its dependency rule."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import vaultgate.server.providers as providers

ALLOWED_PREFIXES = (
    "pydantic",
    "vaultgate.injection",
    "vaultgate.server.errors",
    "vaultgate.server.providers",
)


def test_all_is_sorted_and_complete() -> None:
    assert providers.__all__ == sorted(providers.__all__)
    assert set(providers.__all__) == {
        "AwsDefaults",
        "Catalogue",
        "CatalogueError",
        "CredentialField",
        "HostParam",
        "Placement",
        "Provider",
        "load_catalogue",
        "parse_catalogue",
        "public_catalogue",
    }
    for name in providers.__all__:
        assert getattr(providers, name) is not None


def test_only_the_standard_library_pydantic_and_shared_code_are_imported() -> None:
    package_dir = Path(providers.__file__).parent
    imported: set[str] = set()
    for path in package_dir.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
            elif isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
    foreign = {
        name
        for name in imported
        if name.split(".")[0] not in sys.stdlib_module_names
        and not name.startswith(ALLOWED_PREFIXES)
    }
    assert foreign == set()


def test_the_catalogue_ships_inside_the_package() -> None:
    assert (Path(providers.__file__).parent / "catalogue.json").is_file()
