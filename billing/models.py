import uuid
from decimal import Decimal

from django.conf import settings
from django.db import models

from .money import MoneyField
from .ratecard import decimal_tiers, prices_over_cost


def money(**kwargs):
    return MoneyField(**kwargs)


class ModelRate(models.Model):
    """What a model costs the operator and what the tenant pays.

    Tokens are priced per million (a speech model's input per million
    characters), images per image, transcription per second of audio. With a
    margin set, the prices are derived from the costs on save (price = cost ×
    (1 + margin)); without one they are set directly. A rate with costs but
    neither prices nor a margin is priced at HUB_DEFAULT_MARGIN over cost.
    Cached input (prompt tokens read from a provider's cache) has its own cost
    and price; empty means the input ones.

    Image tiers: `image_costs` / `image_prices` map "<size>/<quality>",
    "<size>" or "<quality>" (tried in that order) to a price per image, as
    decimal strings; an image no tier names is priced at `image_cost` /
    `image_price`.
    """

    model = models.OneToOneField("providers.CatalogModel", on_delete=models.CASCADE, related_name="rate")
    input_cost = money(default=Decimal(0), help_text="Provider cost per million input tokens")
    cached_input_cost = money(null=True, blank=True, help_text="Per million cached input tokens; empty: as input")
    output_cost = money(default=Decimal(0), help_text="Provider cost per million output tokens")
    margin = models.DecimalField(
        max_digits=8, decimal_places=4, null=True, blank=True, help_text="0.2500 = 25% over cost; empty = set prices"
    )
    input_price = money(default=Decimal(0), help_text="Tenant price per million input tokens")
    cached_input_price = money(null=True, blank=True, help_text="Per million cached input tokens; empty: as input")
    image_input_cost = money(null=True, blank=True,
                             help_text="Per million image input tokens (image edits: gpt-image-1); empty: as input")
    image_input_price = money(null=True, blank=True, help_text="Per million image input tokens; empty: as input")
    output_price = money(default=Decimal(0), help_text="Tenant price per million output tokens")
    image_cost = money(default=Decimal(0), help_text="Provider cost per image (no tier matched)")
    image_price = money(default=Decimal(0), help_text="Tenant price per image (no tier matched)")
    image_costs = models.JSONField(default=dict, blank=True,
                                   help_text='Per image by tier, e.g. {"1024x1024/hd": "0.08", "1792x1024": "0.08"}')
    image_prices = models.JSONField(default=dict, blank=True, help_text="Tenant price per image by tier, as above")
    audio_second_cost = money(default=Decimal(0), help_text="Provider cost per second of audio transcribed")
    audio_second_price = money(default=Decimal(0), help_text="Tenant price per second of audio transcribed")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f"rate of {self.model}"

    def clean(self):
        from django.core.exceptions import ValidationError

        for name in ("image_costs", "image_prices"):
            try:
                tiers = decimal_tiers(getattr(self, name))
            except (TypeError, ValueError, ArithmeticError):
                raise ValidationError({name: 'A JSON object of tier to amount, e.g. {"1024x1024/hd": "0.08"}.'})
            if any(amount < 0 for amount in tiers.values()):
                raise ValidationError({name: "Amounts must not be negative."})

    def save(self, *args, **kwargs):
        self.derive_prices()
        super().save(*args, **kwargs)

    def derive_prices(self) -> None:
        """With a margin, every price is its cost × (1 + margin) (billing.ratecard, as the gateway's card)."""
        if self.margin is not None:
            for name, price in prices_over_cost(self, 1 + self.margin).items():
                setattr(self, name, {tier: str(a) for tier, a in price.items()} if isinstance(price, dict) else price)


class PricePlan(models.Model):
    """A deal for some organisations: a discount on the prices, or a margin of its own over cost."""

    name = models.CharField(max_length=100, unique=True)
    discount = models.DecimalField(max_digits=5, decimal_places=4, null=True, blank=True,
                                   help_text="0.1000 = 10% off every price")
    margin = models.DecimalField(max_digits=8, decimal_places=4, null=True, blank=True,
                                 help_text="Instead: price = cost × (1 + margin) for these organisations")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return self.name

    def clean(self):
        from django.core.exceptions import ValidationError

        if (self.discount is None) == (self.margin is None):
            raise ValidationError("A plan has either a discount or a margin.")
        if self.discount is not None and not 0 <= self.discount <= 1:
            raise ValidationError({"discount": "Between 0 and 1."})


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
    price_plan = models.ForeignKey(PricePlan, null=True, blank=True, on_delete=models.PROTECT, related_name="accounts")
    billing_mode = models.CharField(max_length=10, choices=BillingMode.choices, blank=True, default="",
                                    help_text="Empty: HUB_BILLING_MODE")
    invoice_auto_charge = models.BooleanField(
        null=True, blank=True, help_text="Charge each invoice to the saved card (auto-recharge's); "
        "empty: HUB_INVOICE_AUTO_CHARGE")
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
        "UsageRecord", null=True, blank=True, on_delete=models.SET_NULL, related_name="ledger_entry",
        help_text="Empty once retention archived the record (HUB_USAGE_RETENTION_DAYS)",
    )
    request_id = models.CharField(max_length=64, blank=True, help_text="The charged request's (usage only)")
    model_name = models.CharField(max_length=200, blank=True, help_text="The model it asked for (usage only)")
    usage_at = models.DateTimeField(null=True, blank=True,
                                    help_text="When the charged request ran: its usage record's created_at")
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


