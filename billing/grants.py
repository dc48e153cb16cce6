"""Credit granted with an expiry ("50 free credits, valid 30 days"), and its lapse.

The ledger stays the truth. A grant with an expiry is an ordinary grant entry
(written by billing.services.credit_grant, so audited and idempotent) plus a
`CreditGrant` row saying when it expires. When it expires, what is left of it
lapses: one adjustment entry of minus the remainder, key `lapse:<grant id>`.
Nothing else is stored: what is left of a grant is computed from the ledger.

**The consumption rule.** Spending uses expiring credit first, the earliest
expiry first (ties: the older grant), paid and other non-expiring credit last.
Credit taken *back* (a Stripe refund or dispute, an operator's negative
adjustment) is not spending: it takes non-expiring credit first, as far as
there is any, then expiring credit, earliest expiry first. Otherwise refunding
a top-up would use up a promotion and leave the refunded money to keep.

**The algorithm** (`remainders`): replay the account's ledger, in the order
it was written (by id), from its first expiring grant on, keeping one bucket
per expiring grant and one for all other credit (which may go negative: a
charge over the balance, a refund before its payment):

- an expiring grant's entry opens its bucket;
- any other positive entry goes to the non-expiring bucket;
- a usage entry takes from the buckets of grants not yet expired when it was
  written, earliest expiry first, each down to zero, the rest from the
  non-expiring bucket;
- another negative entry takes from the non-expiring bucket as far as it is
  positive, then as a usage entry does;
- a lapse entry closes its grant's bucket; what the lapse did not take back
  (see below) joins the non-expiring bucket, as does, at the time of its
  lapse, the remainder of a grant that lapsed with nothing taken back.

The sum of the buckets is the balance at every step. A grant's remainder is
its bucket at lapse time; usage written after a grant expired never takes from
it, so the remainder is fixed once it expires and the lapse can run any time
after. The cost is one pass over the entries since the account's first
expiring grant.

**How much lapses.** The remainder, but never more than the balance at that
moment (never below zero): an organisation that spent past its expiry
(between the expiry and the task's run, or by charges over its balance) is
not put in debt by the lapse. A lapse of zero writes no entry. The lapse does
not wait for credit holds: requests in flight keep their holds, so the credit
available (balance less holds) may go briefly negative by at most those.

**Concurrency.** Each grant lapses in one transaction that locks its account
(the order every writer of the balance locks in), claims the grant with a
conditional UPDATE that must touch exactly one row, and writes the entry with
its unique key: running the task twice, or twice at once, lapses once.
"""

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from . import services
from .models import CreditAccount, CreditGrant, LedgerEntry
from .money import quantize

logger = logging.getLogger(__name__)


def grant_with_expiry(
    *,
    organization,
    amount: Decimal,
    expires_at: datetime,
    description: str,
    created_by=None,
    idempotency_key: str | None = None,
) -> CreditGrant:
    """Grant credit that lapses at `expires_at`. Idempotent on `idempotency_key` (default: a new one)."""
    amount = quantize(Decimal(amount))
    if amount <= 0:
        raise ValueError("a grant must be positive")
    if expires_at <= timezone.now():
        raise ValueError("a grant must expire in the future")
    key = idempotency_key or f"grant:{uuid.uuid4()}"
    with transaction.atomic():
        existing = LedgerEntry.objects.filter(idempotency_key=key).first()
        if existing is not None:
            grant = CreditGrant.objects.filter(entry=existing).first()
            if grant is None:
                raise ValueError(f"{key} is the key of a grant without an expiry")
            return grant
        entry = services.credit_grant(
            organization=organization,
            amount=amount,
            description=description,
            idempotency_key=key,
            created_by=created_by,
        )
        grant, _ = CreditGrant.objects.get_or_create(
            entry=entry, defaults={"account_id": entry.account_id, "amount": entry.amount, "expires_at": expires_at}
        )
    return grant


@dataclass
class _Bucket:
    grant_id: int
    expires_at: datetime
    left: Decimal


