"""Stripe's webhook: verify the signature, store the event id once, dispatch by type, record the outcome.

A replayed event finds its row processed and answers 200 without doing
anything. An event whose handler fails keeps its row unprocessed with the
error as outcome and answers 500, so Stripe delivers it again and the next
delivery processes it.
"""

import logging

from django.db import transaction
from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from . import payments, stripe_gateway
from .invoices import collecting
from .invoices import refunds as invoice_refunds
from .models import StripeEvent

logger = logging.getLogger(__name__)


def _paid_session(session: dict) -> str:
    if session.get("mode") == "setup":
        return payments.auto_recharge_card_checkout_completed(session=session)
    if session.get("mode") != "payment":
        return "ignored: not a payment session"
    if session.get("payment_status") != "paid":
        return f"awaiting payment: session is {session.get('payment_status')}"
    return payments.payment_settle(
        payment_id=(session.get("metadata") or {}).get("hub_payment") or session.get("client_reference_id"),
        payment_intent_id=session["payment_intent"],
        paid=stripe_gateway.from_minor_units(session["amount_total"]),
        currency=session["currency"],
    )


def _succeeded_intent(intent: dict) -> str:
    metadata = intent.get("metadata") or {}
    paid = stripe_gateway.from_minor_units(intent.get("amount_received") or intent["amount"])
    if metadata.get("hub_invoice"):
        # An invoice's charge pays the invoice; it must never grant credit.
        return collecting.invoice_settle(
            invoice_id=metadata["hub_invoice"], payment_intent_id=intent["id"], paid=paid, currency=intent["currency"]
        )
    return payments.payment_settle(
        payment_id=metadata.get("hub_payment"), payment_intent_id=intent["id"], paid=paid, currency=intent["currency"]
    )


def _failed_intent(intent: dict) -> str:
    metadata = intent.get("metadata") or {}
    error = intent.get("last_payment_error") or {}
    reason = error.get("message") or error.get("code") or "payment failed"
    if metadata.get("hub_invoice"):
        return collecting.invoice_payment_failed(
            invoice_id=metadata["hub_invoice"], payment_intent_id=intent["id"], reason=reason
        )
    return payments.payment_fail(payment_id=metadata.get("hub_payment"), payment_intent_id=intent["id"], reason=reason)


def _refunded_charge(charge: dict) -> str:
    if not charge.get("payment_intent"):
        return "ignored: charge without payment intent"
    refunds = stripe_gateway.refunds_of_charge(charge["id"])
    if invoice_refunds.pays_an_invoice(payment_intent_id=charge["payment_intent"], metadata=charge.get("metadata")):
        # An invoice's payment bought no credit: the invoice moves, never the ledger.
        return invoice_refunds.refunds_apply(
            payment_intent_id=charge["payment_intent"],
            refunds=refunds,
            invoice_id=(charge.get("metadata") or {}).get("hub_invoice"),
        )
    return payments.refunds_apply(payment_intent_id=charge["payment_intent"], refunds=refunds)


def _dispute_intent(dispute: dict) -> str | None:
    return dispute.get("payment_intent") or stripe_gateway.payment_intent_of_charge(dispute["charge"])


def _dispute(dispute: dict, *, closed: bool) -> str:
    intent = _dispute_intent(dispute)
    if intent is None:
        return "ignored: dispute without payment intent"
    amount = stripe_gateway.from_minor_units(dispute["amount"])
    if invoice_refunds.pays_an_invoice(payment_intent_id=intent):
        return invoice_refunds.dispute_apply(
            payment_intent_id=intent,
            dispute_id=dispute["id"],
            status=dispute.get("status") or "",
            amount=amount,
            closed=closed,
        )
    if not closed:
        return payments.dispute_open(payment_intent_id=intent, dispute_id=dispute["id"], amount=amount)
    return payments.dispute_close(
        payment_intent_id=intent, dispute_id=dispute["id"], amount=amount, won=dispute.get("status") == "won"
    )


def _dispute_created(dispute: dict) -> str:
    return _dispute(dispute, closed=False)


def _dispute_closed(dispute: dict) -> str:
    return _dispute(dispute, closed=True)


def _card_saved(setup_intent: dict) -> str:
    return payments.auto_recharge_card_saved(setup_intent=setup_intent)


HANDLERS = {
    "setup_intent.succeeded": _card_saved,
    "checkout.session.completed": _paid_session,
    "checkout.session.async_payment_succeeded": _paid_session,
    "payment_intent.succeeded": _succeeded_intent,
    "payment_intent.payment_failed": _failed_intent,
    "charge.refunded": _refunded_charge,
    "charge.dispute.created": _dispute_created,
    "charge.dispute.closed": _dispute_closed,
}


def event_process(event: dict) -> tuple[StripeEvent, bool]:
    """Process a verified event once; returns (its row, whether its handler failed)."""
    with transaction.atomic():
        row, _ = StripeEvent.objects.get_or_create(stripe_id=event["id"], defaults={"type": event["type"]})
        row = StripeEvent.objects.select_for_update().get(pk=row.pk)
        if row.processed_at is not None:
            return row, False
        row.attempts += 1
        handler = HANDLERS.get(event["type"])
        failed = False
        if handler is None:
            row.outcome = "ignored: type not handled"
        else:
            try:
                with transaction.atomic():
                    row.outcome = handler(event["data"]["object"])[:500]
            except Exception as exc:  # recorded on the row; Stripe delivers the event again
                logger.exception("Stripe event %s (%s) failed", event["id"], event["type"])
                row.outcome = f"error: {type(exc).__name__}: {exc}"[:500]
                failed = True
        if not failed:
            row.processed_at = timezone.now()
        row.save(update_fields=["attempts", "outcome", "processed_at"])
    return row, failed


def _refusal(exc, status: int, type_: str) -> JsonResponse:
    """The API's error shape (hub/errors.py writes the same for the management API and the gateway)."""
    return JsonResponse(
        {"error": {"message": exc.message, "type": type_, "param": exc.param, "code": exc.code}}, status=status
    )


@csrf_exempt
@require_POST
def stripe_webhook(request):
    try:
        event = stripe_gateway.event_verify(request.body, request.headers.get("Stripe-Signature", ""))
    except stripe_gateway.PaymentsUnavailable as exc:  # not configured here
        return _refusal(exc, 503, "server_error")
    except stripe_gateway.InvalidEvent as exc:  # not signed by Stripe, or not shaped like an event
        return _refusal(exc, 400, "invalid_request_error")
    row, failed = event_process(event)
    return JsonResponse({"received": True, "outcome": row.outcome}, status=500 if failed else 200)
