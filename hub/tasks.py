from celery import shared_task

from . import health_checks


@shared_task(time_limit=600)
def check_credentials() -> int:
    """Probe every enabled credential (beat: HUB_HEALTH_CHECK_SECONDS)."""
    return health_checks.check_all()
