"""Billing's models, one module per subdomain; every model and helper is importable from here, as before."""

from .columns import money
from .credit import BillingMode, CreditAccount, CreditGrant, CreditHold, LedgerEntry, LowBalanceAlert
from .invoices import Invoice, InvoiceLine
from .payments import AutoRecharge, Payment, StripeEvent
from .rates import ModelRate, PriceChange, PricePlan, decimal_tiers
from .usage import RouteRollup, UsageRecord, UsageRollup, UsageRollupState

__all__ = [
    "AutoRecharge",
    "BillingMode",
    "CreditAccount",
    "CreditGrant",
    "CreditHold",
    "Invoice",
    "InvoiceLine",
    "LedgerEntry",
    "LowBalanceAlert",
    "ModelRate",
    "Payment",
    "PriceChange",
    "PricePlan",
    "RouteRollup",
    "StripeEvent",
    "UsageRecord",
    "UsageRollup",
    "UsageRollupState",
    "decimal_tiers",
    "money",
]