def remainders(account_id: int) -> dict[int, Decimal]:
    """What is left of each expiring grant of the account not yet lapsed (by grant id), from its ledger."""
    grants = {g.entry_id: g for g in CreditGrant.objects.filter(account_id=account_id)}
    if not grants:
        return {}
    first = min(grants)
    other = LedgerEntry.objects.filter(account_id=account_id, id__lt=first).aggregate(s=Sum("amount"))["s"]
    other = other or Decimal(0)
    by_lapse_key = {f"lapse:{g.pk}": g.pk for g in grants.values()}
    # (when, grant id) of the grants that lapsed with nothing left: no entry says when, their lapsed_at does.
    silent = sorted(
        (g.lapsed_at, g.pk)
        for g in grants.values()
        if g.lapsed_amount == 0 and g.lapse_entry_id is None and g.lapsed_at is not None
    )
    buckets: dict[int, _Bucket] = {}
    rows = (
        LedgerEntry.objects.filter(account_id=account_id, id__gte=first)
        .order_by("id")
        .values_list("id", "kind", "amount", "created_at", "idempotency_key")
        .iterator(chunk_size=2000)
    )
    for entry_id, kind, amount, at, key in rows:
        while silent and silent[0][0] <= at:
            closed = buckets.pop(silent.pop(0)[1], None)
            other += closed.left if closed else 0
        if entry_id in grants:
            grant = grants[entry_id]
            buckets[grant.pk] = _Bucket(grant.pk, grant.expires_at, amount)
        elif key in by_lapse_key and by_lapse_key[key] in buckets:
            other += buckets.pop(by_lapse_key[key]).left + amount
        elif amount >= 0:
            other += amount
        else:
            due = -amount
            if kind != LedgerEntry.Kind.USAGE:
                taken = min(due, max(other, Decimal(0)))
                other, due = other - taken, due - taken
            for bucket in sorted(
                (b for b in buckets.values() if b.expires_at > at), key=lambda b: (b.expires_at, b.grant_id)
            ):
                if not due:
                    break
                taken = min(due, max(bucket.left, Decimal(0)))
                bucket.left, due = bucket.left - taken, due - taken
            other -= due
    done = {g.pk for g in grants.values() if g.lapsed_amount is not None}
    return {grant_id: bucket.left for grant_id, bucket in buckets.items() if grant_id not in done}


def expiring_credit(account_id: int, *, now: datetime | None = None) -> list[tuple[CreditGrant, Decimal]]:
    """The account's grants not yet expired with what is left of each, earliest expiry first."""
    now = now or timezone.now()
    left = remainders(account_id)
    grants = CreditGrant.objects.filter(account_id=account_id, expires_at__gt=now, lapsed_at__isnull=True)
    return [(g, left.get(g.pk, Decimal(0))) for g in grants.order_by("expires_at", "pk")]


def lapse_grant(*, grant_id: int, now: datetime | None = None) -> Decimal | None:
    """Take back what is left of one expired grant. None when it is not due or another run took it."""
    now = now or timezone.now()
    with transaction.atomic():
        account_id = CreditGrant.objects.filter(pk=grant_id).values_list("account_id", flat=True).first()
        if account_id is None:
            return None
        account = CreditAccount.objects.select_for_update().select_related("organization").get(pk=account_id)
        claimed = CreditGrant.objects.filter(pk=grant_id, lapsed_at__isnull=True, expires_at__lte=now).update(
            lapsed_at=now
        )
        if claimed != 1:
            return None
        grant = CreditGrant.objects.select_related("entry").get(pk=grant_id)
        remainder = remainders(account_id).get(grant_id, Decimal(0))
        amount = max(min(remainder, account.balance), Decimal(0))
        entry = None
        if amount > 0:
            entry = services.credit_grant(
                organization=account.organization,
                amount=-amount,
                kind=LedgerEntry.Kind.ADJUSTMENT,
                description=f"Expired: {grant.entry.description or 'grant'}"[:300],
                idempotency_key=f"lapse:{grant_id}",
            )
        CreditGrant.objects.filter(pk=grant_id).update(lapsed_amount=amount, lapse_entry=entry)
    if remainder > amount:
        logger.info("grant %s lapsed %s of %s left (balance %s)", grant_id, amount, remainder, account.balance)
    return amount


def lapse_expired(*, now: datetime | None = None) -> int:
    """Lapse every expired grant not lapsed yet, one transaction each. Returns how many this run lapsed."""
    now = now or timezone.now()
    due = CreditGrant.objects.filter(expires_at__lte=now, lapsed_at__isnull=True).order_by("account_id", "pk")
    return sum(lapse_grant(grant_id=pk, now=now) is not None for pk in due.values_list("pk", flat=True))
