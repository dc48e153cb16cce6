"""Postpaid invoices: issued monthly from the usage rollups (issuing.py), then collected (collecting.py: the saved
card, Stripe's answers, the operator's marks; refunds.py: refunds and disputes of their payment).

The names callers use are importable from here, as before the split.
"""

from .collecting import (
    DISPUTE_CLOSED,
    KEY_KEPT,
    MIN_CHARGE,
    STALE_CHARGE,
    PaymentInFlight,
    card_to_charge,
    chargeable,
    invoice_charge,
    invoice_mark,
    invoice_payment_failed,
    invoice_settle,
    unanswered_charges_flag,
)
from .issuing import (
    CENT,
    LINE_FIELDS,
    SETTLE_DELAY,
    invoice_issue,
    invoice_lines,
    invoice_notify,
    invoice_path,
    invoice_url,
    invoices_of,
    issue_due,
    months_due,
    unsent,
)

__all__ = [
    "CENT",
    "DISPUTE_CLOSED",
    "KEY_KEPT",
    "LINE_FIELDS",
    "MIN_CHARGE",
    "SETTLE_DELAY",
    "STALE_CHARGE",
    "PaymentInFlight",
    "card_to_charge",
    "chargeable",
    "invoice_charge",
    "invoice_issue",
    "invoice_lines",
    "invoice_mark",
    "invoice_notify",
    "invoice_path",
    "invoice_payment_failed",
    "invoice_settle",
    "invoice_url",
    "invoices_of",
    "issue_due",
    "months_due",
    "unanswered_charges_flag",
    "unsent",
]
