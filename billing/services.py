"""Credit and usage: the only code that writes the ledger."""

import logging
from collections.abc import Sequence
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import F, Q, Sum
from django.utils import timezone

from accounts.audit import audit_record

from . import usage
from .inserts import Insert
from .models import CreditAccount, CreditHold, LedgerEntry, UsageRecord
from .money import money_value, quantize
from .signals import balance_changed
from .usage import UsageEvent

logger = logging.getLogger(__name__)


def account_open(*, organization) -> CreditAccount:
    """The organisation's credit account; a new one gets HUB_STARTER_CREDITS, once."""
    with transaction.atomic():
        account, created = CreditAccount.objects.get_or_create(organization=organization)
        if not created:
            return account
        starter = Decimal(settings.HUB_STARTER_CREDITS or "0")
        if starter < 0:
            raise ValueError("HUB_STARTER_CREDITS must not be negative")
        if starter > 0:
            # Written here, not through credit_grant (which opens the account
            # itself); the unique key makes a second grant impossible.
            try:
                with transaction.atomic():
                    entry = _append(
                        account.pk,
                        kind=LedgerEntry.Kind.GRANT,
                        amount=quantize(starter),
                        description="Starter credits",
                        idempotency_key=f"starter:{organization.pk}",
                    )
                    _audit(entry, organization)
            except IntegrityError:
                pass
            transaction.on_commit(lambda: _forget_cached_balance(organization.pk))
    return account


def _append(account_id: int, *, kind: str, amount: Decimal, **fields) -> LedgerEntry:
    """Append one entry and move the cached balance by the same amount, atomically."""
    entry = LedgerEntry.objects.create(account_id=account_id, kind=kind, amount=amount, **fields)
    CreditAccount.objects.filter(pk=account_id).update(
        balance=F("balance") + money_value(amount), updated_at=timezone.now()
    )
    return entry


def credit_grant(
    *,
    organization,
    amount: Decimal,
    description: str = "",
    idempotency_key: str | None = None,
    created_by=None,
    kind: str = LedgerEntry.Kind.GRANT,
) -> LedgerEntry:
    """Add (or, for an adjustment, take) credit. Idempotent on `idempotency_key`."""
    amount = quantize(Decimal(amount))
    if kind == LedgerEntry.Kind.GRANT and amount <= 0:
        raise ValueError("a grant must be positive")
    account = account_open(organization=organization)
    if idempotency_key:
        existing = LedgerEntry.objects.filter(idempotency_key=idempotency_key).first()
        if existing:
            return existing
    transaction.on_commit(lambda: _forget_cached_balance(organization.pk))
    try:
        with transaction.atomic():
            CreditAccount.objects.select_for_update().get(pk=account.pk)
            entry = _append(
                account.pk,
                kind=kind,
                amount=amount,
                description=description,
                idempotency_key=idempotency_key,
                created_by=created_by,
            )
            if created_by is None:
                _audit(entry, organization)  # an operator's grant is audited by the admin, with its address
            return entry
    except IntegrityError:
        # A concurrent call with the same key won the race: it is the one entry.
        if idempotency_key:
            return LedgerEntry.objects.get(idempotency_key=idempotency_key)
        raise


def _audit(entry: LedgerEntry, organization) -> None:
    """Credit the system moves (Stripe, starter credits, tasks) in the audit log."""
    audit_record(
        action=f"credit.{entry.kind}",
        organization=organization,
        target=entry,
        details={
            "amount": str(entry.amount),
            "description": entry.description,
            "idempotency_key": entry.idempotency_key or "",
        },
    )


def on_organization_opened(sender, organization, **kwargs) -> None:
    """A new organisation gets its credit account in the transaction that creates it (accounts.signals)."""
    account_open(organization=organization)


def _forget_cached_balance(organization_id: int) -> None:
    # This process's gateway sees the new balance at once (hub/apps.py);
    # others within HUB_BALANCE_CACHE_SECONDS.
    balance_changed.send(sender=CreditAccount, organization_id=organization_id)


