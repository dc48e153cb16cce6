"""How an organisation pays: credits (prepaid), postpaid (a monthly invoice) or internal (nothing charged).

The mode is the account's `billing_mode`, or HUB_BILLING_MODE when empty. The
gateway gets it with the key (hub/auth.py): only credits organisations reserve
credit, can be refused with 402 and have their usage written to the ledger;
every usage record carries its cost and price whatever the mode.

A postpaid organisation is invoiced for the hours it was postpaid
(`postpaid_since`, `postpaid_until`), less whatever the ledger charged in them
(billing/invoices.py), so a switch in the middle of a month bills nothing twice.
"""

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from .models import BillingMode, CreditAccount, Invoice
from .rollups import start_of_month


def effective_mode(account: CreditAccount | None) -> str:
    return (account.billing_mode if account is not None else "") or settings.HUB_BILLING_MODE


def accounts_in_mode(mode: str):
    q = Q(billing_mode=mode)
    if settings.HUB_BILLING_MODE == mode:
        q |= Q(billing_mode="")
    return CreditAccount.objects.filter(q)


def billing_mode_set(*, account: CreditAccount, mode: str, actor=None) -> CreditAccount:
    """Change an organisation's billing mode; keeps the hours it is postpaid for its invoices."""
    from accounts.services import audit_record

    if mode not in ("", *BillingMode.values):
        raise ValueError(f"unknown billing mode {mode!r}")
    now = timezone.now()
    with transaction.atomic():
        account = CreditAccount.objects.select_for_update().select_related("organization").get(pk=account.pk)
        before, after = effective_mode(account), mode or settings.HUB_BILLING_MODE
        fields = {"billing_mode": mode}
        if after == BillingMode.POSTPAID and before != BillingMode.POSTPAID:
            last = account.postpaid_until
            # Back before the last stint's month was invoiced: keep its start, so
            # that month still bills the earlier stint (what the ledger charged in
            # between is deducted).
            if last is None or Invoice.objects.filter(organization_id=account.organization_id,
                                                      period_start=start_of_month(last)).exists():
                fields["postpaid_since"] = now
            fields["postpaid_until"] = None
        elif before == BillingMode.POSTPAID and after != BillingMode.POSTPAID:
            fields["postpaid_until"] = now
        CreditAccount.objects.filter(pk=account.pk).update(**fields, updated_at=now)
        if before != after or account.billing_mode != mode:
            audit_record(action="billing.mode_change", actor=actor, organization=account.organization,
                         target=account, details={"from": account.billing_mode, "to": mode,
                                                  "effective_from": before, "effective_to": after})
    transaction.on_commit(_forget_keys)
    account.refresh_from_db()
    return account


def _forget_keys() -> None:
    # This process's gateway uses the new mode at once; others within HUB_AUTH_CACHE_SECONDS.
    from hub.auth import forget_all

    forget_all()