class UsageRecord(models.Model):
    """One request through the gateway, whatever its ending."""

    class Status(models.TextChoices):
        OK = "ok", "Completed"
        CLIENT_ERROR = "client_error", "Refused (client error)"
        RATE_LIMITED = "rate_limited", "Refused: every route rate limited by its provider"
        UNAVAILABLE = "unavailable", "Refused: no route available (cooling down or at its cap)"
        UPSTREAM_ERROR = "upstream_error", "Upstream error"
        CANCELLED = "cancelled", "Client disconnected"
        SERVER_ERROR = "server_error", "Hub error"

    request_id = models.CharField(max_length=64, unique=True)
    organization = models.ForeignKey("accounts.Organization", on_delete=models.PROTECT, related_name="usage")
    api_key = models.ForeignKey("accounts.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    model = models.ForeignKey(
        "providers.CatalogModel", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    model_name = models.CharField("model asked for", max_length=200,
                                  help_text="The model the client asked for, as it named it")
    # What invoices, rollups and totals file the request under: a fallback's
    # usage is priced at the fallback's rate, so it is the fallback's usage.
    served_model = models.CharField("model that served", max_length=200, blank=True, default="",
                                    help_text="The public id of the model that served (a fallback's, when one "
                                              "did); when none served, of the model asked for")
    provider = models.ForeignKey("providers.Provider", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    credential = models.ForeignKey(
        "providers.Credential", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    endpoint = models.CharField(max_length=50, default="chat.completions")
    stream = models.BooleanField(default=False)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    total_tokens = models.PositiveIntegerField(default=0)
    cache_read_tokens = models.PositiveIntegerField(default=0, help_text="Part of the prompt read from a cache")
    cache_write_tokens = models.PositiveIntegerField(default=0, help_text="Part of the prompt written to a cache")
    image_input_tokens = models.PositiveIntegerField(default=0, help_text="Part of the prompt that was images")
    usage_estimated = models.BooleanField(default=False, help_text="The upstream reported no usage")
    unit = models.CharField(max_length=20, default="tokens", help_text="What the request is metered in: tokens, "
                            "characters (speech: prompt_tokens counts them), images or seconds")
    images = models.PositiveIntegerField(default=0, help_text="Images generated")
    image_tier = models.CharField(max_length=40, blank=True, help_text="Their size/quality, as priced")
    audio_seconds = models.DecimalField(max_digits=12, decimal_places=3, default=Decimal(0),
                                        help_text="Seconds of audio transcribed or translated")
    cost = money(default=Decimal(0), help_text="What the provider charges the operator")
    price = money(default=Decimal(0), help_text="What the organisation is charged")
    latency_ms = models.PositiveIntegerField(default=0)
    first_token_ms = models.PositiveIntegerField(null=True, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices)
    http_status = models.PositiveSmallIntegerField(default=200)
    error = models.CharField(max_length=300, blank=True)
    # The mode the request ran in, kept because an organisation's (or the hub's)
    # mode changes: invoices bill exactly the postpaid records. Empty: recorded
    # before records kept it; never invoiced.
    billing_mode = models.CharField(max_length=10, choices=BillingMode.choices, blank=True, default="")
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["organization", "created_at"])]

    def __str__(self):
        return self.request_id

    def save(self, *args, **kwargs):
        # Records built elsewhere than billing.services (the admin, fixtures) are filed under the name asked.
        self.served_model = self.served_model or self.model_name
        super().save(*args, **kwargs)


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

    organization = models.OneToOneField(
        "accounts.Organization", on_delete=models.CASCADE, related_name="auto_recharge"
    )
    enabled = models.BooleanField(default=False)
    threshold = money(default=Decimal(0))
    amount = money(default=Decimal(0))
    stripe_customer_id = models.CharField(max_length=255, blank=True)
    stripe_payment_method_id = models.CharField(max_length=255, blank=True, help_text="Empty: no card saved yet")
    # The card setup last started from the management API: only its
    # setup_intent.succeeded may save a card, so an older one arriving late
    # cannot replace a newer card (billing/payments.py).
    stripe_setup_intent_id = models.CharField(max_length=255, blank=True)
    # Set while a recharge is on its way; claimed with a conditional UPDATE so
    # two runs of the task never start two charges (billing/payments.py).
    pending_payment = models.OneToOneField(
        Payment, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    disabled_reason = models.CharField(max_length=500, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f"auto-recharge of {self.organization}"


class UsageRollup(models.Model):
    """Usage summed per organisation × API key × model × billing mode, per hour and per day.

    Rebuilt from the raw UsageRecords of whole periods by billing/rollups.py;
    once a day's raw records are pruned its rollups are the record that stays.
    """

    class Granularity(models.TextChoices):
        HOUR = "hour", "Hour"
        DAY = "day", "Day"

    organization = models.ForeignKey("accounts.Organization", on_delete=models.PROTECT, related_name="+")
    api_key = models.ForeignKey("accounts.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # The key's id, 0 for none: the unique constraint's column. NULLs are
    # distinct in unique constraints (SQLite, PostgreSQL < 15), and Django does
    # not create a nulls_distinct=False constraint at all where it is
    # unsupported. It also outlives a deleted key, whose api_key becomes NULL.
    api_key_ref = models.PositiveBigIntegerField(default=0, editable=False)
    model_name = models.CharField(max_length=200, help_text="The model that served (UsageRecord.served_model)")
    model = models.ForeignKey("providers.CatalogModel", null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+")
    billing_mode = models.CharField(max_length=10, choices=BillingMode.choices, blank=True, default="",
                                    help_text="What its records ran in; invoices bill the postpaid rows")
    granularity = models.CharField(max_length=4, choices=Granularity.choices)
    period_start = models.DateTimeField()
    requests = models.PositiveBigIntegerField(default=0)
    prompt_tokens = models.PositiveBigIntegerField(default=0)
    completion_tokens = models.PositiveBigIntegerField(default=0)
    cache_read_tokens = models.PositiveBigIntegerField(default=0)
    cache_write_tokens = models.PositiveBigIntegerField(default=0)
    images = models.PositiveBigIntegerField(default=0)
    audio_seconds = models.DecimalField(max_digits=16, decimal_places=3, default=Decimal(0))
    cost = money(default=Decimal(0))
    price = money(default=Decimal(0))
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-period_start", "organization", "model_name"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "api_key_ref", "model_name", "billing_mode", "granularity", "period_start"],
                name="unique_usage_rollup_mode",
            ),
        ]
        indexes = [models.Index(fields=["granularity", "period_start"])]

    def __str__(self):
        return f"{self.granularity} {self.period_start:%Y-%m-%d %H:00} {self.model_name}"


class UsageRollupState(models.Model):
    """One row (pk 1): the lock every roll-up and prune takes, and how far raw usage was pruned.

    Days before `pruned_through` are sealed: their raw records are archived and
    deleted, their rollups final, never rebuilt from records arriving later.
    """

    pruned_through = models.DateTimeField(null=True, blank=True)
    rolled_up_at = models.DateTimeField(null=True, blank=True)
    pruned_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return f"usage rolled up at {self.rolled_up_at}, pruned through {self.pruned_through}"


class PriceChange(models.Model):
    """One change of a ModelRate (created, changed or deleted). Appended, never edited or deleted."""

    class Action(models.TextChoices):
        CREATED = "created", "Created"
        CHANGED = "changed", "Changed"
        DELETED = "deleted", "Deleted"

    model = models.ForeignKey("providers.CatalogModel", null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="price_changes")
    model_name = models.CharField(max_length=200, help_text="The model's public id at the time")
    action = models.CharField(max_length=10, choices=Action.choices)
    old = models.JSONField(default=dict, blank=True, help_text="The rate before, amounts as strings")
    new = models.JSONField(default=dict, blank=True, help_text="The rate after, amounts as strings")
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    source = models.CharField(max_length=100, blank=True, help_text="admin, hub_prices, hub_config, …")
    changed_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-changed_at", "-id"]

    def __str__(self):
        return f"{self.action} rate of {self.model_name}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ValueError("price changes are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("price changes are append-only")



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
    lapse_entry = models.OneToOneField(LedgerEntry, null=True, blank=True, on_delete=models.PROTECT,
                                       related_name="+")

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


class Invoice(models.Model):
    """A postpaid organisation's bill for one calendar month (UTC), issued once (billing/invoices.py).

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
    payment_error = models.CharField(max_length=500, blank=True, help_text="Why the last charge failed, or what "
                                     "happened to the payment since (refund, dispute, a second payment)")
    # What Stripe refunded of the payment, and its dispute's last status
    # (needs_response, won, lost…): refund and dispute events arrive in any
    # order, so the invoice keeps how far they got (billing/invoice_refunds.py).
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
