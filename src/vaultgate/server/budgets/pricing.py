"""What tokens cost: a per-model table shipped with the provider templates, overridable.

Prices are USD per million tokens, kept as ``Decimal`` and charged in whole nano-USD rounded up,
so a budget in USD is counted exactly (no float ever adds up a bill). A model is found by its
exact name, else by the longest name in the table that it starts with (a dated snapshot such as
``gpt-4o-2024-08-06`` prices as ``gpt-4o``). A model the table does not know costs nothing and
is marked ``priced: false`` in its outcome event.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from typing import Any

from vaultgate.server.budgets.meter import Usage

NANOS_PER_MTOK_USD = 1000  # 1 USD per million tokens is 1,000 nano-USD per token


class PricingError(ValueError):
    """A pricing table that cannot be used; the message names the model or the file."""


@dataclass(frozen=True, slots=True)
class Price:
    input: Decimal  # USD per million input tokens
    output: Decimal  # USD per million output tokens


class Pricing:
    """Model name -> price; ``cost`` prices one answer's usage in nano-USD."""

    def __init__(self, prices: Mapping[str, Price]) -> None:
        self._prices = dict(prices)
        self._by_length = sorted(self._prices, key=len, reverse=True)

    def __len__(self) -> int:
        return len(self._prices)

    def price_of(self, model: str | None) -> Price | None:
        if not model:
            return None
        name = model.lower().removeprefix("models/")  # Gemini's resource names
        if name in self._prices:
            return self._prices[name]
        return next((self._prices[k] for k in self._by_length if name.startswith(k)), None)

    def cost(self, usage: Usage) -> int | None:
        """The answer's cost in nano-USD, None when its model is not priced."""
        price = self.price_of(usage.model)
        if price is None:
            return None
        total = usage.tokens_in * price.input + usage.tokens_out * price.output
        return math.ceil(total * NANOS_PER_MTOK_USD)

    def with_overrides(self, overrides: Pricing) -> Pricing:
        return Pricing({**self._prices, **overrides._prices})


def parse_pricing(document: object, source: str) -> Pricing:
    """A table of the shape ``{"models": {name: {"input": "2.50", "output": "10.00"}}}``."""
    models = document.get("models") if isinstance(document, dict) else None
    if not isinstance(models, dict):
        raise PricingError(f"{source}: expected an object with a 'models' object")
    return Pricing(
        {str(name).lower(): _price(entry, f"{source}: {name}") for name, entry in models.items()}
    )


def _price(entry: Any, where: str) -> Price:
    if not isinstance(entry, dict) or set(entry) != {"input", "output"}:
        raise PricingError(f"{where}: expected {{'input': USD, 'output': USD}} per million tokens")
    return Price(_amount(entry["input"], where), _amount(entry["output"], where))


def _amount(value: object, where: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise PricingError(f'{where}: a price must be text such as "2.50"')
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise PricingError(f"{where}: {value!r} is not an amount") from None
    if not amount.is_finite() or amount < 0:
        raise PricingError(f"{where}: a price must be zero or more")
    return amount


def shipped_pricing() -> Pricing:
    text = resources.files("vaultgate.server.providers").joinpath("pricing.json").read_text()
    return parse_pricing(json.loads(text), "pricing.json")


def load_pricing(override_file: Path | None) -> Pricing:
    """The shipped table, with the entries of ``override_file`` (if any) replacing its own."""
    shipped = shipped_pricing()
    if override_file is None:
        return shipped
    try:
        document = json.loads(override_file.read_text())
    except (OSError, ValueError) as exc:
        raise PricingError(f"VAULTGATE_PRICING_FILE: cannot read {override_file}: {exc}") from None
    return shipped.with_overrides(parse_pricing(document, str(override_file)))