# The metering writer's two appends, without a model instance per row (billing/inserts.py).
_insert_records = Insert(
    UsageRecord, usage.RECORD_FIELDS, skip_conflicts_on="request_id", returning=("request_id", "id")
)
_insert_charges = Insert(
    LedgerEntry,
    (
        "account_id",
        "kind",
        "amount",
        "description",
        "idempotency_key",
        "usage_record_id",
        "request_id",
        "model_name",
        "usage_at",
        "created_at",
    ),
)


def record_usage(events: list[UsageEvent], releases: Sequence[str] = ()) -> dict[int, Decimal]:
    """Write usage records and charge them, then release the holds named in `releases`, in one transaction.

    A charge under a hold (its `lease`) takes its price out of that hold too,
    so the credit it reserved turns into the charge without ever being free in
    between. Returns the credit now available (balance less holds) of every
    account touched. A request id that is already recorded is skipped, so
    replaying a batch charges nothing twice.
    """
    if not events and not releases:
        return {}
    events = [usage.storable(e) for e in events]
    with transaction.atomic():
        # One row per request id (the last event of it); one already recorded is skipped by the database.
        unique = list({e.request_id: e for e in events}.values())
        inserted = dict(_insert_records([usage.record_row(e) for e in unique]))
        charged = [(e, inserted[e.request_id]) for e in unique if e.request_id in inserted and e.charged]
        hold_ids = {e.lease for e, _ in charged if e.lease} | set(releases)
        holds = {h.request_id: h for h in CreditHold.objects.filter(request_id__in=hold_ids)}
        org_ids = sorted({e.organization_id for e, _ in charged})
        if not charged and not holds:
            return {}
        # Lock in primary-key order so concurrent writers never deadlock.
        locked = (
            CreditAccount.objects.select_for_update()
            .filter(Q(organization_id__in=org_ids) | Q(pk__in=[h.account_id for h in holds.values()]))
            .order_by("pk")
        )
        accounts = {a.organization_id: a.pk for a in locked}
        for org_id in org_ids:
            if org_id not in accounts:
                accounts[org_id] = CreditAccount.objects.create(organization_id=org_id).pk
        now = timezone.now()
        _insert_charges(
            [
                (
                    accounts[e.organization_id],
                    LedgerEntry.Kind.USAGE.value,
                    -e.price,
                    f"{e.endpoint} {e.served_name}"[:300],
                    f"usage:{e.request_id}",
                    pk,
                    # Its own receipt: the record is archived and deleted past retention (billing/rollups.py).
                    # It names the model that served, as invoices and rollups do.
                    e.request_id,
                    e.served_name,
                    e.created_at,
                    now,
                )
                for e, pk in charged
            ]
        )
        charges: dict[int, Decimal] = {}
        unheld: dict[int, Decimal] = {}
        shrunk: dict[str, Decimal] = {}
        for e, _ in charged:
            account_id = accounts[e.organization_id]
            charges[account_id] = charges.get(account_id, Decimal(0)) + e.price
            hold = holds.get(e.lease)
            if hold is not None:
                # Never below zero: a charge over its estimate is paid from free credit.
                taken = min(e.price, hold.amount - shrunk.get(hold.request_id, Decimal(0)))
                shrunk[hold.request_id] = shrunk.get(hold.request_id, Decimal(0)) + taken
                unheld[account_id] = unheld.get(account_id, Decimal(0)) + taken
        for hold in holds.values():
            if hold.request_id in releases:
                rest = hold.amount - shrunk.get(hold.request_id, Decimal(0))
                unheld[hold.account_id] = unheld.get(hold.account_id, Decimal(0)) + rest
            elif shrunk.get(hold.request_id):
                CreditHold.objects.filter(pk=hold.pk).update(amount=F("amount") - money_value(shrunk[hold.request_id]))
        CreditHold.objects.filter(request_id__in=[r for r in releases if r in holds]).delete()
        for account_id in sorted(set(charges) | set(unheld)):
            CreditAccount.objects.filter(pk=account_id).update(
                balance=F("balance") - money_value(charges.get(account_id, Decimal(0))),
                held=F("held") - money_value(unheld.get(account_id, Decimal(0))),
                updated_at=now,
            )
        touched = set(charges) | set(unheld)
        return {
            org: balance - held
            for org, balance, held in CreditAccount.objects.filter(pk__in=touched).values_list(
                "organization_id", "balance", "held"
            )
        }


