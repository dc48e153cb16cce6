"""Step 2 of a request: may this organisation spend — reserve, then settle.

Before the upstream call the request's worst-case price is held against the
organisation's credit (balance − holds) by one conditional UPDATE in the
database, so concurrent requests, on any number of processes, never reserve
more credit than there is. When the request ends its usage record charges the
real price and releases the hold in the same transaction (hub/metering.py).

Worst case: the prompt counted as UTF-8 bytes / 2 tokens + 10 per message +
1,500 per image (an over-estimate for every script we know), plus the whole
output cap (`max_tokens`, else the model's, else HUB_DEFAULT_OUTPUT_HOLD), at
the highest price among the model and its fallbacks. An organisation can
therefore overspend only if a provider counts more prompt tokens than that.
"""

import json
import math
import time
from decimal import Decimal

from django.conf import settings

from billing.services import available_of, hold_place, token_amount

from . import catalogue, db
from .errors import InsufficientQuota

_available: dict[int, tuple[float, Decimal]] = {}


def prompt_tokens_bound(body: dict) -> int:
    messages = body.get("messages") or []
    images = 0
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            images += sum(1 for part in content if isinstance(part, dict) and part.get("type") == "image_url")
    text = json.dumps(messages, ensure_ascii=False) + json.dumps(body.get("tools") or [], ensure_ascii=False)
    # Images are counted by their fixed cost, not by their (base64) bytes.
    image_bytes = sum(len(json.dumps(part, ensure_ascii=False).encode()) for message in messages
                      if isinstance(message, dict) and isinstance(message.get("content"), list)
                      for part in message["content"] if isinstance(part, dict) and part.get("type") == "image_url")
    return math.ceil((len(text.encode()) - image_bytes) / 2) + 10 * len(messages) + 1500 * images


def output_tokens_bound(body: dict, model: catalogue.Model) -> int:
    asked = body.get("max_completion_tokens") or body.get("max_tokens")
    caps = [r.max_output_tokens for r in model.routes if r.max_output_tokens]
    cap = min(caps) if caps else None
    if asked:
        return min(asked, cap) if cap else asked
    return cap or settings.HUB_DEFAULT_OUTPUT_HOLD


def worst_case(body: dict, model: catalogue.Model, snapshot: catalogue.Snapshot) -> Decimal:
    prompt, output = prompt_tokens_bound(body), output_tokens_bound(body, model)
    prices = [(r.input_price, r.output_price) for m in [model, *catalogue.fallbacks_of(model, snapshot)]
              for r in m.routes]
    return max((token_amount(prompt, i) + token_amount(output, o) for i, o in prices), default=Decimal(0))


async def reserve(call, model: catalogue.Model, body: dict) -> bool:
    """Hold the request's worst-case price; False when there is nothing to hold (free, or internal mode)."""
    if settings.HUB_BILLING_MODE != "credits":
        return False
    organization_id = call.key.organization_id
    cached = _available.get(organization_id)
    if cached is None or cached[0] < time.monotonic():
        available = await db.read_shared(("available", organization_id), available_of, organization_id)
        remember({organization_id: available})
    else:
        available = cached[1]
    if available <= 0:
        raise _refusal(available)  # no credit at all: not worth a write
    amount = worst_case(body, model, await catalogue.snapshot())
    if amount <= 0:
        return False
    left = await db.hold(hold_place, organization_id=organization_id, request_id=call.request_id, amount=amount,
                         ttl_seconds=settings.HUB_HOLD_TTL_SECONDS)
    if left is not None:
        remember({organization_id: left})
        raise _refusal(left, amount)
    return True


def _refusal(available: Decimal, needed: Decimal | None = None) -> InsufficientQuota:
    if needed is None:
        return InsufficientQuota(
            "You exceeded your current quota: this organization has no credit left. Top up to continue.")
    return InsufficientQuota(
        f"This request may cost up to {needed.normalize():f} credits (its prompt and its max_tokens), and this "
        f"organization has {max(available, Decimal(0)).normalize():f} available. Lower max_tokens or top up.")


def remember(available: dict[int, Decimal]) -> None:
    expires = time.monotonic() + settings.HUB_BALANCE_CACHE_SECONDS
    for organization_id, value in available.items():
        _available[organization_id] = (expires, value)


def forget(organization_id: int | None = None) -> None:
    if organization_id is None:
        _available.clear()
    else:
        _available.pop(organization_id, None)
