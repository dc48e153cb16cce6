"""Step 2 of a request: may this organisation spend — reserve, then settle.

Before the upstream call a request reserves its worst-case price out of a
*lease*: credit this process holds for the organisation in the database
(billing.services.hold_place, one conditional UPDATE, so leases on any
number of processes never add up to more than there is). A lease is taken
when the current one cannot cover the request: HUB_CREDIT_LEASE at a time (or
as much as is left, down to exactly the request's worst case), so a busy
process touches the database once per lease, not once per request. When a
request ends its worst case returns to the lease and its real price is
charged by its usage record, which takes the same amount out of the lease's
hold in the same transaction (hub/metering.py). A lease that is replaced, too
old, or idle for HUB_CREDIT_LEASE_IDLE_SECONDS is given back once its
requests are settled; a process that dies leaves its leases to expire
(HUB_HOLD_TTL_SECONDS) and a Celery task releases them.

Worst case (chat): the whole body sent upstream but its images and its
sampling fields, counted as UTF-8 bytes / 2 tokens, + 10 per message + 1,500 per
image + ADDED_PROMPT_TOKENS (an over-estimate for every script and tokenizer we
know), plus n times the output cap the request is sent (its `max_tokens`, else
the model's, else HUB_DEFAULT_OUTPUT_HOLD: hub/capabilities.py), at the highest
price among the model and its fallbacks. An organisation can therefore
overspend only if a provider counts more prompt tokens than that, or writes
more than the cap it was sent; it is charged what the provider billed.
Embeddings: the same prompt bound; speech: its characters; images: n at
their tier's price (see _image_worst_case); transcription: the upload's
measured duration, or, for a format that cannot be measured, its size at
HUB_AUDIO_MIN_BYTES_PER_SECOND (and, for models billed by token, ten audio
tokens a second plus HUB_DEFAULT_OUTPUT_HOLD).
"""

import asyncio
import itertools
import json
import math
import time
import uuid
from decimal import Decimal

from django.conf import settings

from accounts import caches
from billing.ratecard import price_usage
from billing.services import hold_place

from . import balances, catalogue, db
from .errors import InsufficientQuota
from .metering import meter

# Fields of a chat body that never reach the model as text: left out of the prompt's count. Anything else is
# counted, known or not (messages, tools, functions, response_format's schema…): a provider bills it as prompt.
_NOT_PROMPT = frozenset(
    {
        "model",
        "messages",
        "stream",
        "stream_options",
        "max_tokens",
        "max_completion_tokens",
        "n",
        "temperature",
        "top_p",
        "presence_penalty",
        "frequency_penalty",
        "seed",
        "top_logprobs",
        "logprobs",
        "user",
    }
)
# What an adapter may add to the prompt itself (anthropic's and bedrock's JSON-mode instruction).
ADDED_PROMPT_TOKENS = 64


def prompt_tokens_bound(body: dict) -> int:
    if "input" in body:  # embeddings: strings, or token ids (one token each)
        value = body["input"]
        items = value if isinstance(value, list) else [value]
        if items and all(isinstance(i, int) for i in items):
            return len(items)
        return sum(len(i) if isinstance(i, list) else math.ceil(len(str(i).encode()) / 2) + 1 for i in items)
    messages = body.get("messages") or []
    # Images are counted by their fixed cost, not by their (base64) bytes, so
    # they are left out of the text before it is measured, in one pass.
    images, text_only = 0, []
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            parts = [p for p in content if not (isinstance(p, dict) and p.get("type") == "image_url")]
            images += len(content) - len(parts)
            message = dict(message, content=parts)
        text_only.append(message)
    sent = {name: value for name, value in body.items() if name not in _NOT_PROMPT}
    sent["messages"] = text_only
    # One serialization of everything sent but the images; a lone surrogate (valid JSON) counts its 3 bytes.
    size = len(json.dumps(sent, ensure_ascii=False).encode("utf-8", "surrogatepass"))
    return math.ceil(size / 2) + 10 * len(messages) + 1500 * images + ADDED_PROMPT_TOKENS