def hold_place(*, organization_id: int, request_id: str, amount: Decimal, ttl_seconds: float) -> Decimal | None:
    """Reserve `amount` of the organisation's credit for one request, if it has that much available.

    Returns None when it was reserved, else the credit available. The
    conditional UPDATE is the whole concurrency story: the database admits
    holds one at a time against balance − held, so concurrent requests can
    never reserve more than there is.
    """
    amount = quantize(amount)
    with transaction.atomic():
        reserved = CreditAccount.objects.filter(
            organization_id=organization_id,
            balance__gte=F("held") + money_value(amount),
        ).update(held=F("held") + money_value(amount), updated_at=timezone.now())
        if not reserved:
            row = CreditAccount.objects.filter(organization_id=organization_id).values_list("balance", "held").first()
            return (row[0] - row[1]) if row else Decimal(0)
        account_id = CreditAccount.objects.filter(organization_id=organization_id).values_list("pk", flat=True).get()
        CreditHold.objects.create(
            account_id=account_id,
            request_id=request_id,
            amount=amount,
            expires_at=timezone.now() + timedelta(seconds=ttl_seconds),
        )
    return None


def release_expired_holds() -> int:
    """Release holds whose request never settled (its process died). Safe to run twice or at once."""
    released = 0
    expired = list(
        CreditHold.objects.filter(expires_at__lt=timezone.now()).values_list("account_id", flat=True).distinct()
    )
    for account_id in sorted(expired):
        with transaction.atomic():
            CreditAccount.objects.select_for_update().filter(pk=account_id).first()
            holds = list(
                CreditHold.objects.filter(account_id=account_id, expires_at__lt=timezone.now()).values_list(
                    "pk", "amount"
                )
            )
            if not holds:
                continue  # another run got there first
            CreditHold.objects.filter(pk__in=[pk for pk, _ in holds]).delete()
            CreditAccount.objects.filter(pk=account_id).update(
                held=F("held") - money_value(sum((a for _, a in holds), Decimal(0))), updated_at=timezone.now()
            )
            released += len(holds)
            logger.warning("released %d expired credit hold(s) of account %s", len(holds), account_id)
    return released


RECONCILE_RESULT = "billing:reconcile:last"
RECONCILE_KEPT = 7 * 24 * 3600  # seconds: a week without a run shows as none


def reconcile_balances() -> list[dict]:
    """Compare every cached balance with the sum of its ledger; report drift."""
    sums = dict(
        LedgerEntry.objects.values("account_id").annotate(total=Sum("amount")).values_list("account_id", "total")
    )
    drift = []
    for account in CreditAccount.objects.all():
        expected = sums.get(account.pk) or Decimal(0)
        if account.balance != expected:
            drift.append(
                {
                    "account": account.pk,
                    "organization": account.organization_id,
                    "balance": account.balance,
                    "ledger": expected,
                }
            )
    for row in drift:
        logger.error("credit balance drift: account %(account)s balance %(balance)s ledger sum %(ledger)s", row)
    # The operator overview (hub/operator_overview.py) shows the last run's finding, without running it again.
    cache.set(RECONCILE_RESULT, {"at": timezone.now(), "drift": drift}, RECONCILE_KEPT)
    return drift
