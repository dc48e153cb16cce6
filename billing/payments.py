"""Buying credit with Stripe: Checkout top-ups, auto-recharge, and what Stripe's events do to the ledger.

Credit moves only here, on events Stripe signed (billing/webhooks.py), and
every movement has an idempotency key derived from Stripe's own ids:

- `stripe:payment:<payment intent>`: the credit a payment buys, once, whether
  it is announced by checkout.session.completed, payment_intent.succeeded or both;
- `stripe:refund:<refund>`: what each refund takes back (partial refunds too);
- `stripe:dispute:<dispute>:withdrawal` and `…:reinstatement`: a dispute takes
  the disputed amount back, a won dispute returns it.

Out of order: a refund or dispute for a payment that is not credited yet is
taken back at once (the balance may dip) and the credit still arrives with its
own event, so the sum is right whatever the order. A dispute closed before it
was opened writes its withdrawal first; the late charge.dispute.created then
finds the key taken and does nothing.
"""

import logging
import uuid
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.audit import audit_record

from . import modes, services, stripe_gateway
from .models import AutoRecharge, BillingMode, CreditAccount, LedgerEntry, Payment
from .stripe_gateway import PaymentRefused

logger = logging.getLogger(__name__)

MIN_TOP_UP = Decimal("1.00")
MAX_TOP_UP = Decimal("10000.00")


def checkout_create(*, organization, amount: Decimal, requested_by, success_url: str, cancel_url: str):
    """A pending payment and its Stripe Checkout session; returns (payment, url to send the buyer to)."""
    stripe_gateway.to_minor_units(amount)  # refuses fractions of a cent before anything is written
    if not MIN_TOP_UP <= amount <= MAX_TOP_UP:
        raise PaymentRefused(
            _("A top-up is between %(min)s and %(max)s.") % {"min": MIN_TOP_UP, "max": MAX_TOP_UP}, param="amount"
        )
    payment = Payment.objects.create(
        organization=organization,
        amount=amount,
        currency=stripe_gateway.currency(),
        source=Payment.Source.CHECKOUT,
        requested_by=requested_by,
    )
    try:
        session = stripe_gateway.checkout_session_create(
            payment=payment, success_url=success_url, cancel_url=cancel_url
        )
    except Exception as exc:
        Payment.objects.filter(pk=payment.pk).update(
            status=Payment.Status.FAILED, updated_at=timezone.now(), failure_reason=f"checkout not created: {exc}"[:500]
        )
        raise
    Payment.objects.filter(pk=payment.pk).update(stripe_checkout_session_id=session.id, updated_at=timezone.now())
    payment.stripe_checkout_session_id = session.id
    return payment, session.url


# Auto-recharge ---------------------------------------------------------------


