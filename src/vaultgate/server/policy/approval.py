"""``requires_approval``: which calls of a grant wait for people, and the clone rule for it.

Pure like the rest of ``policy/``: matching a call and comparing two rules, no I/O. Holding,
deciding and executing a call live in ``server/approvals``.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from vaultgate.server.policy.globs import glob_covers, glob_matches, glob_problem
from vaultgate.server.policy.methods import METHODS, distinct_methods

# The same methods policy.models knows; repeated here so this module needs nothing from it.
MAX_APPROVALS = 10
MAX_APPROVAL_TTL = 7 * 24 * 3600
MAX_APPROVERS = 256


def _email(value: str) -> str:
    value = value.strip().lower()
    if "@" not in value or any(ch.isspace() for ch in value) or not value.isprintable():
        raise ValueError("must be a portal user's email address")
    return value


def _glob(value: str) -> str:
    problem = glob_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


ApproverEmail = Annotated[
    str, Field(min_length=3, max_length=320, strict=True), AfterValidator(_email)
]
GroupName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$", strict=True)]
Glob = Annotated[str, Field(min_length=1, max_length=600, strict=True), AfterValidator(_glob)]


class ApprovalRule(BaseModel):
    """Which calls wait for people, who those people are, how many, and for how long.

    ``methods`` and ``paths`` left unset match every call. Approvers are portal users named by
    email, or the members of a named group; with neither, any portal user may approve.
    ``approvals`` distinct people must each approve one gate (N of N) before the call is sent.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    methods: list[str] | None = Field(default=None, min_length=1, max_length=len(METHODS))
    paths: list[Glob] | None = Field(default=None, min_length=1, max_length=256)
    approvers: list[ApproverEmail] | None = Field(
        default=None, min_length=1, max_length=MAX_APPROVERS
    )
    group: GroupName | None = None
    approvals: int = Field(default=1, strict=True, ge=1, le=MAX_APPROVALS)
    ttl_seconds: int = Field(default=3600, strict=True, ge=1, le=MAX_APPROVAL_TTL)

    @field_validator("methods", mode="before")
    @classmethod
    def _methods(cls, value: object) -> object:
        return distinct_methods(value)

    @field_validator("approvers")
    @classmethod
    def _distinct(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else list(dict.fromkeys(value))

    def covers(self, method: str, path: str) -> bool:
        """Whether a call (``path`` already normalised) needs this rule's approval."""
        if self.methods is not None and method.upper() not in self.methods:
            return False
        return self.paths is None or any(glob_matches(glob, path) for glob in self.paths)


def approval_narrower(child: ApprovalRule, parent: ApprovalRule) -> str | None:
    """Why ``child`` would hold fewer calls or ask less than ``parent``; None when it is tighter.

    Tighter means: it holds at least the parent's calls, only the parent's approvers (or the
    same group) may decide, at least as many must, and the window is no longer.
    """
    if parent.methods is not None and child.methods is not None:
        if not set(parent.methods) <= set(child.methods):
            return "must hold every method the parent holds"
    elif child.methods is not None:
        return "must hold every method: the parent holds them all"
    if parent.paths is not None and child.paths is not None:
        if not all(any(glob_covers(c, p) for c in child.paths) for p in parent.paths):
            return "must hold every path the parent holds"
    elif child.paths is not None:
        return "must hold every path: the parent holds them all"
    return _approvers_narrower(child, parent) or _counts_narrower(child, parent)


def _approvers_narrower(child: ApprovalRule, parent: ApprovalRule) -> str | None:
    if parent.group is not None and child.group != parent.group:
        return "must keep the parent's approver group"
    if parent.approvers is not None and (
        child.approvers is None or not set(child.approvers) <= set(parent.approvers)
    ):
        return "may only name approvers the parent names"
    return None


def _counts_narrower(child: ApprovalRule, parent: ApprovalRule) -> str | None:
    if child.approvals < parent.approvals:
        return "may not need fewer approvals than the parent"
    if child.ttl_seconds > parent.ttl_seconds:
        return "may not wait longer than the parent"
    return None
