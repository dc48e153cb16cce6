import gc
import logging

from django.conf import settings

from providers import http

from . import credit
from .metering import meter

logger = logging.getLogger(__name__)


def tune_gc() -> None:
    """A serving process's garbage collector, set once it has loaded (HUB_GC_FREEZE, HUB_GC_THRESHOLD).

    With Python's defaults a worker relaying 500 streams at once spent about a fifth of its CPU in the
    collector, and each full collection walked every object Django, the adapters and the libraries had
    loaded: pauses of 100 to 175 ms in which no stream moved (README.md, "What each change bought"). Frozen,
    the loaded objects are left out of every collection (they live as long as the process anyway); the higher
    first threshold collects the requests' short-lived objects less often, each pass still bounded.
    """
    if settings.HUB_GC_THRESHOLD:  # checked in hub/settings.py
        gc.set_threshold(*settings.HUB_GC_THRESHOLD)
    if settings.HUB_GC_FREEZE:
        gc.collect()  # what startup left as garbage is freed, not frozen
        gc.freeze()


async def shutdown() -> None:
    await meter.drain()
    credit.release_all()  # leases in use are left to expire: their requests were cut off
    await meter.drain()
    await http.close()
