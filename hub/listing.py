"""GET /v1/models: the models a key may use (the gateway's own check, hub.policy.may_use), each with its
kind, context window and prices after the organisation's price plan, as OpenRouter's models list does.

OpenAI's fields come first ({"id", "object", "created", "owned_by"}); the SDK keeps the others as extra
attributes. Prices are decimal strings per unit (a token; a character for speech models' input; an image;
a second of audio), from the same function that prices usage, so the list says what a request will cost.
"""

from datetime import UTC
from decimal import Decimal

from billing.ratecard import RateCard, price_usage

from . import catalogue
from .auth import KeyInfo
from .errors import ModelNotFound
from .policy import may_use

MILLION = 10**6


def _amount(value: Decimal) -> str:
    return format(value.normalize(), "f") if value else "0"


def prices(rates: RateCard, kind: str, plan) -> dict[str, Decimal | dict[str, Decimal]]:
    """A model's prices after `plan` (None: list prices), exact: tokens per million (a speech model's input
    per million characters), an image per image (and by tier), audio per second. Only the kinds the
    model is priced by. /v1/models and the catalogue pages (hub/catalogue_pages.py) both read them here."""

    def price(**usage) -> Decimal:
        return price_usage(
            rates,
            prompt_tokens=usage.pop("prompt_tokens", 0),
            completion_tokens=usage.pop("completion_tokens", 0),
            plan=plan,
            **usage,
        )[1]

    out: dict[str, Decimal | dict[str, Decimal]] = {
        "prompt": price(prompt_tokens=MILLION),
        "completion": price(completion_tokens=MILLION),
    }
    if rates.cached_input_price is not None or rates.cached_input_cost is not None:
        out["input_cache_read"] = price(prompt_tokens=MILLION, cached_tokens=MILLION)
    if rates.image_input_price is not None or rates.image_input_cost is not None:
        out["image_input"] = price(prompt_tokens=MILLION, image_input_tokens=MILLION)
    tiers = sorted(set(rates.image_prices) | set(rates.image_costs))
    if kind == "image" or rates.image_price or rates.image_cost or tiers:
        out["image"] = price(images=1)
    if tiers:
        out["image_tiers"] = {tier: price(images=1, image_tier=tier) for tier in tiers}
    if kind == "transcription" or rates.audio_second_price or rates.audio_second_cost:
        out["audio_second"] = price(seconds=Decimal(1))
    return out


PER_MILLION = ("prompt", "completion", "input_cache_read", "image_input")


def _pricing(rates: RateCard, kind: str, plan) -> dict:
    """prices(), per unit (a token, not a million) as decimal strings."""
    pricing: dict[str, str | dict[str, str]] = {}
    for name, value in prices(rates, kind, plan).items():
        if isinstance(value, dict):
            pricing[name] = {tier: _amount(amount) for tier, amount in value.items()}
        else:
            pricing[name] = _amount(value / MILLION if name in PER_MILLION else value)
    return pricing


def describe(model: catalogue.Model, name: str, key: KeyInfo) -> dict:
    created = model.created_at.replace(tzinfo=model.created_at.tzinfo or UTC)
    entry = {
        "id": name,
        "object": "model",
        "created": int(created.timestamp()),
        "owned_by": model.owned_by,
        "kind": model.kind,
        "context_length": model.context_window,
        "max_output_tokens": model.max_output_tokens,
    }
    if name != model.public_id:
        entry["alias_of"] = model.public_id
    if model.routes:  # every route of a model carries the model's one rate
        entry["pricing"] = _pricing(model.routes[0].rate, model.kind, key.plan)
    return entry


def models_of(snapshot: catalogue.Snapshot, key: KeyInfo) -> list[dict]:
    data = []
    for model in snapshot.listed:
        if may_use(key.policy, model):
            data.append(describe(model, model.public_id, key))
            if model.alias:
                data.append(describe(model, model.alias, key))
    return data


def model_of(snapshot: catalogue.Snapshot, key: KeyInfo, name: str) -> dict:
    model = snapshot.models.get(name)
    if model is None or not may_use(key.policy, model, name):
        raise ModelNotFound(f"The model `{name}` does not exist or you do not have access to it.", param="model")
    return describe(model, name, key)
