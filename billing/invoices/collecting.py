"""Collecting what invoices are due: the saved card charged off-session, Stripe's answers, the operator's marks.

An open invoice is charged to the saved card (auto-recharge's) once when
auto-charge is on, behind a claim (a conditional UPDATE that must touch
exactly one row). Stripe's payment_intent.succeeded marks it paid
(billing/webhooks.py); it never grants credit. An operator may mark an open
invoice paid (outside Stripe) or void, but not while its card charge waits for
Stripe's answer or its payment is disputed (PaymentInFlight).

Refunds and disputes of an invoice's payment: billing/invoices/refunds.py.
"""

import logging
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.audit import audit_record

from .. import stripe_gateway
from ..models import AutoRecharge, CreditAccount, Invoice

logger = logging.getLogger(__name__)

# Stripe's smallest card charge in USD; a smaller total stays open for the operator.
MIN_CHARGE = Decimal("0.50")
# A charge whose Stripe call never answered is asked again (same idempotency
# key) after STALE_CHARGE, but not after Stripe has forgotten the key (24 h),
# when asking again could charge twice.
STALE_CHARGE = timedelta(minutes=10)
KEY_KEPT = timedelta(hours=23)
# A dispute's statuses once it is over; any other (needs_response, under_review,
# warning_…) is still open.
DISPUTE_CLOSED = ("won", "lost", "warning_closed")


# Charging the saved card -----------------------------------------------------


def _auto_charge(account: CreditAccount | None) -> bool:
    flag = account.invoice_auto_charge if account is not None else None
    return bool(getattr(settings, "HUB_INVOICE_AUTO_CHARGE", False)) if flag is None else flag


def card_to_charge(invoice: Invoice) -> AutoRecharge | None:
    """The saved card (auto-recharge's) to charge the invoice to, if auto-charge is on and there is one."""
    account = CreditAccount.objects.filter(organization_id=invoice.organization_id).first()
    if not _auto_charge(account):
        return None
    return (
        AutoRecharge.objects.filter(organization_id=invoice.organization_id)
        .exclude(stripe_customer_id="")
        .exclude(stripe_payment_method_id="")
        .first()
    )


def _chargeable(now: datetime):
    return Invoice.objects.filter(
        status=Invoice.Status.OPEN,
        stripe_payment_intent_id__isnull=True,
        payment_error="",
        total__gte=MIN_CHARGE,
    ).filter(
        Q(charge_started_at__isnull=True)
        | Q(charge_started_at__lt=now - STALE_CHARGE, charge_started_at__gt=now - KEY_KEPT)
    )


def unanswered_charges_flag(*, now: datetime | None = None) -> int:
    """Say on each open invoice whose charge never got an answer, and can no longer be asked again
    safely (Stripe has forgotten its key), that the operator must look; returns how many."""
    now = now or timezone.now()
    flagged = 0
    for invoice in Invoice.objects.filter(
        status=Invoice.Status.OPEN,
        stripe_payment_intent_id__isnull=True,
        payment_error="",
        charge_started_at__lte=now - KEY_KEPT,
    ):
        note = (
            f"No answer from Stripe to the card charge started {invoice.charge_started_at:%Y-%m-%d %H:%M} UTC, "
            f"and asking again could charge twice: look in Stripe for a payment intent with metadata "
            f"hub_invoice={invoice.pk}; if none succeeded, settle the invoice by hand (paid or void)."
        )
        # Conditional, so a second run, or a webhook that answered meanwhile, wins.
        if Invoice.objects.filter(
            pk=invoice.pk, status=Invoice.Status.OPEN, stripe_payment_intent_id__isnull=True, payment_error=""
        ).update(payment_error=note[:500]):
            logger.error("invoice %s: %s", invoice.number, note)
            flagged += 1
    return flagged


