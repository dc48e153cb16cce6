"""Step 3b of a request: the order to try a model's routes in, and trying them.

Failover happens only before the answer starts: a retryable failure (connection,
timeout, 429, 5xx, overloaded, a rejected credential) moves on to the next
route, then to the model's fallbacks; a non-retryable one (bad request, context
too long, content policy) is answered at once. Attempts and time are bounded by
HUB_ROUTING_MAX_ATTEMPTS and HUB_ROUTING_MAX_SECONDS.
"""

import asyncio
import random
import time
from dataclasses import dataclass

from django.conf import settings

from providers.adapters import UpstreamError, get_adapter

from . import capabilities, catalogue, route_health
from .errors import HubError, ServiceUnavailable


def _weighted_order(routes: list) -> list:
    # Weighted random order without replacement (Efraimidis-Spirakis): each
    # route draws u^(1/w); the largest draws go first.
    return sorted(routes, key=lambda r: random.random() ** (1.0 / max(r.weight, 1)), reverse=True)


async def order(model: catalogue.Model, store) -> list:
    """The model's routes that may be tried now, best first by its strategy."""
    routes = list(model.routes)
    ids = [r.credential_id for r in routes if r.credential_id]
    states = await store.states(ids) if ids else {}
    now = time.time()
    routes = [r for r in routes if not (r.credential_id and states[r.credential_id].cooling(now))]
    shuffled = _weighted_order(routes)
    strategy = model.strategy
    if strategy == "priority":
        return sorted(shuffled, key=lambda r: r.priority)
    if strategy == "least_busy":
        counts = await store.inflight_counts([r.credential_id for r in routes if r.credential_id])
        return sorted(shuffled, key=lambda r: counts.get(r.credential_id, 0))
    if strategy == "lowest_latency":
        return sorted(shuffled, key=lambda r: states.get(r.credential_id, route_health.Health()).latency_ms)
    return shuffled


@dataclass
class Served:
    """The route that answered, what it answered, and the slot it holds until the answer ends."""

    route: catalogue.Route
    result: object  # ChatResult, or a ChatStream
    attempts: int
    token: str | None
    started: float

    async def done(self, ok: bool, model: catalogue.Model | None = None) -> None:
        store = route_health.store()
        if self.token is not None:
            await store.release(self.route, self.token)
        if ok and self.route.credential_id:
            keep = model is not None and model.strategy == "lowest_latency"
            await route_health.record_success(self.route, (time.monotonic() - self.started) * 1000, keep)


def _needs_slot(route, model) -> bool:
    return bool(route.credential_id and (route.max_concurrency or route.rpm_limit or model.strategy == "least_busy"))


def chat_operation(body: dict, *, stream: bool, include_usage: bool):
    if stream:
        return lambda adapter, route: adapter.chat_stream(route, body, include_usage)
    return lambda adapter, route: adapter.chat(route, body)


async def serve(model: catalogue.Model, body: dict, *, stream: bool = False, include_usage: bool = False,
                operation=None) -> Served:
    """Try the model's routes, then its fallbacks', until one starts an answer.

    `operation(adapter, route)` is the call to make (a chat completion by default).
    """
    operation = operation or chat_operation(body, stream=stream, include_usage=include_usage)
    store = route_health.store()
    snap = await catalogue.snapshot()
    deadline = time.monotonic() + settings.HUB_ROUTING_MAX_SECONDS
    attempts, last_error = 0, None
    for candidate in [model, *catalogue.fallbacks_of(model, snap)]:
        if candidate is not model:
            try:
                capabilities.check(candidate, body, candidate.public_id)
            except HubError:
                continue  # a fallback that cannot take this request is no fallback
        for route in await order(candidate, store):
            if attempts >= settings.HUB_ROUTING_MAX_ATTEMPTS or time.monotonic() > deadline:
                break
            token = route_health.new_token() if _needs_slot(route, candidate) else None
            if token is not None and not await store.acquire(route, token):
                last_error = last_error or ServiceUnavailable(
                    f"Every route of `{model.public_id}` is at its concurrency or rate limit.", code="routes_busy")
                continue
            attempts += 1
            started = time.monotonic()
            try:
                result = await operation(get_adapter(route.provider_kind), route)
            except UpstreamError as error:
                if token is not None:
                    await store.release(route, token)
                if not error.retryable:
                    raise
                if route.credential_id:
                    await route_health.record_failure(route, error)
                last_error = error
                continue
            except BaseException:
                if token is not None:
                    await asyncio.shield(store.release(route, token))
                raise
            return Served(route=route, result=result, attempts=attempts, token=token, started=started)
    if last_error is None:
        last_error = ServiceUnavailable(
            f"No route of `{model.public_id}` is available now (all are cooling down); try again shortly.",
            code="no_route_available", headers={"retry-after": "5"})
    raise last_error
