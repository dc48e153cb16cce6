from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from . import grants, notifications, payments, pricing, rollups, services
from .invoices import collecting, issuing

# A recharge whose Stripe call never answered (a crash, a timeout) is called
# again after this long, with the same idempotency key.
STALE_RECHARGE = timedelta(minutes=10)


@shared_task(time_limit=300)
def reconcile_balances() -> int:
    """Report every account whose balance is not the sum of its ledger."""
    return len(services.reconcile_balances())


@shared_task(time_limit=120)
def auto_recharge_all() -> int:
    """Start a recharge for every organisation under its threshold, each in its own task."""
    payments.auto_recharge_resume_stale(older_than=timezone.now() - STALE_RECHARGE)
    due = payments.auto_recharge_due()
    for auto_recharge_id in due:
        auto_recharge_one.delay(auto_recharge_id)
    return len(due)


@shared_task(time_limit=60)
def auto_recharge_one(auto_recharge_id: int) -> int | None:
    """Charge one organisation's saved card; a second run finds the claim taken and does nothing."""
    payment = payments.auto_recharge_start(auto_recharge_id=auto_recharge_id)
    return payment.pk if payment else None


@shared_task(time_limit=300)
def release_expired_holds() -> int:
    """Release credit holds whose request never settled (its process died)."""
    return services.release_expired_holds()


@shared_task(time_limit=900)
def roll_up_usage() -> int:
    """Rebuild the hourly and daily usage rollups of every hour whose raw records changed."""
    return rollups.roll_up(lookback_hours=getattr(settings, "HUB_USAGE_ROLLUP_LOOKBACK_HOURS", None))


@shared_task(time_limit=3600)
def prune_usage() -> int:
    """Archive, then delete, raw usage older than HUB_USAGE_RETENTION_DAYS once rolled up (billing/rollups.py)."""
    return rollups.prune()


@shared_task(time_limit=120)
def flag_prices_below_cost() -> list[dict]:
    """Log (and return) every model whose input or output price is under its cost."""
    return pricing.prices_below_cost()


@shared_task(time_limit=600)
def lapse_expired_grants() -> int:
    """Take back what is left of every expired grant (billing/grants.py); a second run finds nothing to do."""
    return grants.lapse_expired()


@shared_task(time_limit=300)
def notify_low_balances() -> int:
    """Email the owners and billing members of every organisation newly under its low-balance threshold."""
    return notifications.notify_low_balances()


@shared_task(time_limit=1800)
def issue_invoices() -> int:
    """Invoice every finished month with postpaid usage, then email and charge what is due.

    Safe twice or at once: a month is issued under the rollups' lock and
    invoiced once (unique organisation + period); emails and charges are claimed;
    a charge left unanswered too long is noted once, for the operator.
    """
    issued = issuing.issue_due()
    collecting.unanswered_charges_flag()
    for invoice_id in issuing.unsent():
        send_invoice.delay(invoice_id)
    for invoice_id in collecting.chargeable():
        charge_invoice.delay(invoice_id)
    return len(issued)


@shared_task(time_limit=120)
def send_invoice(invoice_id: int) -> int:
    """Email an invoice to its organisation's owners and billing members, once."""
    return issuing.invoice_notify(invoice_id=invoice_id)


@shared_task(time_limit=60)
def charge_invoice(invoice_id: int) -> str:
    """Charge an invoice to the saved card, once; the webhook marks it paid."""
    return collecting.invoice_charge(invoice_id=invoice_id)
