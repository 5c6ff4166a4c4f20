"""The policy document of DESIGN section 6, validated on write.

Every field is optional; ``None`` means "unrestricted". An empty list means "nothing": a policy
with ``allowed_methods: []`` allows no request at all. ``parse_policy`` is the one entry point for
untrusted input and turns any validation failure into a 422 naming the field at fault.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from vaultgate.server.errors import Unprocessable
from vaultgate.server.policy.approval import ApprovalRule
from vaultgate.server.policy.globs import glob_problem
from vaultgate.server.policy.methods import METHODS, distinct_methods

Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MINUTES_PER_DAY = 24 * 60
MINUTES_PER_WEEK = 7 * MINUTES_PER_DAY

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
MAX_ITEMS = 256
MAX_MESSAGE = 200
_TIME = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])")


def _network(value: object) -> object:
    if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return value
    try:
        # Strings only: ip_network() would also take an integer, which no one means as a CIDR.
        if not isinstance(value, str):
            raise ValueError
        return ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        raise ValueError("must be a CIDR such as 10.0.0.0/8 or 2001:db8::/32") from None


Network = Annotated[IPNetwork, BeforeValidator(_network)]
Strict = ConfigDict(extra="forbid", frozen=True)


def _minutes(value: str, *, allow_midnight_end: bool) -> int:
    if allow_midnight_end and value == "24:00":
        return MINUTES_PER_DAY
    match = _TIME.fullmatch(value)
    if match is None:
        allowed = "00:00 to 24:00" if allow_midnight_end else "00:00 to 23:59"
        raise ValueError(f"must be a time HH:MM from {allowed}")
    return int(match[1]) * 60 + int(match[2])


class Window(BaseModel):
    """A weekly window in local wall-clock time; ``start > end`` runs past midnight."""

    model_config = Strict

    days: list[Day] = Field(min_length=1, max_length=7)
    start: str = Field(max_length=5)
    end: str = Field(max_length=5)

    @field_validator("days", mode="before")
    @classmethod
    def _lower_days(cls, value: object) -> object:
        if isinstance(value, list):
            return [d.lower() if isinstance(d, str) else d for d in value]
        return value

    @field_validator("days")
    @classmethod
    def _unique_days(cls, value: list[Day]) -> list[Day]:
        return [d for d in DAYS if d in value]

    @field_validator("start")
    @classmethod
    def _check_start(cls, value: str) -> str:
        _minutes(value, allow_midnight_end=False)
        return value

    @field_validator("end")
    @classmethod
    def _check_end(cls, value: str, info: ValidationInfo) -> str:
        end = _minutes(value, allow_midnight_end=True)
        start = info.data.get("start")
        if start is not None and _minutes(start, allow_midnight_end=False) == end:
            raise ValueError("must differ from start (the window would be empty)")
        return value

    @property
    def start_minute(self) -> int:
        return _minutes(self.start, allow_midnight_end=False)

    @property
    def end_minute(self) -> int:
        return _minutes(self.end, allow_midnight_end=True)

    def week_intervals(self) -> list[tuple[int, int]]:
        """Half-open minute ranges of the week (Monday 00:00 = 0) that this window covers."""
        spans: list[tuple[int, int]] = []
        start, end = self.start_minute, self.end_minute
        for day in self.days:
            base = DAYS.index(day) * MINUTES_PER_DAY
            if start < end:
                spans.append((base + start, base + end))
                continue
            spans.append((base + start, base + MINUTES_PER_DAY))
            # The part after midnight belongs to the next day; Sunday night wraps to Monday.
            next_base = (base + MINUTES_PER_DAY) % MINUTES_PER_WEEK
            if end > 0:
                spans.append((next_base, next_base + end))
        return spans


def merge_intervals(spans: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """Sorted, disjoint, non-touching ranges with the same union as ``spans``."""
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(spans):
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
        else:
            merged.append((lo, hi))
    return tuple(merged)


class Schedule(BaseModel):
    """Weekly windows in an IANA time zone; an instant is inside when its local time is."""

    model_config = Strict

    timezone: str = Field(min_length=1, max_length=64)
    windows: list[Window] = Field(min_length=1, max_length=MAX_ITEMS)
    _zone: ZoneInfo = PrivateAttr()
    _intervals: tuple[tuple[int, int], ...] = PrivateAttr()

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise ValueError("must be an IANA time zone such as Europe/Paris") from None
        return value

    def model_post_init(self, context: Any, /) -> None:
        self._zone = ZoneInfo(self.timezone)
        self._intervals = merge_intervals([s for w in self.windows for s in w.week_intervals()])

    @property
    def intervals(self) -> tuple[tuple[int, int], ...]:
        return self._intervals

    def contains(self, now: datetime) -> bool:
        """Whether the aware instant ``now`` falls inside a window, in local wall-clock time."""
        local = now.astimezone(self._zone)
        minute = local.weekday() * MINUTES_PER_DAY + local.hour * 60 + local.minute
        return any(lo <= minute < hi for lo, hi in self._intervals)


class RateLimit(BaseModel):
    model_config = Strict

    requests: int = Field(strict=True, ge=1, le=1_000_000_000)
    per_seconds: int = Field(strict=True, ge=1, le=366 * 24 * 3600)


BudgetPeriod = Literal["hour", "day", "month"]
BudgetMetric = Literal["requests", "tokens", "usd"]
BUDGET_METRICS: tuple[BudgetMetric, ...] = ("requests", "tokens", "usd")
MAX_BUDGET = 10**15
MAX_BUDGET_USD = Decimal(1_000_000_000)
NANOS_PER_USD = 10**9


def _usd(value: object) -> object:
    # Text or a whole number only: a JSON float such as 0.1 is not the amount anyone meant.
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise ValueError('must be an amount in USD as text, such as "5.00"')
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError('must be an amount in USD as text, such as "5.00"') from None
    if not amount.is_finite() or not 0 < amount <= MAX_BUDGET_USD:
        raise ValueError(f"must be more than 0 and at most {MAX_BUDGET_USD}")
    if amount.as_tuple().exponent < -6:  # type: ignore[operator]
        raise ValueError("must have at most 6 decimal places")
    return amount


class Budget(BaseModel):
    """A spending limit per calendar window (UTC): exactly one of requests, tokens or usd.

    The request that crosses it completes; every later one in the window is refused (429
    ``quota_exceeded``). Counted exactly across workers and nodes (``budgets.ledger``).
    """

    model_config = Strict

    requests: int | None = Field(default=None, strict=True, ge=1, le=MAX_BUDGET)
    tokens: int | None = Field(default=None, strict=True, ge=1, le=MAX_BUDGET)
    usd: Annotated[Decimal, BeforeValidator(_usd)] | None = None
    per: BudgetPeriod
    alert_at_percent: int = Field(default=80, strict=True, ge=1, le=100)

    @model_validator(mode="after")
    def _one_limit(self) -> Budget:
        given = [name for name in BUDGET_METRICS if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of requests, tokens or usd")
        return self

    @property
    def metric(self) -> BudgetMetric:
        return next(name for name in BUDGET_METRICS if getattr(self, name) is not None)

    @property
    def limit(self) -> int:
        """The limit in counted units: requests, tokens, or nano-USD."""
        if self.usd is not None:
            return int(self.usd * NANOS_PER_USD)
        return int(self.requests if self.requests is not None else self.tokens or 0)


def _glob(value: str) -> str:
    problem = glob_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


PathGlob = Annotated[str, Field(min_length=1, max_length=600, strict=True), AfterValidator(_glob)]


def _caller(value: str) -> str:
    if not value.isprintable():
        raise ValueError("must be printable")
    return value


CallerName = Annotated[
    str, Field(min_length=1, max_length=128, strict=True), AfterValidator(_caller)
]


class Policy(BaseModel):
    """A grant's policy. ``None`` in a field means that field does not restrict anything."""

    model_config = Strict

    allowed_methods: list[str] | None = Field(default=None, max_length=len(METHODS))
    allowed_paths: list[PathGlob] | None = Field(default=None, max_length=MAX_ITEMS)
    not_before: AwareDatetime | None = None
    expires_at: AwareDatetime | None = None
    schedule: Schedule | None = None
    ip_allow: list[Network] | None = Field(default=None, max_length=MAX_ITEMS)
    ip_deny: list[Network] | None = Field(default=None, max_length=MAX_ITEMS)
    callers: list[CallerName] | None = Field(default=None, max_length=MAX_ITEMS)
    rate_limit: RateLimit | None = None
    budget: Budget | None = None
    require_reason: bool | None = Field(default=None, strict=True)
    proxy_only: bool | None = Field(default=None, strict=True)
    requires_approval: ApprovalRule | None = None

    @field_validator("allowed_methods", mode="before")
    @classmethod
    def _methods(cls, value: object) -> object:
        return distinct_methods(value)

    @field_validator("expires_at")
    @classmethod
    def _after_not_before(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        not_before = info.data.get("not_before")
        if value is not None and not_before is not None and value <= not_before:
            raise ValueError("must be later than not_before")
        return value

    def to_doc(self) -> dict[str, Any]:
        """The JSON-ready document, without unset fields."""
        return self.model_dump(mode="json", exclude_none=True)


def _field_name(loc: tuple[int | str, ...]) -> str:
    parts = ["policy"]
    for part in loc:
        text = str(part)
        # Unknown keys come from the client: keep them short and printable in the error.
        if not text.isprintable() or len(text) > 64:
            text = "".join(ch if ch.isprintable() else "?" for ch in text[:64]) + "..."
        parts.append(text)
    return ".".join(parts)


def _short(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."


def parse_policy(data: object) -> Policy:
    """Validate an untrusted policy document; a 422 names the first field at fault."""
    if data is None:
        return Policy()
    if not isinstance(data, dict):
        raise Unprocessable("policy: must be a JSON object", field="policy")
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False, include_context=False)[0]
        message = str(first["msg"]).removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            message = "unknown field"
        field = _field_name(tuple(first["loc"]))
        raise Unprocessable(_short(f"{field}: {message}"), field=field) from None
