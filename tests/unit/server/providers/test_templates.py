"""The placeholder grammar shared by host templates and injection formats."""

from __future__ import annotations

import pytest

from vaultgate.server.providers.templates import placeholders, substitute


def test_placeholders_in_order_without_repeats() -> None:
    assert placeholders("{a}-{b}.{a}") == ("a", "b")
    assert placeholders("no placeholders") == ()


@pytest.mark.parametrize(
    "template", ["{}", "{0}", "{a.b}", "{a[0]}", "{a!r}", "{a:>10}", "{{a}}", "{a", "a}", "{1a}"]
)
def test_malformed_placeholders_are_refused(template: str) -> None:
    with pytest.raises(ValueError):
        placeholders(template)


def test_substitute_leaves_unknown_names_for_a_later_stage() -> None:
    assert substitute("{app}:{token}", {"app": "X1"}) == "X1:{token}"
