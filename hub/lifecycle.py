import logging

from providers import http

from . import credit
from .metering import meter

logger = logging.getLogger(__name__)


async def shutdown() -> None:
    await meter.drain()
    credit.release_all()  # leases in use are left to expire: their requests were cut off
    await meter.drain()
    await http.close()
