"""Prices: their history, margins applied in bulk, and prices that lose money.

Every save of a ModelRate appends a PriceChange, whoever saves it: receivers of
the model's signals write it, so the admin (and its inline on models),
hub_config and hub_prices are all recorded without each having to remember.
Who made the change is known when the write goes through `acting` (the
services below and the billing admin do); otherwise it is left empty.
"""

import contextvars
import fnmatch
import logging
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.db import transaction
from django.db.models.signals import post_delete, post_save, pre_save
from django.dispatch import receiver

from providers.models import CatalogModel

from .models import ModelRate, PriceChange
from .ratecard import FIELDS, PAIRS, TIERS, decimal_tiers

logger = logging.getLogger(__name__)

RATE_FIELDS = ("input_cost", "output_cost", "margin", "input_price", "output_price")
# The rate card's others, kept in a history entry only when set, so a plain token-priced model's history
# reads as before.
MEDIA_FIELDS = tuple(name for name in FIELDS if name not in RATE_FIELDS and name not in TIERS)
TIER_FIELDS = TIERS  # JSON: tier -> amount
MARGIN_QUANTUM = Decimal("0.0001")  # ModelRate.margin has 4 decimal places

_actor: contextvars.ContextVar[tuple] = contextvars.ContextVar("price_change_actor", default=(None, ""))


@contextmanager
def acting(*, changed_by=None, source: str = ""):
    """Record `changed_by` and `source` on the price changes written inside the block."""
    token = _actor.set((changed_by, source))
    try:
        yield
    finally:
        _actor.reset(token)


def _text(name: str, value) -> str | None:
    """One spelling per amount (the field's own places), so a history reads and compares plainly."""
    if value is None:
        return None
    places = MARGIN_QUANTUM if name == "margin" else Decimal(1).scaleb(-settings.MONEY_DECIMAL_PLACES)
    return str(Decimal(value).quantize(places))


def _tiers_text(tiers) -> dict:
    return {tier: _text("image", amount) for tier, amount in sorted(decimal_tiers(tiers).items())}


def _values(row) -> dict:
    values: dict[str, str | dict | None] = {name: _text(name, row[name]) for name in RATE_FIELDS}
    values.update({name: _text(name, row[name]) for name in MEDIA_FIELDS if row[name]})
    values.update({name: _tiers_text(row[name]) for name in TIER_FIELDS if row[name]})
    return values


def snapshot(rate: ModelRate) -> dict:
    return _values({name: getattr(rate, name) for name in RATE_FIELDS + MEDIA_FIELDS + TIER_FIELDS})


def _stored(pk) -> dict | None:
    row = ModelRate.objects.filter(pk=pk).values(*RATE_FIELDS, *MEDIA_FIELDS, *TIER_FIELDS).first()
    return None if row is None else _values(row)


def _normal(values: dict) -> dict:
    # "1.0000" and "1" are the same price: compare numbers, not spellings.
    return {k: _normal(v) if isinstance(v, dict) else None if v is None else Decimal(v) for k, v in values.items()}


def _append(*, rate_model_id: int | None, model_name: str, action: str, old: dict, new: dict) -> None:
    changed_by, source = _actor.get()
    PriceChange.objects.create(
        model_id=rate_model_id,
        model_name=model_name[:200],
        action=action,
        old=old,
        new=new,
        changed_by=changed_by if getattr(changed_by, "pk", None) else None,
        source=source[:100],
    )


def _model_name(model_id: int | None) -> str:
    if model_id is None:
        return ""
    return CatalogModel.objects.filter(pk=model_id).values_list("public_id", flat=True).first() or ""


@receiver(pre_save, sender=ModelRate, dispatch_uid="billing.pricing.remember_rate")
def _remember_rate(sender, instance: ModelRate, raw=False, **kwargs):
    # The values as stored, read just before they are overwritten. A concurrent
    # writer could slip in between; the services below lock the row first.
    # An attribute of this instance only, for the post_save below: not a field, so unknown to the model's type.
    instance._rate_before = None if raw or instance.pk is None else _stored(instance.pk)  # type: ignore[attr-defined]


@receiver(post_save, sender=ModelRate, dispatch_uid="billing.pricing.record_rate")
def _record_rate(sender, instance: ModelRate, created: bool, raw=False, **kwargs):
    if raw:  # loaddata
        return
    old = getattr(instance, "_rate_before", None)
    new = snapshot(instance)
    if not created and old is not None and _normal(old) == _normal(new):
        return
    _append(
        rate_model_id=instance.model_id,
        model_name=_model_name(instance.model_id),
        action=PriceChange.Action.CREATED if created or old is None else PriceChange.Action.CHANGED,
        old=old or {},
        new=new,
    )


