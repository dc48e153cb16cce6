"""What went through the gateway: one record per request, and the rollups that outlive them (billing/rollups.py)."""

from decimal import Decimal

from django.db import models

from .columns import money
from .credit import BillingMode


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
    model_name = models.CharField(
        "model asked for", max_length=200, help_text="The model the client asked for, as it named it"
    )
    # What invoices, rollups and totals file the request under: a fallback's
    # usage is priced at the fallback's rate, so it is the fallback's usage.
    served_model = models.CharField(
        "model that served",
        max_length=200,
        blank=True,
        default="",
        help_text="The public id of the model that served (a fallback's, when one "
        "did); when none served, of the model asked for",
    )
    provider = models.ForeignKey(
        "providers.Provider", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
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
    cache_hit = models.BooleanField(
        default=False, help_text="Answered from the hub's response cache: no upstream call, no cost"
    )
    unit = models.CharField(
        max_length=20,
        default="tokens",
        help_text="What the request is metered in: tokens, "
        "characters (speech: prompt_tokens counts them), images or seconds",
    )
    images = models.PositiveIntegerField(default=0, help_text="Images generated")
    image_tier = models.CharField(max_length=40, blank=True, help_text="Their size/quality, as priced")
    audio_seconds = models.DecimalField(
        max_digits=12, decimal_places=3, default=Decimal(0), help_text="Seconds of audio transcribed or translated"
    )
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
        # The request log (billing/requestlog.py) reads an organisation's records newest first by keyset on
        # (created_at, id), alone or filtered by one column: each of these is read backwards as a range scan,
        # so page 50 costs what page 1 does. Combined filters use the most selective one's and filter the rest.
        indexes = [
            models.Index(fields=["organization", "created_at", "id"], name="usage_log_org_idx"),
            models.Index(fields=["organization", "api_key", "created_at", "id"], name="usage_log_key_idx"),
            models.Index(fields=["organization", "served_model", "created_at", "id"], name="usage_log_model_idx"),
            models.Index(fields=["organization", "status", "created_at", "id"], name="usage_log_status_idx"),
            models.Index(fields=["organization", "endpoint", "created_at", "id"], name="usage_log_endpoint_idx"),
        ]

    def __str__(self):
        return self.request_id

    def save(self, *args, **kwargs):
        # Records built elsewhere than billing.services (the admin, fixtures) are filed under the name asked.
        self.served_model = self.served_model or self.model_name
        super().save(*args, **kwargs)


class UsageRollup(models.Model):
    """Usage summed per organisation × API key × model × provider × billing mode, per hour and per day.

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
    model = models.ForeignKey(
        "providers.CatalogModel", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The provider that served (none: refused before a route was tried), so that the usage page can group by
    # the provider-facing model (billing/analytics.py); its id, 0 for none, is the unique constraint's column
    # for the reason api_key_ref is. Rollups built before it was kept have 0.
    provider = models.ForeignKey(
        "providers.Provider", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    provider_ref = models.PositiveBigIntegerField(default=0, editable=False)
    billing_mode = models.CharField(
        max_length=10,
        choices=BillingMode.choices,
        blank=True,
        default="",
        help_text="What its records ran in; invoices bill the postpaid rows",
    )
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
                fields=[
                    "organization",
                    "api_key_ref",
                    "model_name",
                    "provider_ref",
                    "billing_mode",
                    "granularity",
                    "period_start",
                ],
                name="unique_usage_rollup_provider",
            ),
        ]
        indexes = [
            models.Index(fields=["granularity", "period_start"]),
            # The usage page's range of one organisation (billing/analytics.py): bench/dashboard.py.
            models.Index(fields=["organization", "granularity", "period_start"], name="usage_rollup_org_period_idx"),
        ]

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


class RouteRollup(models.Model):
    """Requests, errors and latency histograms per provider × credential, per hour and per day.

    What the operator overview shows of how providers and credentials behave (hub/operator_overview.py): a
    percentile cannot be summed, a histogram can. Built with the usage rollups, from the same raw records of the
    same hours (billing/rollups.py), so the two always count the same requests.
    """

    provider = models.ForeignKey(
        "providers.Provider", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    provider_ref = models.PositiveBigIntegerField(default=0, editable=False)  # 0: none (as UsageRollup's)
    credential = models.ForeignKey(
        "providers.Credential", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    credential_ref = models.PositiveBigIntegerField(default=0, editable=False)
    granularity = models.CharField(max_length=4, choices=UsageRollup.Granularity.choices)
    period_start = models.DateTimeField()
    requests = models.PositiveBigIntegerField(default=0)
    errors = models.PositiveBigIntegerField(default=0, help_text="Requests that did not complete")
    # Counts per bucket of billing.rollups.LATENCY_BOUNDS_MS (the last one: slower than every bound), trailing
    # empty buckets left off.
    latency = models.JSONField(default=list, help_text="Requests per latency bucket")
    first_token = models.JSONField(default=list, help_text="Streams per time-to-first-token bucket")

    class Meta:
        ordering = ["-period_start", "provider_ref", "credential_ref"]
        constraints = [
            models.UniqueConstraint(
                fields=["provider_ref", "credential_ref", "granularity", "period_start"], name="unique_route_rollup"
            ),
        ]
        indexes = [models.Index(fields=["granularity", "period_start"], name="route_rollup_period_idx")]

    def __str__(self):
        return f"{self.granularity} {self.period_start:%Y-%m-%d %H:00} route {self.provider_ref}/{self.credential_ref}"
