"""Postpaid invoices and their lines (billing/invoices/)."""

import uuid
from decimal import Decimal

from django.db import models

from .columns import money


class Invoice(models.Model):
    """A postpaid organisation's bill for one calendar month (UTC), issued once (billing/invoices/issuing.py).

    `subtotal` is the month's usage priced exactly (the sum of its lines, to
    MONEY_DECIMAL_PLACES); `total`, what is due, is the subtotal rounded to the
    cent, since a card is charged in cents. Amounts never change once issued;
    only the status moves (open → paid, or void; a full refund or a dispute
    of its payment puts a paid one back to open, a won dispute pays it again).
    """

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        OPEN = "open", "Open"
        PAID = "paid", "Paid"
        VOID = "void", "Void"

    # Stripe's idempotency key comes from this, not the primary key (see Payment.key).
    key = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    organization = models.ForeignKey("accounts.Organization", on_delete=models.PROTECT, related_name="invoices")
    number = models.CharField(max_length=40, unique=True)
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT, db_index=True)
    currency = models.CharField(max_length=3, default="usd")
    subtotal = money(default=Decimal(0), help_text="The usage's price, exactly: the sum of the lines")
    total = money(default=Decimal(0), help_text="Due: the subtotal rounded to the cent")
    issued_at = models.DateTimeField(null=True, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    stripe_payment_intent_id = models.CharField(max_length=255, unique=True, null=True, blank=True)
    # Claimed with a conditional UPDATE by the one run that charges the card.
    charge_started_at = models.DateTimeField(null=True, blank=True)
    payment_error = models.CharField(
        max_length=500,
        blank=True,
        help_text="Why the last charge failed, or what "
        "happened to the payment since (refund, dispute, a second payment)",
    )
    # What Stripe refunded of the payment, and its dispute's last status
    # (needs_response, won, lost…): refund and dispute events arrive in any
    # order, so the invoice keeps how far they got (billing/invoices/refunds.py).
    amount_refunded = money(default=Decimal(0))
    dispute_status = models.CharField(max_length=30, blank=True)
    # Claimed likewise by the one run that emails it.
    notified_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-period_start", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "period_start"], name="unique_invoice_period"),
        ]

    def __str__(self):
        return self.number

    @property
    def rounding(self) -> Decimal:
        return self.total - self.subtotal

    @property
    def idempotency_key(self) -> str:
        return f"hub-invoice-{self.key}"


class InvoiceLine(models.Model):
    """One model's usage on an invoice. Written with the invoice, never changed."""

    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="lines")
    model_name = models.CharField(max_length=200)
    requests = models.PositiveBigIntegerField(default=0)
    prompt_tokens = models.PositiveBigIntegerField(default=0)
    completion_tokens = models.PositiveBigIntegerField(default=0)
    images = models.PositiveBigIntegerField(default=0)
    audio_seconds = models.DecimalField(max_digits=16, decimal_places=3, default=Decimal(0))
    amount = money(default=Decimal(0))

    class Meta:
        ordering = ["model_name"]
        constraints = [models.UniqueConstraint(fields=["invoice", "model_name"], name="unique_invoice_line")]

    def __str__(self):
        return f"{self.model_name}: {self.amount}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ValueError("invoice lines are never changed")
        super().save(*args, **kwargs)
