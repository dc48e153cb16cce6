"""What models cost and what tenants pay: the rate card, its price history and price plans (billing/pricing.py)."""

from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from ..ratecard import decimal_tiers, prices_over_cost
from .columns import money


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
    image_input_cost = money(
        null=True, blank=True, help_text="Per million image input tokens (image edits: gpt-image-1); empty: as input"
    )
    image_input_price = money(null=True, blank=True, help_text="Per million image input tokens; empty: as input")
    output_price = money(default=Decimal(0), help_text="Tenant price per million output tokens")
    image_cost = money(default=Decimal(0), help_text="Provider cost per image (no tier matched)")
    image_price = money(default=Decimal(0), help_text="Tenant price per image (no tier matched)")
    image_costs = models.JSONField(
        default=dict, blank=True, help_text='Per image by tier, e.g. {"1024x1024/hd": "0.08", "1792x1024": "0.08"}'
    )
    image_prices = models.JSONField(default=dict, blank=True, help_text="Tenant price per image by tier, as above")
    audio_second_cost = money(default=Decimal(0), help_text="Provider cost per second of audio transcribed")
    audio_second_price = money(default=Decimal(0), help_text="Tenant price per second of audio transcribed")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f"rate of {self.model}"

    def save(self, *args, **kwargs):
        self.derive_prices()
        super().save(*args, **kwargs)

    def clean(self):
        for name in ("image_costs", "image_prices"):
            try:
                tiers = decimal_tiers(getattr(self, name))
            except (TypeError, ValueError, ArithmeticError):
                raise ValidationError(
                    {name: 'A JSON object of tier to amount, e.g. {"1024x1024/hd": "0.08"}.'}
                ) from None
            if any(amount < 0 for amount in tiers.values()):
                raise ValidationError({name: "Amounts must not be negative."})

    def derive_prices(self) -> None:
        """With a margin, every price is its cost × (1 + margin) (billing.ratecard, as the gateway's card)."""
        if self.margin is not None:
            for name, price in prices_over_cost(self, 1 + self.margin).items():
                setattr(self, name, {tier: str(a) for tier, a in price.items()} if isinstance(price, dict) else price)


class PricePlan(models.Model):
    """A deal for some organisations: a discount on the prices, or a margin of its own over cost."""

    name = models.CharField(max_length=100, unique=True)
    discount = models.DecimalField(
        max_digits=5, decimal_places=4, null=True, blank=True, help_text="0.1000 = 10% off every price"
    )
    margin = models.DecimalField(
        max_digits=8,
        decimal_places=4,
        null=True,
        blank=True,
        help_text="Instead: price = cost × (1 + margin) for these organisations",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return self.name

    def clean(self):
        if (self.discount is None) == (self.margin is None):
            raise ValidationError("A plan has either a discount or a margin.")
        if self.discount is not None and not 0 <= self.discount <= 1:
            raise ValidationError({"discount": "Between 0 and 1."})


class PriceChange(models.Model):
    """One change of a ModelRate (created, changed or deleted). Appended, never edited or deleted."""

    class Action(models.TextChoices):
        CREATED = "created", "Created"
        CHANGED = "changed", "Changed"
        DELETED = "deleted", "Deleted"

    model = models.ForeignKey(
        "providers.CatalogModel", null=True, blank=True, on_delete=models.SET_NULL, related_name="price_changes"
    )
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