def auto_recharge_due() -> list[int]:
    """Enabled auto-recharges of credits organisations with nothing on its way and a balance under their
    threshold. Postpaid and internal organisations never spend credit: buying it would only cost them."""
    return list(
        AutoRecharge.objects.filter(
            enabled=True,
            pending_payment__isnull=True,
            organization__credit__in=modes.accounts_in_mode(BillingMode.CREDITS),
            organization__credit__balance__lt=F("threshold"),
        )
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def auto_recharge_start(*, auto_recharge_id: int) -> Payment | None:
    """Claim the auto-recharge with a new payment and charge the saved card; None if nothing to do."""
    with transaction.atomic():
        recharge = AutoRecharge.objects.select_related("organization").get(pk=auto_recharge_id)
        account = CreditAccount.objects.filter(organization_id=recharge.organization_id).first()
        if (
            not recharge.enabled
            or recharge.pending_payment_id
            or account is None
            or account.balance >= recharge.threshold
            or modes.effective_mode(account) != BillingMode.CREDITS
        ):
            return None
        payment = Payment.objects.create(
            organization_id=recharge.organization_id,
            amount=recharge.amount,
            currency=stripe_gateway.currency(),
            source=Payment.Source.AUTO_RECHARGE,
        )
        # The claim: only one run's UPDATE finds the row still free. A loser
        # rolls back its payment, so no pending payment is ever orphaned.
        claimed = AutoRecharge.objects.filter(
            pk=recharge.pk,
            enabled=True,
            pending_payment__isnull=True,
        ).update(pending_payment=payment, updated_at=timezone.now())
        if claimed != 1:
            transaction.set_rollback(True)
            return None
    return auto_recharge_charge(payment=payment, recharge=recharge)


def auto_recharge_charge(*, payment: Payment, recharge: AutoRecharge) -> Payment:
    """Ask Stripe to charge; repeatable (the idempotency key is the payment's)."""
    try:
        charge = stripe_gateway.off_session_charge(
            payment=payment,
            customer_id=recharge.stripe_customer_id,
            payment_method_id=recharge.stripe_payment_method_id,
        )
    except stripe_gateway.PaymentDeclined as exc:
        payment_fail(payment_id=payment.pk, reason=str(exc))
        return Payment.objects.get(pk=payment.pk)
    # The credit itself comes with payment_intent.succeeded, never from this answer.
    Payment.objects.filter(pk=payment.pk, stripe_payment_intent_id__isnull=True).update(
        stripe_payment_intent_id=charge.payment_intent_id, updated_at=timezone.now()
    )
    return Payment.objects.get(pk=payment.pk)


def auto_recharge_resume_stale(*, older_than) -> list[int]:
    """Pending recharges whose Stripe call never answered (a crash, a timeout): call again, same key."""
    ids = []
    for recharge in AutoRecharge.objects.filter(
        pending_payment__status=Payment.Status.PENDING,
        pending_payment__stripe_payment_intent_id__isnull=True,
        pending_payment__created_at__lt=older_than,
    ).select_related("pending_payment"):
        payment = recharge.pending_payment
        if payment is not None:  # the filter says so; its type cannot
            auto_recharge_charge(payment=payment, recharge=recharge)
            ids.append(payment.pk)
    return ids


def auto_recharge_card_setup(*, organization, actor=None) -> stripe_gateway.Setup:
    """Start saving a card for auto-recharge (self-service): a SetupIntent for the browser to confirm.

    The card is saved only by Stripe's signed setup_intent.succeeded for this
    very SetupIntent (auto_recharge_card_saved); starting again supersedes it.
    """
    with transaction.atomic():
        recharge, _created = AutoRecharge.objects.select_for_update().get_or_create(organization=organization)
        setup = stripe_gateway.card_setup_start(
            organization=organization, customer_id=recharge.stripe_customer_id, key=uuid.uuid4().hex
        )
        AutoRecharge.objects.filter(pk=recharge.pk).update(
            stripe_customer_id=setup.customer_id,
            stripe_setup_intent_id=setup.setup_intent_id,
            stripe_setup_session_id="",  # supersedes a Checkout setup started before it
            updated_at=timezone.now(),
        )
        audit_record(
            action="billing.card_setup",
            actor=actor,
            organization=organization,
            target=recharge,
            details={"setup_intent": setup.setup_intent_id},
        )
    return setup


def auto_recharge_card_saved(*, setup_intent: dict) -> str:
    """setup_intent.succeeded: keep its card, if it is the organisation's latest setup and customer."""
    with transaction.atomic():
        recharge = AutoRecharge.objects.select_for_update().filter(stripe_setup_intent_id=setup_intent["id"]).first()
        if recharge is None:
            return "ignored: not the latest card setup of any organisation"
        if setup_intent.get("customer") != recharge.stripe_customer_id or not setup_intent.get("payment_method"):
            return "ignored: customer or payment method does not match"
        if recharge.stripe_payment_method_id == setup_intent["payment_method"]:
            return "card already saved"
        AutoRecharge.objects.filter(pk=recharge.pk).update(
            stripe_payment_method_id=setup_intent["payment_method"], disabled_reason="", updated_at=timezone.now()
        )
    return f"card saved for organisation {recharge.organization_id}"


def auto_recharge_card_checkout(*, organization, success_url: str, cancel_url: str, actor=None) -> str:
    """Start saving a card through Stripe Checkout in setup mode (the dashboard); returns the page to send the
    buyer to. As with a SetupIntent, the card is saved only by Stripe's signed checkout.session.completed for
    this very session (auto_recharge_card_checkout_completed); starting again supersedes it."""
    with transaction.atomic():
        recharge, _created = AutoRecharge.objects.select_for_update().get_or_create(organization=organization)
        setup = stripe_gateway.card_setup_checkout(
            organization=organization,
            customer_id=recharge.stripe_customer_id,
            key=uuid.uuid4().hex,
            success_url=success_url,
            cancel_url=cancel_url,
        )
        AutoRecharge.objects.filter(pk=recharge.pk).update(
            stripe_customer_id=setup.customer_id,
            stripe_setup_session_id=setup.session_id,
            stripe_setup_intent_id="",  # supersedes a SetupIntent started before it
            updated_at=timezone.now(),
        )
        audit_record(
            action="billing.card_setup",
            actor=actor,
            organization=organization,
            target=recharge,
            details={"checkout_session": setup.session_id},
        )
    return setup.url


def auto_recharge_card_checkout_completed(*, session: dict) -> str:
    """checkout.session.completed in setup mode: keep the card its SetupIntent saved, if the session is the
    organisation's latest card setup, for its customer, and Stripe says the SetupIntent succeeded."""
    with transaction.atomic():
        recharge = AutoRecharge.objects.select_for_update().filter(stripe_setup_session_id=session["id"]).first()
        if recharge is None:
            return "ignored: not the latest card setup of any organisation"
        if session.get("customer") != recharge.stripe_customer_id or not session.get("setup_intent"):
            return "ignored: customer or setup intent does not match"
        # The event names the SetupIntent, not its card: Stripe is asked, never the event's body.
        intent = stripe_gateway.setup_intent_of(session["setup_intent"])
        if intent.status != "succeeded" or intent.customer_id != recharge.stripe_customer_id:
            return f"ignored: setup intent is {intent.status}"
        if not intent.payment_method_id:
            return "ignored: setup intent has no payment method"
        if recharge.stripe_payment_method_id == intent.payment_method_id:
            return "card already saved"
        AutoRecharge.objects.filter(pk=recharge.pk).update(
            stripe_payment_method_id=intent.payment_method_id,
            stripe_setup_intent_id=session["setup_intent"],
            disabled_reason="",
            updated_at=timezone.now(),
        )
    return f"card saved for organisation {recharge.organization_id}"


def auto_recharge_configure(
    *, organization, enabled: bool, threshold: Decimal, amount: Decimal, actor=None
) -> AutoRecharge:
    """Turn auto-recharge on or off and set when and how much; on needs a saved card."""
    if not MIN_TOP_UP <= amount <= MAX_TOP_UP:
        raise PaymentRefused(
            _("The amount must be between %(min)s and %(max)s.") % {"min": MIN_TOP_UP, "max": MAX_TOP_UP},
            param="amount",
        )
    if threshold < 0:
        raise PaymentRefused(_("The threshold must not be negative."), param="threshold")
    stripe_gateway.to_minor_units(amount)  # whole cents, or a 400 from the gateway's own check
    with transaction.atomic():
        recharge, _created = AutoRecharge.objects.select_for_update().get_or_create(organization=organization)
        if enabled and not recharge.stripe_payment_method_id:
            raise PaymentRefused(
                "Save a card first (POST …/billing/auto-recharge/card).", param="enabled", code="no_payment_method"
            )
        before = {"enabled": recharge.enabled, "threshold": str(recharge.threshold), "amount": str(recharge.amount)}
        fields = {"enabled": enabled, "threshold": threshold, "amount": amount}
        if enabled:
            fields["disabled_reason"] = ""
        AutoRecharge.objects.filter(pk=recharge.pk).update(**fields, updated_at=timezone.now())
        audit_record(
            action="billing.auto_recharge",
            actor=actor,
            organization=organization,
            target=recharge,
            details={"before": before, "after": {k: str(v) for k, v in fields.items()}},
        )
    recharge.refresh_from_db()
    return recharge


def _release_auto_recharge(payment: Payment, *, failure: str = "") -> None:
    fields: dict[str, Any] = {"pending_payment": None, "updated_at": timezone.now()}
    if failure:
        fields.update(enabled=False, disabled_reason=f"payment {payment.pk} failed: {failure}"[:500])
    AutoRecharge.objects.filter(pending_payment=payment).update(**fields)


# What Stripe's events do -----------------------------------------------------


def _locked_payment(*, payment_id=None, payment_intent_id=None) -> Payment | None:
    rows = Payment.objects.select_for_update()
    if payment_intent_id:
        found = rows.filter(stripe_payment_intent_id=payment_intent_id).first()
        if found:
            return found
    if payment_id and str(payment_id).isdigit():
        return rows.filter(pk=int(payment_id)).first()
    return None


def payment_settle(*, payment_id, payment_intent_id: str, paid: Decimal, currency: str) -> str:
    """Credit a paid payment, once per payment intent."""
    payment = _locked_payment(payment_id=payment_id, payment_intent_id=payment_intent_id)
    if payment is None:
        return f"ignored: no hub payment for {payment_intent_id}"
    if payment.stripe_payment_intent_id and payment.stripe_payment_intent_id != payment_intent_id:
        logger.error(
            "payment %s: paid by %s but linked to %s", payment.pk, payment_intent_id, payment.stripe_payment_intent_id
        )
        return f"refused: payment {payment.pk} belongs to {payment.stripe_payment_intent_id}"
    if paid != payment.amount or currency.lower() != payment.currency:
        logger.error(
            "payment %s: paid %s %s, expected %s %s", payment.pk, paid, currency, payment.amount, payment.currency
        )
        return f"refused: paid {paid:.2f} {currency}, expected {payment.amount:.2f} {payment.currency}"
    key = f"stripe:payment:{payment_intent_id}"
    if LedgerEntry.objects.filter(idempotency_key=key).exists():
        return f"already credited: payment {payment.pk}"
    services.credit_grant(
        organization=payment.organization,
        amount=payment.amount,
        idempotency_key=key,
        description=f"Stripe payment {payment.pk} ({payment_intent_id})",
    )
    Payment.objects.filter(pk=payment.pk).update(
        stripe_payment_intent_id=payment_intent_id,
        updated_at=timezone.now(),
        # A refund or dispute that arrived first keeps its status.
        status=payment.status
        if payment.status in (Payment.Status.REFUNDED, Payment.Status.DISPUTED)
        else Payment.Status.PAID,
    )
    _release_auto_recharge(payment)
    return f"credited {payment.amount:.2f}: payment {payment.pk}"


def payment_fail(*, payment_id=None, payment_intent_id: str | None = None, reason: str) -> str:
    with transaction.atomic():
        payment = _locked_payment(payment_id=payment_id, payment_intent_id=payment_intent_id)
        if payment is None:
            return f"ignored: no hub payment for {payment_intent_id}"
        if payment.status != Payment.Status.PENDING:
            return f"ignored: payment {payment.pk} is {payment.status}"
        Payment.objects.filter(pk=payment.pk).update(
            status=Payment.Status.FAILED,
            failure_reason=reason[:500],
            updated_at=timezone.now(),
            stripe_payment_intent_id=payment.stripe_payment_intent_id or payment_intent_id,
        )
        _release_auto_recharge(payment, failure=reason or "declined")
    return f"failed: payment {payment.pk}"


def _take_back(payment: Payment, *, amount: Decimal, key: str, description: str) -> bool:
    if LedgerEntry.objects.filter(idempotency_key=key).exists():
        return False
    services.credit_grant(
        organization=payment.organization,
        amount=amount,
        idempotency_key=key,
        kind=LedgerEntry.Kind.ADJUSTMENT,
        description=description,
    )
    return True


def refunds_apply(*, payment_intent_id: str, refunds: list) -> str:
    """Take back each refund once; `refunds` are every refund of the charge as Stripe lists them."""
    payment = _locked_payment(payment_intent_id=payment_intent_id)
    if payment is None:
        return f"ignored: no hub payment for {payment_intent_id}"
    taken = []
    for refund in refunds:
        if refund.status not in ("succeeded", "pending"):
            continue
        if _take_back(
            payment,
            amount=-refund.amount,
            key=f"stripe:refund:{refund.id}",
            description=f"Refund {refund.id} of Stripe payment {payment.pk}",
        ):
            taken.append(refund.id)
    refunded = sum((r.amount for r in refunds if r.status in ("succeeded", "pending")), Decimal(0))
    status = Payment.Status.REFUNDED if refunded >= payment.amount else payment.status
    Payment.objects.filter(pk=payment.pk).update(amount_refunded=refunded, status=status, updated_at=timezone.now())
    return f"refunded {refunded:.2f} of payment {payment.pk}; new: {', '.join(taken) or 'none'}"


def dispute_open(*, payment_intent_id: str, dispute_id: str, amount: Decimal) -> str:
    payment = _locked_payment(payment_intent_id=payment_intent_id)
    if payment is None:
        return f"ignored: no hub payment for {payment_intent_id}"
    new = _take_back(
        payment,
        amount=-amount,
        key=f"stripe:dispute:{dispute_id}:withdrawal",
        description=f"Dispute {dispute_id} of Stripe payment {payment.pk}",
    )
    if new:
        Payment.objects.filter(pk=payment.pk).update(status=Payment.Status.DISPUTED, updated_at=timezone.now())
    return f"{'withdrew' if new else 'already withdrawn'} {amount:.2f}: dispute {dispute_id}"


def dispute_close(*, payment_intent_id: str, dispute_id: str, amount: Decimal, won: bool) -> str:
    # Closed before created (events are not ordered): withdraw first, so the
    # late charge.dispute.created finds its key taken.
    opened = dispute_open(payment_intent_id=payment_intent_id, dispute_id=dispute_id, amount=amount)
    if opened.startswith("ignored"):
        return opened
    if not won:
        return f"lost: dispute {dispute_id}"
    payment = _locked_payment(payment_intent_id=payment_intent_id)
    if payment is None:  # dispute_open found it, under the same lock: only the type checker asks
        return f"ignored: no hub payment for {payment_intent_id}"
    new = _take_back(
        payment,
        amount=amount,
        key=f"stripe:dispute:{dispute_id}:reinstatement",
        description=f"Dispute {dispute_id} won for Stripe payment {payment.pk}",
    )
    if new and payment.status == Payment.Status.DISPUTED:
        Payment.objects.filter(pk=payment.pk).update(status=Payment.Status.PAID, updated_at=timezone.now())
    return f"{'returned' if new else 'already returned'} {amount:.2f}: dispute {dispute_id} won"
