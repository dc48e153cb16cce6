"""What every hub process must agree on about a credential: cooldowns, requests in
flight, requests this minute, latency. In Redis when REDIS_URL is set (shared by
all workers and hosts), in this process otherwise.

Cooldown rule: an auth or quota failure takes a credential out at once (60 s,
doubling with each repeat, at most HUB_COOLDOWN_MAX_SECONDS); other retryable
failures do after HUB_COOLDOWN_AFTER_FAILURES in a row (HUB_COOLDOWN_SECONDS,
doubling); a retry-after from the provider is always honoured. When the
cooldown ends the credential is half-open: the next request (or the health
check) is the probe. A success clears the record; a failure sends it straight
back out for twice as long, without three more tenant requests paying for it.

Every change is one atomic step on the shared record (a Lua script in Redis),
so two workers failing at once both count: a process never writes back what it
read. What a process read is cached for HUB_ROUTE_STATE_CACHE_SECONDS only
while it can route on it safely: a clean or cooling credential. One with
failures counted, or whose cooldown just ended, is read afresh before each try,
and of the requests that find it half-open one claims the probe (for up to
HUB_UPSTREAM_CONNECT_TIMEOUT, what a dead host takes to fail): the others pass
it by, so a black-holed provider costs one request its timeout, not every one.
"""

import asyncio
import json
import time
import uuid
from dataclasses import asdict

import redis
from django.conf import settings

from accounts import caches

from . import shared_state
from .route_state import EWMA, HARD_COOLDOWN_SECONDS, Failure, Health, after_failure, after_success, claim_probe, decode


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

    async def fail(self, cid: int, failure: Failure, now: float) -> Health:
        return self.failed(cid, failure, now)

    async def succeed(self, cid: int, latency_ms: float) -> Health:
        return self.succeeded(cid, latency_ms)

    async def claim(self, cid: int, now: float) -> bool:
        claimed = claim_probe(self.read(cid), now)
        if claimed is not None:
            self.health[cid] = claimed
        return claimed is not None

    # One event loop per process: these run to the end without yielding, so they are atomic here.
    def failed(self, cid: int, failure: Failure, now: float) -> Health:
        health = self.health[cid] = after_failure(self.read(cid), failure, now)
        return health

    def succeeded(self, cid: int, latency_ms: float) -> Health:
        health = self.health[cid] = after_success(self.read(cid), latency_ms)
        return health

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


# after_failure, as one step on the shared record: two processes failing at once both count.
_FAIL = """
local raw = redis.call('GET', KEYS[1])
local h = {failures = 0, level = 0, cooldown_until = 0, reason = '', since = 0, latency_ms = 0, rate_limited = false}
if raw then for k, v in pairs(cjson.decode(raw)) do h[k] = v end end
h.probe_until = 0
local now, hard, retry_after, rate_limited = tonumber(ARGV[1]), ARGV[2] == '1', tonumber(ARGV[3]), ARGV[4] == '1'
local threshold, base, hard_base, cap = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
h.reason = ARGV[9]
if h.since == 0 then h.since = now end
local duration = 0
if h.cooldown_until > now then
  -- in flight when the credential went out: not news
elseif hard or h.level > 0 or h.failures + 1 >= threshold then
  h.level = h.level + 1
  if hard then base = hard_base end
  duration = math.min(base * 2 ^ (h.level - 1), cap)
  h.failures = 0
else
  h.failures = h.failures + 1
end
if retry_after > duration then duration = retry_after end
if duration > 0 and now + duration > h.cooldown_until then
  h.cooldown_until = now + duration
  h.rate_limited = rate_limited
end
local out = cjson.encode(h)
redis.call('SET', KEYS[1], out, 'EX', 86400)
return out
"""

# after_success: the record starts again, keeping only the latency average.
_SUCCEED = """
local raw = redis.call('GET', KEYS[1])
local latency, ewma = tonumber(ARGV[1]), tonumber(ARGV[2])
local old = raw and cjson.decode(raw).latency_ms or 0
if old ~= 0 then latency = (1 - ewma) * old + ewma * latency end
local out = cjson.encode({latency_ms = latency})
redis.call('SET', KEYS[1], out, 'EX', 86400)
return out
"""


# claim_probe: of the requests that find a credential half-open, one probes it.
_CLAIM = """
local raw = redis.call('GET', KEYS[1])
if not raw then return 1 end
local h = cjson.decode(raw)
local now, window = tonumber(ARGV[1]), tonumber(ARGV[2])
if (h.cooldown_until or 0) > now then return 0 end
if (h.level or 0) == 0 then return 1 end
if (h.probe_until or 0) > now then return 0 end
h.probe_until = now + window
redis.call('SET', KEYS[1], cjson.encode(h), 'KEEPTTL')
return 1
"""


def _fail_args(failure: Failure, now: float) -> list:
    return [
        now,
        int(failure.hard),
        failure.retry_after,
        int(failure.rate_limited),
        settings.HUB_COOLDOWN_AFTER_FAILURES,
        settings.HUB_COOLDOWN_SECONDS,
        HARD_COOLDOWN_SECONDS,
        settings.HUB_COOLDOWN_MAX_SECONDS,
        failure.reason,
    ]


