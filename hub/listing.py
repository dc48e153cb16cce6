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


def _pricing(rates: RateCard, kind: str, plan) -> dict:
    def price(**usage) -> Decimal:
        return price_usage(
            rates,
            prompt_tokens=usage.pop("prompt_tokens", 0),
            completion_tokens=usage.pop("completion_tokens", 0),
            plan=plan,
            **usage,
        )[1]

    pricing: dict[str, str | dict[str, str]] = {
        "prompt": _amount(price(prompt_tokens=MILLION) / MILLION),
        "completion": _amount(price(completion_tokens=MILLION) / MILLION),
    }
    if rates.cached_input_price is not None or rates.cached_input_cost is not None:
        pricing["input_cache_read"] = _amount(price(prompt_tokens=MILLION, cached_tokens=MILLION) / MILLION)
    if rates.image_input_price is not None or rates.image_input_cost is not None:
        pricing["image_input"] = _amount(price(prompt_tokens=MILLION, image_input_tokens=MILLION) / MILLION)
    tiers = sorted(set(rates.image_prices) | set(rates.image_costs))
    if kind == "image" or rates.image_price or rates.image_cost or tiers:
        pricing["image"] = _amount(price(images=1))
    if tiers:
        pricing["image_tiers"] = {tier: _amount(price(images=1, image_tier=tier)) for tier in tiers}
    if kind == "transcription" or rates.audio_second_price or rates.audio_second_cost:
        pricing["audio_second"] = _amount(price(seconds=Decimal(1)))
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
