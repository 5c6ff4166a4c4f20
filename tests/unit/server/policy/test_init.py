"""The package's public surface: a sorted __all__ whose every name exists."""

from __future__ import annotations

import vaultgate.server.policy as policy


def test_all_is_sorted_and_complete() -> None:
    assert policy.__all__ == sorted(policy.__all__)
    for name in policy.__all__:
        assert getattr(policy, name) is not None
    public = {n for n in vars(policy) if not n.startswith("_")}
    # Submodule names, except ``decide``: the function of that name shadows its module.
    modules = {"approval", "constraints", "globs", "methods", "models", "narrowing", "ratelimit"}
    assert public - modules == set(policy.__all__)
