from celery import shared_task

from . import services


@shared_task(time_limit=300)
def reconcile_balances() -> int:
    """Report every account whose balance is not the sum of its ledger."""
    return len(services.reconcile_balances())
