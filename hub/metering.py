"""Step 6 of a request: usage is recorded and charged, in batches.

Each finished request hands a UsageEvent to the process's meter; a task
writes what has gathered every HUB_METERING_FLUSH_SECONDS in one transaction
(billing.services.record_usage), which also releases each request's credit
hold: until then the hold stands in for the charge. On shutdown the meter is
drained; a failed write is kept and retried.
"""

import asyncio
import logging
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError
from django.utils import timezone

from accounts.models import ApiKey
from billing.services import UsageEvent, record_usage

from . import db

logger = logging.getLogger(__name__)


def _record(batch: list[UsageEvent], releases: list[str] = ()) -> dict:
    try:
        return record_usage(batch, releases)
    except IntegrityError:
        if len(batch) == 1 and not releases:
            # Its organisation or key is gone: nothing to charge, and retrying
            # would block every record behind it.
            logger.error("dropping usage record %s: %s", batch[0].request_id, "its organisation no longer exists")
            return {}
        if not batch:
            raise
    balances = {}
    for event in batch:
        balances.update(_record([event]))
    if releases:
        balances.update(record_usage([], releases))
    return balances


def _write(batch: list[UsageEvent], releases: list[str] = ()):
    balances = _record(batch, releases)
    now = timezone.now()
    keys = {e.api_key_id for e in batch if e.api_key_id}
    if keys:
        # last_used_at is informational: one write a minute per key is plenty.
        stale = now - timedelta(minutes=1)
        ApiKey.objects.filter(pk__in=keys, last_used_at__lt=stale).update(last_used_at=now)
        ApiKey.objects.filter(pk__in=keys, last_used_at__isnull=True).update(last_used_at=now)
    return balances


class Meter:
    def __init__(self):
        self._events: list[UsageEvent] = []
        self._releases: list[str] = []  # credit holds to give back once the events before them are written
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._flushing = asyncio.Lock()

    def add(self, event: UsageEvent) -> None:
        self._events.append(event)
        self._wake_up()

    def release(self, hold_id: str) -> None:
        self._releases.append(hold_id)
        self._wake_up()

    def _wake_up(self) -> None:
        if self._task is None or self._task.done():
            self._wake = asyncio.Event()
            self._flushing = asyncio.Lock()
            self._task = asyncio.get_running_loop().create_task(self._run())
        self._wake.set()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(settings.HUB_METERING_FLUSH_SECONDS)
            if not await self.flush():
                await asyncio.sleep(1.0)
                self._wake.set()

    async def flush(self) -> bool:
        async with self._flushing:
            batch, self._events = self._events, []
            releases, self._releases = self._releases, []
            if not batch and not releases:
                return True
            try:
                balances = await db.write(_write, batch, releases)
            except Exception:
                logger.exception("writing %d usage records failed; keeping them to retry", len(batch))
                self._events[:0] = batch
                self._releases[:0] = releases
                return False
            from .credit import remember

            remember(balances)
            return True

    async def drain(self) -> None:
        """Write everything gathered so far (shutdown, tests)."""
        for _ in range(5):
            if await self.flush() and not self._events and not self._releases:
                return
            await asyncio.sleep(0.2)


meter = Meter()
