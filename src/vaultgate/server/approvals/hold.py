"""Whether a call must wait for people: the pipeline's one hook into approvals."""

from __future__ import annotations

from collections.abc import Sequence

from vaultgate.server.approvals.errors import ApprovalRequired
from vaultgate.server.egress.urls import normalize_path
from vaultgate.server.policy import Policy


def check_hold(policies: Sequence[Policy], method: str, path: str) -> None:
    """Raise :class:`ApprovalRequired` when any policy of the grant's chain holds this call.

    Clones may only tighten an ancestor's rule, but an ancestor can be re-policed later; so
    every rule in the chain that holds the call counts: the most approvals any asks for, the
    shortest window, and an approver must be eligible under each rule.
    """
    # On the path of every request: a grant that holds nothing costs one loop over its chain.
    for policy in policies:
        if policy.requires_approval is not None:
            break
    else:
        return
    rules = [
        rule
        for policy in policies
        if (rule := policy.requires_approval) is not None
        and rule.covers(method, normalize_path(path))
    ]
    if not rules:
        return
    raise ApprovalRequired(
        approvals=max(r.approvals for r in rules),
        ttl_seconds=min(r.ttl_seconds for r in rules),
        eligible=[{"approvers": r.approvers, "group": r.group} for r in rules],
    )
