"""Step 3b of a request: the order to try a model's routes in, and trying them.

Failover happens only before the answer starts: a retryable failure (connection,
timeout, 429, 5xx, overloaded, a rejected credential) moves on to the next
route, then to the model's fallbacks; a non-retryable one (bad request, context
too long, content policy) is answered at once. The model and each of its
fallbacks get up to HUB_ROUTING_MAX_ATTEMPTS tries each, so three failing routes
do not use up the fallback's turn; HUB_ROUTING_MAX_SECONDS bounds the whole.

When no route can be tried the refusal says why and when to come back: 429
when every route is out for its provider's rate limit, 503 for an outage or
for caps, with a retry-after of the time until the soonest route returns.
"""

import asyncio
import math
import random
import time
from dataclasses import dataclass, field

from django.conf import settings

from providers.adapters import UpstreamError, get_adapter

from . import capabilities, catalogue, metrics, route_health
from .errors import HubError, NoRouteAvailable, RoutesBusy, RoutesRateLimited


def _weighted_order(routes: list) -> list:
    # Weighted random order without replacement (Efraimidis-Spirakis): each
    # route draws u^(1/w); the largest draws go first. Load spreading, not secrecy: random will do.
    return sorted(routes, key=lambda r: random.random() ** (1.0 / max(r.weight, 1)), reverse=True)  # noqa: S311


async def order(model: catalogue.Model, store, seen: dict | None = None) -> list:
    """The model's routes that may be tried now, best first by its strategy.

    What was read of their credentials' health is added to `seen`.
    """
    routes = list(model.routes)
    ids = [r.credential_id for r in routes if r.credential_id]
    states = await store.states(ids) if ids else {}
    if seen is not None:
        seen.update(states)
    now = time.time()
    routes = [r for r in routes if not (r.credential_id and states[r.credential_id].out(now))]
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
    started: float  # when the attempt that answered started
    waited: float = 0.0  # seconds the failed attempts before it took
    answered: float = field(default_factory=time.monotonic)  # when its answer (a stream's start) came

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


async def serve(
    model: catalogue.Model, body: dict, *, stream: bool = False, include_usage: bool = False, operation=None
) -> Served:
    """Try the model's routes, then its fallbacks', until one starts an answer.

    `operation(adapter, route)` is the call to make (a chat completion by default).
    """
    operation = operation or chat_operation(body, stream=stream, include_usage=include_usage)
    store = route_health.store()
    snap = await catalogue.snapshot()
    deadline = time.monotonic() + settings.HUB_ROUTING_MAX_SECONDS
    seen: dict[int, route_health.Health] = {}
    attempts, last_error, busy, waited = 0, None, False, 0.0
    for candidate in [model, *catalogue.fallbacks_of(model, snap)]:
        if candidate is not model:
            try:
                capabilities.check(candidate, body, candidate.public_id)
            except HubError:
                continue  # a fallback that cannot take this request is no fallback
        tries = 0
        for route in await order(candidate, store, seen):
            if tries >= settings.HUB_ROUTING_MAX_ATTEMPTS or time.monotonic() > deadline:
                break
            token = route_health.new_token() if _needs_slot(route, candidate) else None
            if token is not None and not await store.acquire(route, token):
                busy = True
                continue
            half_open = route.credential_id and seen[route.credential_id].half_open(time.time())
            if half_open and not await store.claim(route.credential_id, time.time()):
                if token is not None:
                    await store.release(route, token)
                continue  # another request is its probe
            if attempts:
                metrics.FAILOVERS.labels(route.provider_name).inc()
            attempts, tries = attempts + 1, tries + 1
            started = time.monotonic()
            try:
                result = await operation(get_adapter(route.provider_kind), route)
            except UpstreamError as error:
                waited += time.monotonic() - started
                error.route = route  # failing, it is the request's provider: its record and metrics say so
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
            return Served(route=route, result=result, attempts=attempts, token=token, started=started, waited=waited)
    raise last_error or refusal(model, seen, busy)


def refusal(model: catalogue.Model, seen: dict, busy: bool) -> HubError:
    """Why no route was tried, and when to come back (the soonest return, whole seconds, at least 1)."""
    now = time.time()
    out = [h for h in seen.values() if h.out(now)]
    retry = max(1, math.ceil(min(h.back_at for h in out) - now)) if out else 1
    headers = {"retry-after": str(retry)}
    if busy:
        # A slot frees as soon as any request ends: the caps are worth a retry within a second.
        return RoutesBusy(
            f"Every route of `{model.public_id}` is at its concurrency or rate limit; try again shortly.",
            headers={"retry-after": "1"},
        )
    if out and all(h.rate_limited for h in out):
        return RoutesRateLimited(
            f"Every route of `{model.public_id}` is rate limited by its provider; try again in {retry} s.",
            headers=headers,
        )
    return NoRouteAvailable(
        f"No route of `{model.public_id}` is available now (all are cooling down); try again in {retry} s.",
        headers=headers,
    )