@receiver(post_delete, sender=ModelRate, dispatch_uid="billing.pricing.record_rate_deleted")
def _record_rate_deleted(sender, instance: ModelRate, **kwargs):
    old = snapshot(instance)
    model_id, model_name = instance.model_id, _model_name(instance.model_id)
    actor = _actor.get()

    def append():
        # After commit: when the rate goes because its model is deleted, the
        # model is gone too and the change keeps only its name.
        token = _actor.set(actor)
        try:
            exists = CatalogModel.objects.filter(pk=model_id).exists()
            _append(
                rate_model_id=model_id if exists else None,
                model_name=model_name,
                action=PriceChange.Action.DELETED,
                old=old,
                new={},
            )
        finally:
            _actor.reset(token)

    transaction.on_commit(append)


def rate_save(*, rate: ModelRate, changed_by=None, source: str = "") -> ModelRate:
    """Save a rate (new or changed); its PriceChange records who and why."""
    with transaction.atomic(), acting(changed_by=changed_by, source=source):
        if rate.pk is not None:
            ModelRate.objects.select_for_update().filter(pk=rate.pk).first()
        rate.save()
    return rate


def rate_delete(*, rate: ModelRate, changed_by=None, source: str = "") -> None:
    with transaction.atomic(), acting(changed_by=changed_by, source=source):
        rate.delete()


def parse_margin(value) -> Decimal:
    try:
        margin = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"not a number: {value!r}") from None
    if not margin.is_finite() or margin < 0:
        raise ValueError("a margin must be a number of at least 0 (0.25 = 25% over cost)")
    if margin != margin.quantize(MARGIN_QUANTUM) or margin >= 10_000:
        raise ValueError("a margin has at most 4 decimal places and is under 10000")
    return margin.quantize(MARGIN_QUANTUM)


def rates_matching(*, provider: str | None = None, model_pattern: str | None = None):
    """Rates of the models routed to `provider`, whose public id or alias matches the glob `model_pattern`."""
    rates = ModelRate.objects.select_related("model").order_by("model__public_id")
    if provider:
        rates = rates.filter(model__routes__provider__name=provider).distinct()
    if model_pattern:
        return [
            r
            for r in rates
            if fnmatch.fnmatchcase(r.model.public_id, model_pattern)
            or (r.model.alias and fnmatch.fnmatchcase(r.model.alias, model_pattern))
        ]
    return list(rates)


def margin_apply(
    *,
    margin,
    provider: str | None = None,
    model_pattern: str | None = None,
    changed_by=None,
    source: str = "hub_prices margin",
    dry_run: bool = False,
) -> list[dict]:
    """Set `margin` over cost on every matching rate (prices follow); one PriceChange per rate changed.

    All or nothing: one transaction, rows locked in primary-key order.
    """
    margin = parse_margin(margin)
    changes = []
    with transaction.atomic(), acting(changed_by=changed_by, source=source):
        ids = [r.pk for r in rates_matching(provider=provider, model_pattern=model_pattern)]
        for rate in ModelRate.objects.select_for_update().filter(pk__in=ids).select_related("model").order_by("pk"):
            old = snapshot(rate)
            rate.margin = margin
            if dry_run:
                rate.derive_prices()
            else:
                rate.save()
            new = snapshot(rate)
            if _normal(old) != _normal(new):
                changes.append({"model": rate.model.public_id, "old": old, "new": new})
        if dry_run:
            transaction.set_rollback(True)
    return changes


def prices_below_cost(*, log: bool = True) -> list[dict]:
    """Every rate with a price under its cost (any kind, any tier): each request on it loses money.
    The check task logs them; the operator overview (hub/operator_overview.py) only shows them."""
    rows = []
    for rate in ModelRate.objects.select_related("model").order_by("model__public_id"):
        below = []
        for cost_name, price_name in PAIRS:  # every kind on the rate card
            cost, price = getattr(rate, cost_name), getattr(rate, price_name)
            if cost_name in TIERS:  # "image_costs": a tier no price names is at the plain price ("image_price")
                prices, plain = decimal_tiers(price), getattr(rate, price_name[:-1])
                below += [
                    f"{cost_name[:-6]} {tier}"
                    for tier, amount in decimal_tiers(cost).items()
                    if prices.get(tier, plain) < amount
                ]
            elif cost is not None and price is not None and price < cost:  # empty: at the input rate
                below.append(cost_name[:-5])
        if below:
            rows.append({"model": rate.model.public_id, "below": below, **snapshot(rate)})
    for row in rows if log else []:
        logger.warning(
            "price below cost: %(model)s (%(below)s) input cost %(input_cost)s price %(input_price)s,"
            " output cost %(output_cost)s price %(output_price)s",
            row,
        )
    return rows


def price_at(*, model, when: datetime) -> dict | None:
    """The rate a model had at `when`, from its history (None before its first recorded rate, or if deleted)."""
    change = PriceChange.objects.filter(model=model, changed_at__lte=when).order_by("-changed_at", "-id").first()
    if change is None or change.action == PriceChange.Action.DELETED:
        return None
    return change.new
