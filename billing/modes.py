"""How an organisation pays: credits (prepaid), postpaid (a monthly invoice) or internal (nothing charged).

The mode is the account's `billing_mode`, or HUB_BILLING_MODE when empty. The
gateway gets it with the key (hub/auth.py): only credits organisations reserve
credit, can be refused with 402 and have their usage written to the ledger;
every usage record carries its cost and price whatever the mode.

Every usage record also keeps the mode its request ran in (billing/services.py),
and an invoice bills exactly the postpaid records of its month
(billing/invoices/): a switch, of the organisation's mode or of
HUB_BILLING_MODE, applies from the next request and bills nothing twice or
never, whenever it happens.
"""

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.audit import audit_record
from accounts.signals import keys_changed_on_commit

from .models import BillingMode, CreditAccount


def effective_mode(account: CreditAccount | None) -> str:
    return (account.billing_mode if account is not None else "") or settings.HUB_BILLING_MODE


def accounts_in_mode(mode: str):
    q = Q(billing_mode=mode)
    if mode == settings.HUB_BILLING_MODE:
        q |= Q(billing_mode="")
    return CreditAccount.objects.filter(q)


def billing_mode_set(*, account: CreditAccount, mode: str, actor=None) -> CreditAccount:
    """Change an organisation's billing mode (audited); its usage records say which mode each request ran in."""
    if mode not in ("", *BillingMode.values):
        raise ValueError(f"unknown billing mode {mode!r}")
    now = timezone.now()
    with transaction.atomic():
        account = CreditAccount.objects.select_for_update().select_related("organization").get(pk=account.pk)
        before, after = effective_mode(account), mode or settings.HUB_BILLING_MODE
        CreditAccount.objects.filter(pk=account.pk).update(billing_mode=mode, updated_at=now)
        if before != after or account.billing_mode != mode:
            audit_record(
                action="billing.mode_change",
                actor=actor,
                organization=account.organization,
                target=account,
                details={"from": account.billing_mode, "to": mode, "effective_from": before, "effective_to": after},
            )
    # The gateway caches each key with its organisation's mode (hub/auth.py).
    keys_changed_on_commit()
    account.refresh_from_db()
    return account
