"""Refunds and disputes of an invoice's card payment (Stripe's charge.refunded and charge.dispute.*).

They never move credit: paying an invoice bought none. They move the invoice,
and say so on it (payment_error, which its page shows) and in the audit log:

- a refund is noted; a full one puts a paid invoice back to open, due again
  unless the operator voids it (it is not charged again by itself);
- a dispute withdraws the money at once, so it puts a paid invoice back to
  open; won, it is paid again; lost, it stays open. While the dispute is open
  the operator cannot settle it by hand (collecting.invoice_mark).

Events come in any order and may repeat: refunds are read from Stripe (all of
the charge's), and the dispute's status is kept on the invoice, so a late
charge.dispute.created for a dispute already closed changes nothing. The
invoice is the one its payment intent paid (Invoice.stripe_payment_intent_id):
refunding a second payment of it (collecting.invoice_settle notes those) leaves
it alone.
"""

import logging
from decimal import Decimal
from typing import Any

from django.utils import timezone

from accounts.audit import audit_record

from ..models import Invoice
from .collecting import DISPUTE_CLOSED

logger = logging.getLogger(__name__)

DISPUTE_WON = ("won", "warning_closed")  # an inquiry closed without a chargeback keeps the money too


def pays_an_invoice(*, payment_intent_id: str | None, metadata: dict | None = None) -> bool:
    """Whether the payment intent was an invoice's charge (its metadata says so, or an invoice names it)."""
    if (metadata or {}).get("hub_invoice"):
        return True
    return bool(payment_intent_id) and Invoice.objects.filter(stripe_payment_intent_id=payment_intent_id).exists()


def _paid_by(payment_intent_id: str) -> Invoice | None:
    return Invoice.objects.select_for_update().filter(stripe_payment_intent_id=payment_intent_id).first()


def _move(invoice: Invoice, *, note: str, action: str, details: dict, **fields) -> None:
    Invoice.objects.filter(pk=invoice.pk).update(payment_error=note[:500], **fields)
    audit_record(
        action=action,
        organization=invoice.organization,
        target=invoice,
        details={"number": invoice.number, "note": note, **details},
    )
    logger.warning("invoice %s: %s", invoice.number, note)


def refunds_apply(*, payment_intent_id: str, refunds: list, invoice_id=None) -> str:
    """Note what Stripe refunded of the invoice's payment; `refunds` are all of the charge's refunds."""
    invoice = _paid_by(payment_intent_id)
    if invoice is None:
        other = Invoice.objects.filter(pk=int(invoice_id)).first() if str(invoice_id or "").isdigit() else None
        if other is not None:
            return f"ignored: {payment_intent_id} is not the payment of invoice {other.number}"
        return f"ignored: no hub invoice for {payment_intent_id}"
    refunded = sum((r.amount for r in refunds if r.status in ("succeeded", "pending")), Decimal(0))
    if refunded == invoice.amount_refunded:
        return f"already noted: {refunded:.2f} refunded of invoice {invoice.number}"
    currency = invoice.currency.upper()
    fields = {"amount_refunded": refunded}
    if refunded >= invoice.total:
        note = f"Refunded in full ({refunded:.2f} {currency}): the total is due again unless the invoice is voided."
        if invoice.status == Invoice.Status.PAID:
            fields.update(status=Invoice.Status.OPEN, paid_at=None)
    else:
        note = f"Refunded {refunded:.2f} of {invoice.total:.2f} {currency}."
    _move(
        invoice,
        note=note,
        action="invoice.refunded",
        details={"payment_intent": payment_intent_id, "refunded": str(refunded)},
        **fields,
    )
    return f"refunded {refunded:.2f} of invoice {invoice.number}, now {fields.get('status', invoice.status)}"


def dispute_apply(*, payment_intent_id: str, dispute_id: str, status: str, amount: Decimal, closed: bool) -> str:
    """A dispute of the invoice's payment was opened (closed=False) or closed with `status`."""
    invoice = _paid_by(payment_intent_id)
    if invoice is None:
        return f"ignored: no hub invoice for {payment_intent_id}"
    status = status or "needs_response"
    if invoice.dispute_status in DISPUTE_CLOSED and (not closed or status == invoice.dispute_status):
        return f"ignored: dispute {dispute_id} of invoice {invoice.number} is {invoice.dispute_status} already"
    if not closed and invoice.dispute_status:
        return f"already noted: dispute {dispute_id} of invoice {invoice.number}"
    currency = invoice.currency.upper()
    fields: dict[str, Any] = {"dispute_status": status}
    if not closed or status not in DISPUTE_WON:
        verb = "disputed" if not closed else f"disputed and the dispute {status}"
        note = (
            f"Payment {verb} ({dispute_id}, {amount:.2f} {currency} withdrawn): the total is due again"
            f"{' unless the dispute is won' if not closed else ' unless the invoice is voided'}."
        )
        if invoice.status == Invoice.Status.PAID:
            fields.update(status=Invoice.Status.OPEN, paid_at=None)
        action = "invoice.disputed"
    else:
        note = f"Dispute {dispute_id} {status.replace('_', ' ')}: the payment stands."
        if invoice.status == Invoice.Status.OPEN and invoice.amount_refunded < invoice.total:
            fields.update(status=Invoice.Status.PAID, paid_at=timezone.now())
        action = "invoice.dispute_won"
    _move(
        invoice,
        note=note,
        action=action,
        details={"payment_intent": payment_intent_id, "dispute": dispute_id, "dispute_status": status},
        **fields,
    )
    return f"dispute {dispute_id} {status}: invoice {invoice.number} now {fields.get('status', invoice.status)}"
