"""The cooldown rule as pure functions on one credential's record (`Health`): what a failure, a probe or a
success makes of it. hub/route_health.py keeps the records (in this process or in Redis) and applies these;
its Lua scripts run the same rule inside Redis.
"""

import json
from dataclasses import dataclass, replace

from django.conf import settings

from providers.adapters.base import retry_after_seconds
from providers.redaction import scrub

HARD_FAILURES = {"upstream_auth_failed", "upstream_quota_exhausted", "no_credential"}
HARD_COOLDOWN_SECONDS = 60.0
EWMA = 0.2  # weight of the newest latency in the moving average


@dataclass
class Health:
    failures: int = 0  # retryable failures in a row
    level: int = 0  # cooldowns in a row, for the backoff; > 0 once cooled down: the next try is a probe
    cooldown_until: float = 0.0  # epoch seconds
    reason: str = ""
    since: float = 0.0  # first failure of the current run, epoch seconds
    latency_ms: float = 0.0  # moving average of successful requests
    rate_limited: bool = False  # the cooldown is the provider's rate limit (a 429), not an outage
    probe_until: float = 0.0  # a request is probing it (half-open) until then: the others leave it be

    def cooling(self, now: float) -> bool:
        return self.cooldown_until > now

    def half_open(self, now: float) -> bool:
        """Back from a cooldown, not yet proven: the next try is the probe, and only one request makes it."""
        return bool(self.level) and not self.cooling(now)

    @property
    def back_at(self) -> float:
        return max(self.cooldown_until, self.probe_until)

    def out(self, now: float) -> bool:
        """Not to be tried now: cooling down, or another request is probing it."""
        return self.back_at > now

    @property
    def clean(self) -> bool:
        return not (self.failures or self.level or self.cooldown_until)

    def settled(self, now: float) -> bool:
        """Whether another process's failure cannot change what routing does with it soon: clean, or still out."""
        return self.clean or self.cooling(now)


_FIELDS = set(Health.__dataclass_fields__)


def decode(raw) -> Health:
    # Fields a newer release added are dropped, so a rolling deploy reads both shapes.
    return Health(**{k: v for k, v in json.loads(raw).items() if k in _FIELDS}) if raw else Health()


def _retry_after(value) -> float:
    """Seconds the provider asked for, from 0 to HUB_COOLDOWN_MAX_SECONDS: the one reading of Retry-After
    (providers/adapters/base.py), which an UpstreamError has already applied."""
    return float(retry_after_seconds(value, settings.HUB_COOLDOWN_MAX_SECONDS) or 0)


@dataclass(frozen=True)
class Failure:
    """What the cooldown rule needs of an upstream error, the same for both stores."""

    hard: bool
    retry_after: float
    rate_limited: bool
    reason: str

    @classmethod
    def of(cls, error) -> "Failure":
        return cls(
            hard=getattr(error, "code", None) in HARD_FAILURES,
            retry_after=_retry_after(getattr(error, "retry_after", None)),
            rate_limited=getattr(error, "status", None) == 429,
            reason=scrub(getattr(error, "message", str(error)))[:300],
        )


def after_failure(health: Health, failure: Failure, now: float) -> Health:
    """The record after one more failure (the Redis store runs the same rule in _FAIL)."""
    h = Health(
        failures=health.failures + 1,
        level=health.level,
        cooldown_until=health.cooldown_until,
        reason=failure.reason,
        since=health.since or now,
        latency_ms=health.latency_ms,
        rate_limited=health.rate_limited,
    )
    duration = 0.0
    if health.cooling(now):
        # A request that was in flight when the credential went out: its failure is not news.
        h.failures = health.failures
    elif failure.hard or health.level or h.failures >= settings.HUB_COOLDOWN_AFTER_FAILURES:
        # A failed probe (level > 0: the first try after a cooldown) goes straight back out, for longer.
        h.level += 1
        base = HARD_COOLDOWN_SECONDS if failure.hard else settings.HUB_COOLDOWN_SECONDS
        duration = min(base * 2 ** (h.level - 1), settings.HUB_COOLDOWN_MAX_SECONDS)
        h.failures = 0
    duration = max(duration, failure.retry_after)
    if duration and now + duration > h.cooldown_until:
        h.cooldown_until, h.rate_limited = now + duration, failure.rate_limited
    return h


def claim_probe(health: Health, now: float) -> Health | None:
    """The record with this request's probe claimed, None if it may not try (the Redis store runs _CLAIM)."""
    if health.cooling(now) or (health.level and health.probe_until > now):
        return None
    if health.level:
        health = replace(health, probe_until=now + settings.HUB_UPSTREAM_CONNECT_TIMEOUT)
    return health


def after_success(health: Health, latency_ms: float) -> Health:
    latency = latency_ms if not health.latency_ms else (1 - EWMA) * health.latency_ms + EWMA * latency_ms
    return Health(latency_ms=latency)
