"""Credit bought through Stripe: payments, webhook events, auto-recharge and its saved card (billing/payments.py)."""

import uuid
from decimal import Decimal

from django.conf import settings
from django.db import models

from .columns import money


class Payment(models.Model):
    """Money an organisation pays through Stripe for credit.

    Credit comes only from Stripe's verified webhook, never from the redirect
    after Checkout; the ledger entries a payment causes carry idempotency keys
    derived from its payment intent, refunds and disputes (billing/webhooks.py).
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        PAID = "paid", "Paid"
        REFUNDED = "refunded", "Refunded"
        DISPUTED = "disputed", "Disputed"
        FAILED = "failed", "Failed"

    class Source(models.TextChoices):
        CHECKOUT = "checkout", "Checkout"
        AUTO_RECHARGE = "auto_recharge", "Auto-recharge"

    # Stripe idempotency keys are derived from this, not from the primary key:
    # a restored or recreated database reuses primary keys, and Stripe would
    # answer a reused key with the old payment's session for 24 hours.
    key = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    organization = models.ForeignKey("accounts.Organization", on_delete=models.PROTECT, related_name="payments")
    source = models.CharField(max_length=20, choices=Source.choices, default=Source.CHECKOUT)
    amount = money(help_text="Credits bought (USD)")
    currency = models.CharField(max_length=3, default="usd")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING, db_index=True)
    amount_refunded = money(default=Decimal(0))
    stripe_checkout_session_id = models.CharField(max_length=255, unique=True, null=True, blank=True)
    stripe_payment_intent_id = models.CharField(max_length=255, unique=True, null=True, blank=True)
    failure_reason = models.CharField(max_length=500, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"payment {self.pk} of {self.amount} {self.currency} ({self.status})"

    @property
    def idempotency_key(self) -> str:
        return f"hub-payment-{self.key}"


class StripeEvent(models.Model):
    """A Stripe webhook event, stored once: a replay finds its row and does nothing."""

    stripe_id = models.CharField(max_length=255, unique=True)
    type = models.CharField(max_length=100, db_index=True)
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    outcome = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]

    def __str__(self):
        return f"{self.type} {self.stripe_id}"


class AutoRecharge(models.Model):
    """Buy `amount` of credit off-session whenever the balance falls under `threshold`."""

    organization = models.OneToOneField("accounts.Organization", on_delete=models.CASCADE, related_name="auto_recharge")
    enabled = models.BooleanField(default=False)
    threshold = money(default=Decimal(0))
    amount = money(default=Decimal(0))
    stripe_customer_id = models.CharField(max_length=255, blank=True)
    stripe_payment_method_id = models.CharField(max_length=255, blank=True, help_text="Empty: no card saved yet")
    # The card setup last started from the management API: only its
    # setup_intent.succeeded may save a card, so an older one arriving late
    # cannot replace a newer card (billing/payments.py).
    stripe_setup_intent_id = models.CharField(max_length=255, blank=True)
    # Likewise the Checkout session in setup mode last started from the dashboard: only its
    # checkout.session.completed may save a card (Checkout makes its SetupIntent, so its id is not known before).
    stripe_setup_session_id = models.CharField(max_length=255, blank=True)
    # Set while a recharge is on its way; claimed with a conditional UPDATE so
    # two runs of the task never start two charges (billing/payments.py).
    pending_payment = models.OneToOneField(Payment, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    disabled_reason = models.CharField(max_length=500, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f"auto-recharge of {self.organization}"
