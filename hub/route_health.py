"""What every hub process must agree on about a credential: cooldowns, requests in
flight, requests this minute, latency. In Redis when REDIS_URL is set (shared by
all workers and hosts), in this process otherwise.

Cooldown rule: an auth or quota failure takes a credential out at once (60 s,
doubling with each repeat, at most HUB_COOLDOWN_MAX_SECONDS); other retryable
failures do after HUB_COOLDOWN_AFTER_FAILURES in a row (5 s, doubling); a
retry-after from the provider is always honoured. When the cooldown ends the
credential is tried again (a real request or the health check is the probe):
a success clears it, a failure sends it back out for longer.
"""

import asyncio
import json
import time
import uuid
from dataclasses import asdict, dataclass

from django.conf import settings

from providers.redaction import scrub

from . import shared_state


HARD_FAILURES = {"upstream_auth_failed", "upstream_quota_exhausted", "no_credential"}
EWMA = 0.2  # weight of the newest latency in the moving average


@dataclass
class Health:
    failures: int = 0  # retryable failures in a row
    level: int = 0  # cooldowns in a row, for the backoff
    cooldown_until: float = 0.0  # epoch seconds
    reason: str = ""
    since: float = 0.0  # first failure of the current run, epoch seconds
    latency_ms: float = 0.0  # moving average of successful requests

    def cooling(self, now: float) -> bool:
        return self.cooldown_until > now

    @property
    def clean(self) -> bool:
        return not (self.failures or self.level or self.cooldown_until)


def _retry_after(value) -> float:
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        return 0.0


def after_failure(health: Health, error, now: float) -> Health:
    hard = getattr(error, "code", None) in HARD_FAILURES
    retry_after = _retry_after(getattr(error, "retry_after", None))
    failures = health.failures + 1
    h = Health(failures=failures, level=health.level, cooldown_until=health.cooldown_until,
               reason=scrub(getattr(error, "message", str(error)))[:300], since=health.since or now,
               latency_ms=health.latency_ms)
    duration = 0.0
    if hard or failures >= settings.HUB_COOLDOWN_AFTER_FAILURES:
        h.level += 1
        base = 60.0 if hard else 5.0
        duration = min(base * 2 ** (h.level - 1), settings.HUB_COOLDOWN_MAX_SECONDS)
        h.failures = 0
    duration = max(duration, retry_after)
    if duration:
        h.cooldown_until = max(h.cooldown_until, now + duration)
    return h


def after_success(health: Health, latency_ms: float) -> Health:
    latency = latency_ms if not health.latency_ms else (1 - EWMA) * health.latency_ms + EWMA * latency_ms
    return Health(latency_ms=latency)


