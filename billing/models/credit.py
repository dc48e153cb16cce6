"""An organisation's credit: its account and billing mode, the ledger, holds, grants with an expiry
and the low-balance alert (billing/services.py, grants.py, notifications.py)."""

from decimal import Decimal

from django.conf import settings
from django.db import models

from .columns import money


class BillingMode(models.TextChoices):
    CREDITS = "credits", "Credits (prepaid; refused with 402 when out of credit)"
    POSTPAID = "postpaid", "Postpaid (never refused; invoiced monthly)"
    INTERNAL = "internal", "Internal (never refused; cost tracked, nothing charged)"


class CreditAccount(models.Model):
    """An organisation's credit and how it pays. `balance` is a cache of the sum of its ledger;
    `held` the sum of its open holds (credit reserved by requests in flight)."""

    organization = models.OneToOneField("accounts.Organization", on_delete=models.CASCADE, related_name="credit")
    balance = money(default=Decimal(0))
    held = money(default=Decimal(0))
    price_plan = models.ForeignKey(
        "billing.PricePlan", null=True, blank=True, on_delete=models.PROTECT, related_name="accounts"
    )
    billing_mode = models.CharField(
        max_length=10, choices=BillingMode.choices, blank=True, default="", help_text="Empty: HUB_BILLING_MODE"
    )
    invoice_auto_charge = models.BooleanField(
        null=True,
        blank=True,
        help_text="Charge each invoice to the saved card (auto-recharge's); empty: HUB_INVOICE_AUTO_CHARGE",
    )
    # Billing emails (low balance, invoices) go here too, besides the owners and billing members
    # (billing/notifications.py): an accounts address nobody signs in with.
    billing_email = models.EmailField(blank=True, help_text="Empty: only the owners and billing members")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f"credit of {self.organization}"

    @property
    def available(self) -> Decimal:
        return self.balance - self.held


class CreditHold(models.Model):
    """Credit reserved for one request in flight: its worst-case price, until it is settled.

    A hold whose request never settles (a crashed process) is released when it
    expires, by billing.tasks.release_expired_holds.
    """

    account = models.ForeignKey(CreditAccount, on_delete=models.CASCADE, related_name="holds")
    request_id = models.CharField(max_length=64, unique=True)
    amount = money()
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(db_index=True)

    def __str__(self):
        return f"hold {self.amount} for {self.request_id}"


class LedgerEntry(models.Model):
    """One movement of credit. Appended, never edited or deleted.

    A usage charge keeps what it charged for on its own row (request id,
    model, when the request ran), so it stays a complete receipt once
    retention has archived and deleted its usage record (billing/rollups.py):
    `usage_record` then becomes NULL (Django's SET_NULL, an UPDATE that never
    passes through save()). On PostgreSQL a trigger refuses every other UPDATE
    and DELETE of an entry (migration 0016); save() and delete() refuse them
    everywhere.
    """

    class Kind(models.TextChoices):
        GRANT = "grant", "Grant"
        USAGE = "usage", "Usage"
        ADJUSTMENT = "adjustment", "Adjustment"

    account = models.ForeignKey(CreditAccount, on_delete=models.PROTECT, related_name="entries")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    amount = money(help_text="Positive adds credit, negative takes it")
    description = models.CharField(max_length=300, blank=True)
    idempotency_key = models.CharField(max_length=200, unique=True, null=True, blank=True)
    usage_record = models.OneToOneField(
        "UsageRecord",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="ledger_entry",
        help_text="Empty once retention archived the record (HUB_USAGE_RETENTION_DAYS)",
    )
    request_id = models.CharField(max_length=64, blank=True, help_text="The charged request's (usage only)")
    model_name = models.CharField(max_length=200, blank=True, help_text="The model it asked for (usage only)")
    usage_at = models.DateTimeField(
        null=True, blank=True, help_text="When the charged request ran: its usage record's created_at"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "ledger entries"

    def __str__(self):
        return f"{self.kind} {self.amount}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ValueError("ledger entries are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("ledger entries are append-only")


class CreditGrant(models.Model):
    """Credit granted with an expiry (a promotion, an operator's gift); what is unused when it expires lapses.

    The credit itself is the ledger entry `entry`; this row only says when it
    expires and, once it has, what lapsed. What is left of it is computed from
    the ledger (billing/grants.py).
    """

    account = models.ForeignKey(CreditAccount, on_delete=models.PROTECT, related_name="expiring_grants")
    entry = models.OneToOneField(LedgerEntry, on_delete=models.PROTECT, related_name="expiring_grant")
    amount = money()
    expires_at = models.DateTimeField(db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Claimed with a conditional UPDATE by the one run of the lapse that handles it.
    lapsed_at = models.DateTimeField(null=True, blank=True)
    lapsed_amount = money(null=True, blank=True, help_text="What was taken back when it expired")
    lapse_entry = models.OneToOneField(LedgerEntry, null=True, blank=True, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"grant of {self.amount} until {self.expires_at:%Y-%m-%d %H:%M}"


class LowBalanceAlert(models.Model):
    """When an organisation's available credit falls under `threshold`, its owners and billing members
    get one email; `notified_at` is set until credit is added again and lifts it over (billing/notifications.py)."""

    account = models.OneToOneField(CreditAccount, on_delete=models.CASCADE, related_name="low_balance_alert")
    enabled = models.BooleanField(default=True)
    threshold = money(null=True, blank=True, help_text="Empty: HUB_LOW_BALANCE_THRESHOLD")
    notified_at = models.DateTimeField(null=True, blank=True, help_text="Empty: armed")
    # The balance when it was sent: it re-arms only once the balance rose above
    # this (credit was added), not when a credit lease is given back.
    notified_balance = money(null=True, blank=True)

    def __str__(self):
        return f"low-balance alert of {self.account}"
