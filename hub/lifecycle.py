import logging

from providers import http

from .metering import meter

logger = logging.getLogger(__name__)


async def shutdown() -> None:
    await meter.drain()
    await http.close()
