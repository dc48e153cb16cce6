from celery import shared_task

from . import health_checks, media


@shared_task(time_limit=600)
def check_credentials() -> int:
    """Probe every enabled credential (beat: HUB_HEALTH_CHECK_SECONDS)."""
    return health_checks.check_all()


@shared_task(time_limit=600)
def delete_expired_media() -> int:
    """Delete generated images whose links have expired (beat: every 10 minutes)."""
    return media.delete_expired()