def output_tokens_bound(body: dict, model: catalogue.Model) -> int:
    """n choices of the output cap the request is sent (hub.capabilities.limit_output sets it)."""
    if model.kind != "chat":
        return 0
    cap = body.get("max_completion_tokens") or body.get("max_tokens") or settings.HUB_DEFAULT_OUTPUT_HOLD
    return (body.get("n") or 1) * cap


AUDIO_TOKENS_PER_SECOND = 10  # OpenAI's audio models count 100 ms of audio a token


def worst_case(body: dict, model: catalogue.Model, snapshot: catalogue.Snapshot, plan=None) -> Decimal:
    routes = [r for m in [model, *catalogue.fallbacks_of(model, snapshot)] for r in m.routes]
    if model.kind == "image":
        return max((_image_worst_case(body, r, plan) for r in routes), default=Decimal(0))
    seconds = Decimal(0)
    if model.kind == "audio":  # speech: billed per input character, known exactly
        prompt, output = len(str(body.get("input") or "")), 0
    elif model.kind == "transcription":  # per second: the upload's duration, or a bound from its size
        seconds = body["seconds_bound"]
        # Models billed by token (gpt-4o-transcribe) too: ten audio tokens a second, and a transcript's cap.
        prompt, output = math.ceil(seconds * AUDIO_TOKENS_PER_SECOND), settings.HUB_DEFAULT_OUTPUT_HOLD
    else:
        prompt, output = prompt_tokens_bound(body), output_tokens_bound(body, model)
    return max(
        (
            price_usage(r.rate, prompt_tokens=prompt, completion_tokens=output, seconds=seconds, plan=plan)[1]
            for r in routes
        ),
        default=Decimal(0),
    )


def _image_worst_case(body: dict, route, plan) -> Decimal:
    """n images at their tier's price (the dearest tier while size or quality is "auto"), plus, for
    models that bill tokens, the prompt bound and each image's output-token cap."""
    n = body.get("n") or 1
    prompt = math.ceil(len(str(body.get("prompt") or "").encode()) / 2) + 10 + 1500 * len(body.get("images") or ())
    output = n * (route.max_output_tokens or settings.HUB_IMAGE_OUTPUT_TOKENS_HOLD)
    tier = body.get("tier") or ""
    card = route.rate
    tiers = [tier] if tier else ["", *card.image_costs, *card.image_prices]
    pictured = 1500 * len(body.get("images") or ())
    return max(
        price_usage(
            card,
            prompt_tokens=prompt,
            completion_tokens=output,
            images=n,
            image_tier=t,
            image_input_tokens=pictured,
            plan=plan,
        )[1]
        for t in tiers
    )


class Lease:
    """Credit this process holds for one organisation (a CreditHold row)."""

    def __init__(self, organization_id: int, hold_id: str, size: Decimal):
        self.organization_id, self.hold_id, self.size = organization_id, hold_id, size
        self.in_flight = Decimal(0)  # worst cases of the requests it covers now
        self.spent = Decimal(0)  # real prices of the requests it covered
        self.taken_at = time.monotonic()
        self.retired = False
        self.idle_since: float | None = None

    @property
    def free(self) -> Decimal:
        return self.size - self.in_flight - self.spent

    def admit(self, amount: Decimal) -> None:
        self.in_flight += amount
        self.idle_since = None

    def settle(self, amount: Decimal, price: Decimal) -> None:
        self.in_flight -= amount
        self.spent += price
        if self.in_flight <= 0:
            self.idle_since = time.monotonic()
            if self.retired:
                _give_back(self)
            else:
                asyncio.get_running_loop().call_later(settings.HUB_CREDIT_LEASE_IDLE_SECONDS, _release_if_idle, self)


_leases: dict[int, Lease] = {}
_locks: dict[int, asyncio.Lock] = {}
_process = uuid.uuid4().hex[:12]
_numbers = itertools.count(1)


def _give_back(lease: Lease) -> None:
    meter.release(lease.hold_id)  # after its requests' usage records, in the same write


