"""A model's rate as the gateway carries it, and what usage costs at it.

A RateCard is built once per catalogue snapshot from a ModelRate (its margin,
or HUB_DEFAULT_MARGIN, applied), and every route of the model carries the same
one: pricing a request and sizing its credit hold read nothing else. It
imports no model, so whatever holds a route may hold its card.

Its fields are the ModelRate's price fields, by the same names, in pairs
(`<kind>_cost` / `<kind>_price`): a new kind of price is a field on the model
(and its migration), a pair here, and its line in `price_usage`; the
derivation, the catalogue, the holds and the price history follow the fields.
"""

from dataclasses import dataclass, field, fields
from decimal import Decimal

from django.conf import settings

from .money import quantize

MILLION = Decimal(1_000_000)
ZERO = Decimal(0)


def decimal_tiers(tiers) -> dict[str, Decimal]:
    """Image tiers as stored (JSON: tier -> decimal string) to exact Decimals; never through float."""
    if not tiers:
        return {}
    if not isinstance(tiers, dict):
        raise TypeError("image tiers must be a JSON object")
    out = {}
    for tier, amount in tiers.items():
        if isinstance(amount, float):
            amount = repr(amount)  # a number typed into JSON: its shortest spelling, not its binary value
        out[str(tier)] = Decimal(str(amount))
    return out


@dataclass(frozen=True)
class Plan:
    """An organisation's price plan (a PricePlan), as the gateway carries it."""

    discount: Decimal | None = None
    margin: Decimal | None = None


@dataclass(frozen=True)
class RateCard:
    """Costs and prices per kind: tokens per million (a speech model's input per million characters),
    images per image (by tier, else the plain amount), audio per second. Cached and image input
    empty (None): at the input rate."""

    input_cost: Decimal = ZERO
    input_price: Decimal = ZERO
    cached_input_cost: Decimal | None = None
    cached_input_price: Decimal | None = None
    image_input_cost: Decimal | None = None
    image_input_price: Decimal | None = None
    output_cost: Decimal = ZERO
    output_price: Decimal = ZERO
    image_cost: Decimal = ZERO
    image_price: Decimal = ZERO
    image_costs: dict = field(default_factory=dict, hash=False)  # tier -> Decimal
    image_prices: dict = field(default_factory=dict, hash=False)
    audio_second_cost: Decimal = ZERO
    audio_second_price: Decimal = ZERO

    @classmethod
    def of(cls, rate) -> "RateCard":
        """The card of a ModelRate (None: free). Its margin makes every price; a rate with costs but
        neither prices nor a margin is priced at HUB_DEFAULT_MARGIN over cost."""
        if rate is None:
            return FREE
        values = {name: getattr(rate, name) for name in FIELDS}
        for name in TIERS:
            values[name] = decimal_tiers(values[name])
        if rate.margin is not None:
            values.update(prices_over_cost(values, 1 + rate.margin))
        elif not any(values[price] for _, price in PAIRS):
            values.update(prices_over_cost(values, 1 + settings.HUB_DEFAULT_MARGIN))
        return cls(**values)


FIELDS = tuple(f.name for f in fields(RateCard))
TIERS = tuple(f.name for f in fields(RateCard) if f.default_factory is dict)
# (cost, price) of every kind: "image_costs" pairs with "image_prices" as "input_cost" with "input_price".
PAIRS = tuple((name, name.replace("_cost", "_price")) for name in FIELDS if "_cost" in name)
FREE = RateCard()


def prices_over_cost(costs, markup: Decimal) -> dict:
    """Every price that has a cost, as cost × markup; a tier table's tiers each so (tiers only priced
    are dropped). `costs` is a mapping or anything with the cost fields as attributes (a ModelRate)."""
    get = costs.get if isinstance(costs, dict) else lambda name: getattr(costs, name)
    prices: dict[str, Decimal | dict[str, Decimal]] = {}
    for cost_name, price_name in PAIRS:
        cost = get(cost_name)
        if cost_name in TIERS:
            prices[price_name] = {tier: quantize(amount * markup) for tier, amount in decimal_tiers(cost).items()}
        elif cost is not None:
            prices[price_name] = quantize(cost * markup)
    return prices


def token_amount(tokens: int, per_million: Decimal) -> Decimal:
    return quantize(Decimal(tokens) * per_million / MILLION)


def price_usage(
    card: RateCard,
    *,
    prompt_tokens: int,
    completion_tokens: int,
    cached_tokens: int = 0,
    plan: Plan | None = None,
    images: int = 0,
    image_tier: str = "",
    seconds: Decimal = ZERO,
    image_input_tokens: int = 0,
) -> tuple[Decimal, Decimal]:
    """(cost, price) of some usage at a rate card, under an organisation's price plan.

    Cached input tokens and image input tokens (parts of the prompt) are priced
    at their own rates where the card has them, images at their tier's. A
    plan's margin replaces the card's prices (cost × (1 + margin)); a plan's
    discount takes a share off them. Both apply to the whole, rounded once.
    """
    cached = min(cached_tokens, prompt_tokens)
    pictured = min(image_input_tokens, prompt_tokens - cached)
    fresh = prompt_tokens - cached - pictured
    seconds = Decimal(seconds)

    def amount(which: str) -> Decimal:
        input_rate = getattr(card, f"input_{which}")
        cached_rate = getattr(card, f"cached_input_{which}")
        total = (
            token_amount(fresh, input_rate)
            + token_amount(cached, input_rate if cached_rate is None else cached_rate)
            + token_amount(completion_tokens, getattr(card, f"output_{which}"))
        )
        if pictured:
            image_input_rate = getattr(card, f"image_input_{which}")
            total += token_amount(pictured, input_rate if image_input_rate is None else image_input_rate)
        if images:
            total += image_rate(card, image_tier, which) * images
        if seconds:
            total += quantize(getattr(card, f"audio_second_{which}") * seconds)
        return total

    cost = amount("cost")
    if plan is not None and plan.margin is not None:
        return cost, quantize(cost * (1 + plan.margin))
    price = amount("price")
    if plan is not None and plan.discount:
        price = quantize(price * (1 - plan.discount))
    return cost, price


def image_rate(card: RateCard, tier: str, which: str) -> Decimal:
    """The cost or price of one image of `tier` ("<size>/<quality>"): the most specific tier that
    names it ("<size>/<quality>", then "<size>", then "<quality>"), else the card's per-image amount."""
    tiers = getattr(card, f"image_{which}s")
    size, _, quality = tier.partition("/")
    for name in (tier, size, quality):
        if name and name in tiers:
            return tiers[name]
    return getattr(card, f"image_{which}") or ZERO
