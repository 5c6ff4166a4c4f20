"""Spending budgets: usage read from LLM answers, priced, and counted exactly in the audit batch.

It owns the budget windows, the meter, the price table and the usage views; it never holds a
response back (the relay streams on while the meter reads).
"""

from vaultgate.server.budgets.ledger import BudgetAlert, Ledger, Spend, Spending
from vaultgate.server.budgets.meter import Usage, UsageMeter
from vaultgate.server.budgets.pricing import Pricing, PricingError, load_pricing
from vaultgate.server.budgets.windows import window_of

__all__ = [
    "BudgetAlert",
    "Ledger",
    "Pricing",
    "PricingError",
    "Spend",
    "Spending",
    "Usage",
    "UsageMeter",
    "load_pricing",
    "window_of",
]