# uvloop rounds timers to the millisecond and fires them up to ~1 ms early: a
# timer that finds its lease not quite idle long enough waits out the rest.
_TIMER_SLACK = 0.002


def _release_if_idle(lease: Lease) -> None:
    if lease.idle_since is None or lease.in_flight > 0 or _leases.get(lease.organization_id) is not lease:
        return  # busy again (its next settle schedules a new timer), or no longer this process's lease
    left = settings.HUB_CREDIT_LEASE_IDLE_SECONDS - (time.monotonic() - lease.idle_since)
    if left > _TIMER_SLACK:
        asyncio.get_running_loop().call_later(left, _release_if_idle, lease)
        return
    del _leases[lease.organization_id]
    _give_back(lease)


def _retire(lease: Lease | None) -> None:
    if lease is not None and not lease.retired:
        lease.retired = True
        if lease.in_flight <= 0:
            _give_back(lease)


async def _new_lease(organization_id: int, amount: Decimal) -> Lease:
    lock = _locks.setdefault(organization_id, asyncio.Lock())
    async with lock:
        current = _leases.get(organization_id)
        if current is not None and not _stale(current) and current.free >= amount:
            return current  # another request renewed it meanwhile
        size = max(amount, settings.HUB_CREDIT_LEASE)
        for _ in range(3):
            hold_id = f"lease:{_process}:{next(_numbers)}"
            left = await db.hold(
                hold_place,
                organization_id=organization_id,
                request_id=hold_id,
                amount=size,
                ttl_seconds=settings.HUB_HOLD_TTL_SECONDS,
            )
            if left is None:
                break
            balances.remember({organization_id: left})
            if size <= amount or left < amount:
                raise _refusal(left, amount)
            size = max(amount, left / 2)  # little credit left: a smaller lease, leaving some for others
        else:
            raise _refusal(left, amount)
        lease = Lease(organization_id, hold_id, size)
        _retire(current)
        _leases[organization_id] = lease
        return lease


def _stale(lease: Lease) -> bool:
    # Renewed well before its hold could expire under it.
    return time.monotonic() - lease.taken_at > settings.HUB_HOLD_TTL_SECONDS / 2


async def reserve(call, model: catalogue.Model, body: dict) -> None:
    """Reserve the request's worst-case price (sets call.lease and call.reserved), or refuse with 402."""
    if (call.key.billing_mode or settings.HUB_BILLING_MODE) != "credits":
        return  # postpaid and internal organisations are never refused for credit
    organization_id = call.key.organization_id
    amount = worst_case(body, model, await catalogue.snapshot(), call.key.plan)
    if amount <= 0:
        return  # free: nothing to reserve
    lease = _leases.get(organization_id)
    if lease is None or lease.free < amount or _stale(lease):
        known = balances.known(organization_id)
        if known is not None and known < amount:
            raise _refusal(known, amount)  # known to be short: not worth a write
        lease = await _new_lease(organization_id, amount)
    lease.admit(amount)
    call.lease, call.reserved = lease, amount


def settle(call, price: Decimal) -> None:
    """The request is over: its worst case returns to its lease, its real price is spent."""
    if call.lease is not None:
        call.lease.settle(call.reserved, price)


def reset() -> None:
    """Forget every lease and cached balance (tests; the database keeps its holds)."""
    _leases.clear()
    _locks.clear()
    balances.forget()


caches.register(reset, lambda: _leases or _locks)


def release_all() -> None:
    """Give back every lease not in use now (shutdown, tests)."""
    for organization_id, lease in list(_leases.items()):
        if lease.in_flight <= 0:
            del _leases[organization_id]
            _give_back(lease)


def _refusal(available: Decimal, needed: Decimal | None = None) -> InsufficientQuota:
    if needed is None:
        return InsufficientQuota(
            "You exceeded your current quota: this organization has no credit left. Top up to continue."
        )
    return InsufficientQuota(
        f"This request may cost up to {needed.normalize():f} credits (its prompt and n × its max_tokens), and this "
        f"organization has {max(available, Decimal(0)).normalize():f} available. Lower max_tokens or top up."
    )