class RedisStore:
    """Shared by every process. Each keeps what it read for a second, while that is safe to route on (settled)."""

    def __init__(self, url: str):
        self.url = url
        self._sync = redis.Redis.from_url(url, decode_responses=True)
        self._cache: dict[int, tuple[float, Health]] = {}
        self._reading: dict[tuple, asyncio.Future] = {}

    def client(self):
        return shared_state.redis_client(self.url, decode_responses=True)

    @staticmethod
    def _key(cid: int) -> str:
        return f"hub:health:{cid}"

    def _cached(self, cid: int, now: float) -> bool:
        entry = self._cache.get(cid)
        return entry is not None and entry[0] >= time.monotonic() and entry[1].settled(now)

    def _keep(self, cid: int, health: Health) -> Health:
        self._cache[cid] = (time.monotonic() + settings.HUB_ROUTE_STATE_CACHE_SECONDS, health)
        return health

    async def states(self, ids) -> dict[int, Health]:
        now = time.time()
        missing = tuple(sorted(i for i in ids if not self._cached(i, now)))
        if missing:
            await shared_state.coalesced(self._reading, missing, lambda: self._read(missing))
        return {i: self._cache[i][1] if i in self._cache else Health() for i in ids}

    async def _read(self, ids: tuple) -> None:
        values = await self.client().mget([self._key(i) for i in ids])
        for cid, raw in zip(ids, values, strict=True):
            self._keep(cid, decode(raw))

    async def inflight_counts(self, ids) -> dict[int, int]:
        client, now = self.client(), time.time()
        async with client.pipeline(transaction=False) as pipe:
            for cid in ids:
                pipe.zcount(f"hub:slots:{cid}", now, "+inf")
            counts = await pipe.execute()
        return dict(zip(ids, counts, strict=True))

    async def acquire(self, route, token: str) -> bool:
        cid, now = route.credential_id, time.time()
        keys = [f"hub:slots:{cid}", f"hub:rpm:{cid}:{int(now // 60)}"]
        args = [now, settings.HUB_UPSTREAM_READ_TIMEOUT + 60, route.max_concurrency or 0, route.rpm_limit or 0, token]
        return bool(await self.client().eval(_ACQUIRE, 2, *keys, *args))

    async def release(self, route, token: str) -> None:
        await self.client().zrem(f"hub:slots:{route.credential_id}", token)

    async def fail(self, cid: int, failure: Failure, now: float) -> Health:
        return self._keep(cid, decode(await self.client().eval(_FAIL, 1, self._key(cid), *_fail_args(failure, now))))

    async def succeed(self, cid: int, latency_ms: float) -> Health:
        return self._keep(cid, decode(await self.client().eval(_SUCCEED, 1, self._key(cid), latency_ms, EWMA)))

    async def claim(self, cid: int, now: float) -> bool:
        window = settings.HUB_UPSTREAM_CONNECT_TIMEOUT
        claimed = bool(await self.client().eval(_CLAIM, 1, self._key(cid), now, window))
        self._cache.pop(cid, None)  # it changed (or someone else's probe did): read it afresh
        return claimed

    # The same steps for synchronous callers (the health check task, the admin).
    def failed(self, cid: int, failure: Failure, now: float) -> Health:
        return decode(self._sync.eval(_FAIL, 1, self._key(cid), *_fail_args(failure, now)))

    def succeeded(self, cid: int, latency_ms: float) -> Health:
        return decode(self._sync.eval(_SUCCEED, 1, self._key(cid), latency_ms, EWMA))

    def read(self, cid: int) -> Health:
        return decode(self._sync.get(self._key(cid)))

    def write(self, cid: int, health: Health) -> None:
        """Set a record outright (tests, an operator's reset); routing itself only steps it."""
        self._cache.pop(cid, None)
        self._sync.set(self._key(cid), json.dumps(asdict(health)), ex=86400)


class FailOpen(shared_state.FailOpen):
    """Credentials count as healthy and caps as free while Redis is out."""

    what = "routing state"
    consequence = "routing without it"

    async def states(self, ids):
        return await self._guard(self.inner.states(ids), {i: Health() for i in ids})

    async def inflight_counts(self, ids):
        return await self._guard(self.inner.inflight_counts(ids), dict.fromkeys(ids, 0))

    async def acquire(self, route, token):
        return await self._guard(self.inner.acquire(route, token), True)

    async def release(self, route, token):
        return await self._guard(self.inner.release(route, token), None)

    async def fail(self, cid, failure, now):
        return await self._guard(self.inner.fail(cid, failure, now), Health())

    async def succeed(self, cid, latency_ms):
        return await self._guard(self.inner.succeed(cid, latency_ms), Health())

    async def claim(self, cid, now):
        return await self._guard(self.inner.claim(cid, now), True)


_store = None


def store():
    global _store
    if _store is None:
        _store = FailOpen(RedisStore(settings.REDIS_URL)) if settings.REDIS_URL else LocalStore()
    return _store


def new_token() -> str:
    return uuid.uuid4().hex


async def record_failure(route, error) -> Health:
    return await store().fail(route.credential_id, Failure.of(error), time.time())


async def record_success(route, latency_ms: float, keep_latency: bool) -> None:
    """Clear a credential's failures; keep its latency average if a strategy reads it."""
    s = store()
    health = (await s.states([route.credential_id]))[route.credential_id]
    if health.clean and not keep_latency:
        return  # the common case costs nothing
    await s.succeed(route.credential_id, latency_ms)


def reset() -> None:
    """Forget everything (tests)."""
    global _store
    inner = getattr(_store, "inner", None)
    if isinstance(inner, RedisStore):
        try:
            keys = [
                k for pattern in ("hub:health:*", "hub:slots:*", "hub:rpm:*") for k in inner._sync.scan_iter(pattern)
            ]
            if keys:
                inner._sync.delete(*keys)
        except Exception:  # noqa: S110 - that Redis is gone: nothing to forget
            pass
    _store = None


caches.register(reset, lambda: _store)
