"""Step 6 of a request: usage is recorded and charged, in batches.

Each finished request hands a UsageEvent to the process's meter; a task
writes what has gathered every HUB_METERING_FLUSH_SECONDS in one transaction
(billing.services.record_usage), which also releases each request's credit
hold: until then the hold stands in for the charge. On shutdown the meter is
drained. A write that fails because the database is away is kept and
retried; any other failure is split down to the one record that causes it,
which is set aside in the dead-letter file (HUB_METERING_DEAD_LETTER) while
the rest are written.
"""

import asyncio
import dataclasses
import json
import logging
import time
from collections.abc import Sequence
from datetime import timedelta

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.utils import timezone

from accounts.models import ApiKey
from billing.services import record_usage
from billing.usage import UsageEvent

from . import db, metrics
from .balances import remember

logger = logging.getLogger(__name__)

# The database is away (down, restarting, a dropped connection): every record waits and is written later.
# Any other failure is the batch's own: one of its records cannot be written, and must not hold back the rest.
TRANSIENT = (OperationalError, InterfaceError)


def _record(batch: list[UsageEvent], releases: Sequence[str] = ()) -> dict:
    """record_usage, or, if the batch fails, its halves in turn, until the one record that fails is set aside."""
    try:
        return record_usage(batch, releases)
    except TRANSIENT:
        raise
    except Exception as exc:
        if len(batch) == 1 and not releases:
            _set_aside(batch[0], exc)
            return {}
        if not batch:
            # Holds are the hub's own ids; should giving them back fail, the expiry task gives them back later.
            logger.exception("releasing credit holds %s failed; they lapse after HUB_HOLD_TTL_SECONDS", releases)
            return {}
    half = len(batch) // 2
    balances = _record(batch[:half]) if half else {}
    balances.update(_record(batch[half:]))
    if releases:
        balances.update(_record([], releases))
    return balances


def _set_aside(event: UsageEvent, exc: BaseException) -> None:
    """A record the database refuses: logged and kept in the dead-letter file, for the operator to settle.

    Its credit hold is not kept for it: the lease it ran under is given back as
    usual (released with the lease, or by the expiry task).
    """
    metrics.METER_SET_ASIDE.inc()
    logger.error(
        "usage record %s could not be written and is set aside in %s: %s: %s",
        event.request_id,
        settings.HUB_METERING_DEAD_LETTER,
        type(exc).__name__,
        exc,
    )
    entry = {
        "request_id": event.request_id,
        "failed_at": timezone.now().isoformat(),
        "reason": f"{type(exc).__name__}: {exc}"[:2000],
        "event": dataclasses.asdict(event),
    }
    # ensure_ascii: a NUL or a lone surrogate (what may have failed the write) is escaped, never written raw.
    line = json.dumps(entry, ensure_ascii=True, default=str)
    try:
        with open(settings.HUB_METERING_DEAD_LETTER, "a", encoding="ascii") as dead_letters:
            dead_letters.write(line + "\n")
    except OSError:
        logger.exception("writing to %s failed; the record was: %s", settings.HUB_METERING_DEAD_LETTER, line)


def _write(batch: list[UsageEvent], releases: Sequence[str] = ()):
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
        self._wake = asyncio.Event()  # made anew with each task, on the loop that runs it
        self._task: asyncio.Task | None = None
        self._flushing = asyncio.Lock()

    def add(self, event: UsageEvent) -> None:
        self._events.append(event)
        metrics.METER_QUEUE.set(len(self._events))
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
            started = time.monotonic()
            try:
                written = await db.write(_write, batch, releases)
            except Exception:
                metrics.METER_FAILED.inc()
                logger.exception("writing %d usage records failed; keeping them to retry", len(batch))
                self._events[:0] = batch
                self._releases[:0] = releases
                return False
            finally:
                metrics.METER_FLUSH.observe(time.monotonic() - started)
                metrics.METER_QUEUE.set(len(self._events))
            remember(written)
            return True

    async def drain(self) -> None:
        """Write everything gathered so far (shutdown, tests)."""
        for _ in range(5):
            if await self.flush() and not self._events and not self._releases:
                return
            await asyncio.sleep(0.2)


meter = Meter()