class LocalStore:
    """One process's view: right for a single worker, or when no Redis is configured."""

    def __init__(self):
        self.health: dict[int, Health] = {}
        self.inflight: dict[int, int] = {}
        self.minute: dict[int, tuple[int, int]] = {}

    async def states(self, ids) -> dict[int, Health]:
        return {i: self.health.get(i) or Health() for i in ids}

    async def inflight_counts(self, ids) -> dict[int, int]:
        return {i: self.inflight.get(i, 0) for i in ids}

    async def acquire(self, route, token: str) -> bool:
        cid = route.credential_id
        if route.max_concurrency and self.inflight.get(cid, 0) >= route.max_concurrency:
            return False
        if route.rpm_limit:
            minute = int(time.time() // 60)
            start, count = self.minute.get(cid, (minute, 0))
            count = count if start == minute else 0
            if count >= route.rpm_limit:
                return False
            self.minute[cid] = (minute, count + 1)
        self.inflight[cid] = self.inflight.get(cid, 0) + 1
        return True

    async def release(self, route, token: str) -> None:
        cid = route.credential_id
        self.inflight[cid] = max(0, self.inflight.get(cid, 0) - 1)

    async def save(self, cid: int, health: Health) -> None:
        self.health[cid] = health

    def read(self, cid: int) -> Health:
        return self.health.get(cid) or Health()

    def write(self, cid: int, health: Health) -> None:
        self.health[cid] = health


# Concurrency slots are members of a sorted set scored by their expiry, so a
# crashed process's slots lapse instead of blocking the credential forever.
_ACQUIRE = """
local slots, minute = KEYS[1], KEYS[2]
local now, ttl, cap, rpm, token = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
redis.call('ZREMRANGEBYSCORE', slots, '-inf', now)
if cap > 0 and redis.call('ZCARD', slots) >= cap then return 0 end
if rpm > 0 then
  local used = redis.call('INCR', minute)
  redis.call('EXPIRE', minute, 120)
  if used > rpm then redis.call('DECR', minute) return 0 end
end
redis.call('ZADD', slots, now + ttl, token)
redis.call('EXPIRE', slots, ttl)
return 1
"""


class RedisStore:
    """Shared by every process; each keeps a copy of the health it read for a second."""

    def __init__(self, url: str):
        import redis

        self.url = url
        self._sync = redis.Redis.from_url(url, decode_responses=True)
        self._cache: dict[int, tuple[float, Health]] = {}
        self._reading: dict[tuple, asyncio.Future] = {}

    def client(self):
        return shared_state.redis_client(self.url, decode_responses=True)

    @staticmethod
    def _key(cid: int) -> str:
        return f"hub:health:{cid}"

    @staticmethod
    def _decode(raw) -> Health:
        return Health(**json.loads(raw)) if raw else Health()

    async def states(self, ids) -> dict[int, Health]:
        now = time.monotonic()
        missing = tuple(sorted(i for i in ids if i not in self._cache or self._cache[i][0] < now))
        if missing:
            await shared_state.coalesced(self._reading, missing, lambda: self._read(missing))
        return {i: self._cache[i][1] if i in self._cache else Health() for i in ids}

    async def _read(self, ids: tuple) -> None:
        values = await self.client().mget([self._key(i) for i in ids])
        expires = time.monotonic() + settings.HUB_ROUTE_STATE_CACHE_SECONDS
        for cid, raw in zip(ids, values):
            self._cache[cid] = (expires, self._decode(raw))

    async def inflight_counts(self, ids) -> dict[int, int]:
        client, now = self.client(), time.time()
        async with client.pipeline(transaction=False) as pipe:
            for cid in ids:
                pipe.zcount(f"hub:slots:{cid}", now, "+inf")
            counts = await pipe.execute()
        return dict(zip(ids, counts))

    async def acquire(self, route, token: str) -> bool:
        cid, now = route.credential_id, time.time()
        keys = [f"hub:slots:{cid}", f"hub:rpm:{cid}:{int(now // 60)}"]
        args = [now, settings.HUB_UPSTREAM_READ_TIMEOUT + 60, route.max_concurrency or 0, route.rpm_limit or 0, token]
        return bool(await self.client().eval(_ACQUIRE, 2, *keys, *args))

    async def release(self, route, token: str) -> None:
        await self.client().zrem(f"hub:slots:{route.credential_id}", token)

    async def save(self, cid: int, health: Health) -> None:
        self._cache[cid] = (time.monotonic() + settings.HUB_ROUTE_STATE_CACHE_SECONDS, health)
        await self.client().set(self._key(cid), json.dumps(asdict(health)), ex=86400)

    def read(self, cid: int) -> Health:
        return self._decode(self._sync.get(self._key(cid)))

    def write(self, cid: int, health: Health) -> None:
        self._cache.pop(cid, None)
        self._sync.set(self._key(cid), json.dumps(asdict(health)), ex=86400)


class FailOpen(shared_state.FailOpen):
    """Credentials count as healthy and caps as free while Redis is out."""

    what = "routing state"
    consequence = "routing without it"

    async def states(self, ids):
        return await self._guard(self.inner.states(ids), {i: Health() for i in ids})

    async def inflight_counts(self, ids):
        return await self._guard(self.inner.inflight_counts(ids), {i: 0 for i in ids})

    async def acquire(self, route, token):
        return await self._guard(self.inner.acquire(route, token), True)

    async def release(self, route, token):
        return await self._guard(self.inner.release(route, token), None)

    async def save(self, cid, health):
        return await self._guard(self.inner.save(cid, health), None)


_store = None


def store():
    global _store
    if _store is None:
        _store = FailOpen(RedisStore(settings.REDIS_URL)) if settings.REDIS_URL else LocalStore()
    return _store


def new_token() -> str:
    return uuid.uuid4().hex


async def record_failure(route, error) -> Health:
    s = store()
    health = after_failure((await s.states([route.credential_id]))[route.credential_id], error, time.time())
    await s.save(route.credential_id, health)
    return health


async def record_success(route, latency_ms: float, keep_latency: bool) -> None:
    """Clear a credential's failures; keep its latency average if a strategy reads it."""
    s = store()
    health = (await s.states([route.credential_id]))[route.credential_id]
    if health.clean and not keep_latency:
        return  # the common case costs nothing
    await s.save(route.credential_id, after_success(health, latency_ms))


def reset() -> None:
    """Forget everything (tests)."""
    global _store
    inner = getattr(_store, "inner", None)
    if isinstance(inner, RedisStore):
        try:
            keys = [k for pattern in ("hub:health:*", "hub:slots:*", "hub:rpm:*")
                    for k in inner._sync.scan_iter(pattern)]
            if keys:
                inner._sync.delete(*keys)
        except Exception:
            pass  # that Redis is gone: nothing to forget
    _store = None