def chargeable(*, now: datetime | None = None) -> list[int]:
    """Open invoices not charged yet (or whose charge never answered) of organisations with auto-charge on."""
    if not settings.STRIPE_SECRET_KEY:
        return []
    return [
        invoice.pk
        for invoice in _chargeable(now or timezone.now()).order_by("pk")
        if card_to_charge(invoice) is not None
    ]


def invoice_charge(*, invoice_id: int, now: datetime | None = None) -> str:
    """Charge an open invoice's total off-session, once: the claim admits one run, and Stripe's
    idempotency key (the invoice's) makes a repeated call return the same payment intent."""
    now = now or timezone.now()
    invoice = Invoice.objects.get(pk=invoice_id)
    card = card_to_charge(invoice)
    if card is None or not settings.STRIPE_SECRET_KEY:
        return f"not charged: no saved card or auto-charge off for invoice {invoice.number}"
    if _chargeable(now).filter(pk=invoice_id).update(charge_started_at=now) != 1:
        return f"not charged: invoice {invoice.number} is paid, charged or being charged"
    try:
        charge = stripe_gateway.invoice_charge(
            invoice=invoice, customer_id=card.stripe_customer_id, payment_method_id=card.stripe_payment_method_id
        )
    except stripe_gateway.PaymentDeclined as exc:
        Invoice.objects.filter(pk=invoice_id, status=Invoice.Status.OPEN).update(payment_error=str(exc)[:500])
        logger.warning("charge of invoice %s declined: %s", invoice.number, exc)
        return f"declined: invoice {invoice.number} stays open"
    # Paid comes with payment_intent.succeeded, never from this answer.
    Invoice.objects.filter(pk=invoice_id, stripe_payment_intent_id__isnull=True).update(
        stripe_payment_intent_id=charge.payment_intent_id
    )
    return f"charging invoice {invoice.number}: {charge.payment_intent_id} ({charge.status})"


# What Stripe's events do -----------------------------------------------------


def _locked_invoice(*, invoice_id, payment_intent_id: str) -> Invoice | None:
    rows = Invoice.objects.select_for_update()
    found = rows.filter(stripe_payment_intent_id=payment_intent_id).first()
    if found is None and invoice_id and str(invoice_id).isdigit():
        found = rows.filter(pk=int(invoice_id)).first()
    return found


def invoice_settle(*, invoice_id, payment_intent_id: str, paid: Decimal, currency: str) -> str:
    """Mark an invoice paid by a succeeded payment intent, once. No credit moves.

    Money that arrives for an invoice that is already paid, void or being
    charged by another payment intent is not lost silently: it is logged as an
    error and noted on the invoice, for the operator to refund.
    """
    invoice = _locked_invoice(invoice_id=invoice_id, payment_intent_id=payment_intent_id)
    if invoice is None:
        return f"ignored: no hub invoice for {payment_intent_id}"
    if invoice.status == Invoice.Status.PAID and invoice.stripe_payment_intent_id == payment_intent_id:
        return f"already paid: invoice {invoice.number}"
    if invoice.status in (Invoice.Status.PAID, Invoice.Status.VOID) or (
        invoice.stripe_payment_intent_id and invoice.stripe_payment_intent_id != payment_intent_id
    ):
        return _paid_again(invoice, payment_intent_id)
    if paid != invoice.total or currency.lower() != invoice.currency:
        logger.error(
            "invoice %s: paid %s %s, due %s %s", invoice.number, paid, currency, invoice.total, invoice.currency
        )
        return f"refused: paid {paid:.2f} {currency}, due {invoice.total:.2f} {invoice.currency}"
    if invoice.amount_refunded >= invoice.total or invoice.dispute_status not in ("", "won", "warning_closed"):
        # Its refund or dispute arrived first (events come in any order): the money is not ours.
        return f"not paid: invoice {invoice.number}'s payment was refunded or disputed first"
    Invoice.objects.filter(pk=invoice.pk).update(
        status=Invoice.Status.PAID,
        paid_at=timezone.now(),
        stripe_payment_intent_id=payment_intent_id,
        # A partial refund or a won dispute noted first stays noted.
        payment_error=invoice.payment_error if invoice.amount_refunded or invoice.dispute_status else "",
    )
    return f"paid {invoice.total:.2f}: invoice {invoice.number}"


