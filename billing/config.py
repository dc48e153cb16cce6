"""`hub_config apply`: the whole YAML file, providers and their models (providers/config.py) and the models' rates.

Here, not in providers, because the rates are billing's: code that spans two apps lives in the higher one.
"""

import os
from decimal import Decimal
from typing import Any

from django.db import transaction

from providers.config import ConfigError, apply_model, apply_provider, load_file, to_decimal

from .models import ModelRate

__all__ = ["ConfigError", "apply_config", "apply_rate", "load_file"]

# A rate's amounts and margin, and its tier tables ({tier: amount}), as the model has them (so a new kind too).
RATE_FIELDS = tuple(
    f.name for f in ModelRate._meta.concrete_fields if f.name == "margin" or f.name.endswith(("_cost", "_price"))
)
TIER_FIELDS = tuple(f.name for f in ModelRate._meta.concrete_fields if f.get_internal_type() == "JSONField")


@transaction.atomic
def apply_config(data: dict, environ=os.environ, margin: Decimal | None = None) -> list[str]:
    """Create or update what `data` describes; return a line per change.

    `margin` applies to every rate that gives costs but neither prices nor a margin.
    """
    log = []
    for i, spec in enumerate(data.get("providers") or []):
        log += apply_provider(spec, f"providers[{i}]", environ)
    for i, spec in enumerate(data.get("models") or []):
        model, changes = apply_model(spec, f"models[{i}]")
        log += changes
        if spec.get("rate") is not None:
            log += apply_rate(model, spec["rate"], f"models[{i}]", margin)
    return log


def apply_rate(model, rate_spec: dict, where: str, margin: Decimal | None) -> list[str]:
    """Create or update `model`'s rate as `rate_spec` gives it; a line if it changed."""
    unknown = set(rate_spec) - set(RATE_FIELDS) - set(TIER_FIELDS)
    if unknown:
        raise ConfigError(f"{where}.rate: unknown fields {sorted(unknown)}")
    rate = ModelRate.objects.filter(model=model).first() or ModelRate(model=model)
    values: dict[str, Any] = {
        name: to_decimal(rate_spec[name], f"{where}.rate.{name}")
        for name in RATE_FIELDS
        if rate_spec.get(name) is not None
    }
    for name in TIER_FIELDS:
        tiers = rate_spec.get(name)
        if tiers is not None:
            if not isinstance(tiers, dict):
                raise ConfigError(f"{where}.rate.{name}: a mapping of tier to amount")
            values[name] = {str(t): str(to_decimal(a, f"{where}.rate.{name}.{t}")) for t, a in tiers.items()}
    if margin is not None and not {
        "margin",
        "input_price",
        "output_price",
        "image_price",
        "image_prices",
        "audio_second_price",
    } & set(values):
        values["margin"] = margin
    values.setdefault("margin", None)
    before = {name: getattr(rate, name) for name in RATE_FIELDS + TIER_FIELDS}
    for name, value in values.items():
        setattr(rate, name, value)
    if rate._state.adding or any(getattr(rate, n) != before[n] for n in values):
        rate.save()
        return [f"set rate of {model.public_id}"]
    return []