def _paid_again(invoice: Invoice, payment_intent_id: str) -> str:
    if invoice.status == Invoice.Status.PAID:
        note = f"paid twice: refund payment intent {payment_intent_id}"
    elif invoice.status == Invoice.Status.VOID:
        note = f"paid after it was voided: refund payment intent {payment_intent_id}"
    else:
        note = (
            f"paid by payment intent {payment_intent_id} while charged by {invoice.stripe_payment_intent_id}: "
            f"refund one of them"
        )
    logger.error("invoice %s (%s): %s", invoice.number, invoice.status, note)
    Invoice.objects.filter(pk=invoice.pk).update(payment_error=note[:500])
    return f"refused: invoice {invoice.number} {note}"


def invoice_payment_failed(*, invoice_id, payment_intent_id: str, reason: str) -> str:
    """A charge of an invoice failed: it stays open, with the reason."""
    invoice = _locked_invoice(invoice_id=invoice_id, payment_intent_id=payment_intent_id)
    if invoice is None:
        return f"ignored: no hub invoice for {payment_intent_id}"
    if invoice.status != Invoice.Status.OPEN:
        return f"ignored: invoice {invoice.number} is {invoice.status}"
    Invoice.objects.filter(pk=invoice.pk).update(
        payment_error=(reason or "payment failed")[:500],
        stripe_payment_intent_id=invoice.stripe_payment_intent_id or payment_intent_id,
    )
    return f"failed: invoice {invoice.number} stays open"


# Operators -------------------------------------------------------------------


class PaymentInFlight(Exception):
    """The invoice's card charge has no answer yet, or its payment is disputed: marking it by hand
    now could have the customer pay twice."""


def _settled_by_hand_ok() -> Q:
    """Open invoices an operator may mark: no card charge waiting for Stripe's answer (never charged,
    or the charge ended with an error noted), and no open dispute."""
    no_charge = Q(charge_started_at__isnull=True, stripe_payment_intent_id__isnull=True) | ~Q(payment_error="")
    return no_charge & Q(dispute_status__in=["", *DISPUTE_CLOSED])


def invoice_mark(*, invoice: Invoice, status: str, actor=None) -> bool:
    """An operator marks an open invoice paid (outside Stripe) or void. False if it was not open;
    PaymentInFlight while its card charge or a dispute of its payment is unresolved."""
    if status not in (Invoice.Status.PAID, Invoice.Status.VOID):
        raise ValueError(f"an invoice is marked paid or void, not {status!r}")
    with transaction.atomic():
        # One conditional UPDATE: a charge claimed at the same moment (its own
        # conditional UPDATE) and this mark cannot both win.
        changed = Invoice.objects.filter(_settled_by_hand_ok(), pk=invoice.pk, status=Invoice.Status.OPEN).update(
            status=status, paid_at=timezone.now() if status == Invoice.Status.PAID else None
        )
        if changed:
            audit_record(
                action=f"invoice.{status}",
                actor=actor,
                organization=invoice.organization,
                target=invoice,
                details={"number": invoice.number, "total": str(invoice.total)},
            )
            return True
    current = Invoice.objects.get(pk=invoice.pk)
    if current.status != Invoice.Status.OPEN:
        return False
    if current.dispute_status and current.dispute_status not in DISPUTE_CLOSED:
        raise PaymentInFlight(
            f"invoice {current.number}: its payment is disputed ({current.dispute_status}); "
            f"wait for the dispute to close"
        )
    started = f", started {current.charge_started_at:%Y-%m-%d %H:%M} UTC" if current.charge_started_at else ""
    raise PaymentInFlight(
        f"invoice {current.number}: a card charge is in flight (payment intent "
        f"{current.stripe_payment_intent_id or 'not known yet'}{started}); wait for Stripe's answer, "
        f"which marks it paid or says why not"
    )
