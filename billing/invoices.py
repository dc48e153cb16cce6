"""Postpaid invoices: one per organisation and calendar month (UTC), from the usage rollups.

The beat task (billing.tasks.issue_invoices):

1. rolls usage up, so the rollups equal the raw records;
2. issues, for every postpaid organisation, each finished month not invoiced
   yet (a month is finished SETTLE_DELAY after its end: usage records are
   written after their request started). Each is issued in one transaction
   holding the rollups' lock (billing/rollups.py): the rollups cannot change
   while they are read, numbers are taken one at a time, and a month already
   invoiced (unique organisation + period_start) is left alone, so runs twice
   or at once make one invoice;
3. emails each invoice once, and charges it to the saved card once when
   auto-charge is on, each behind a claim (a conditional UPDATE that must
   touch exactly one row). Stripe's payment_intent.succeeded marks it paid
   (billing/webhooks.py); it never grants credit.

What a month bills: per model, the price of the organisation's usage in the
hours it was postpaid (billing/modes.py), from the daily rollups (hourly ones
when those hours start or end inside a day), less what the ledger charged in
those hours (requests in flight when the mode changed; those records are
never pruned, since the ledger points at them). `subtotal` is that, exactly;
`total`, what is due, is the subtotal rounded half-up to the cent.
"""

import logging
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.db import IntegrityError, transaction
from django.db.models import Count, Q, Sum
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from . import modes, rollups, stripe_gateway
from .models import AutoRecharge, BillingMode, CreditAccount, Invoice, InvoiceLine, UsageRecord, UsageRollup

logger = logging.getLogger(__name__)

CENT = Decimal("0.01")
SETTLE_DELAY = timedelta(hours=1)
# Stripe's smallest card charge in USD; a smaller total stays open for the operator.
MIN_CHARGE = Decimal("0.50")
# A charge whose Stripe call never answered is asked again (same idempotency
# key) after STALE_CHARGE, but not after Stripe has forgotten the key (24 h),
# when asking again could charge twice.
STALE_CHARGE = timedelta(minutes=10)
KEY_KEPT = timedelta(hours=23)
LINE_FIELDS = ("requests", "prompt_tokens", "completion_tokens", "images", "audio_seconds", "amount")


def _floor_hour(moment: datetime | None) -> datetime | None:
    return moment.replace(minute=0, second=0, microsecond=0) if moment else None


def _ceil_hour(moment: datetime | None) -> datetime | None:
    floor = _floor_hour(moment)
    return floor if floor is None or floor == moment else floor + timedelta(hours=1)


def _postpaid_hours(account: CreditAccount) -> tuple[datetime | None, datetime | None]:
    # Whole hours, the rollups' unit: the hour of a switch is billed, less what the ledger charged in it.
    return _floor_hour(account.postpaid_since), _ceil_hour(account.postpaid_until)


def invoiced_accounts():
    """Postpaid accounts, and those that stopped being postpaid (their last months may be due)."""
    return (modes.accounts_in_mode(BillingMode.POSTPAID) | CreditAccount.objects.filter(postpaid_until__isnull=False)
            ).order_by("pk")


def months_due(account: CreditAccount, *, now: datetime) -> list[datetime]:
    """Finished months with priced usage in the account's postpaid hours and no invoice yet."""
    since, until = _postpaid_hours(account)
    days = UsageRollup.objects.filter(organization_id=account.organization_id, granularity=rollups.DAILY,
                                      period_start__lt=rollups.start_of_month(now - SETTLE_DELAY), price__gt=0)
    if since is not None:
        days = days.filter(period_start__gte=rollups.start_of_day(since))
    if until is not None:
        days = days.filter(period_start__lt=until)
    months = {rollups.start_of_month(day) for day in days.order_by().values_list("period_start", flat=True).distinct()}
    invoiced = set(Invoice.objects.filter(organization_id=account.organization_id, period_start__in=months)
                   .values_list("period_start", flat=True))
    return sorted(months - invoiced)


def _totals(rows) -> dict[str, dict]:
    return {row.pop("model_name"): row for row in rows}


def invoice_lines(*, organization_id: int, start: datetime, end: datetime) -> list[InvoiceLine]:
    """Per model: the rolled-up usage of [start, end) less what the ledger charged of it."""
    day_aligned = start == rollups.start_of_day(start) and end == rollups.start_of_day(end)
    used = _totals(
        UsageRollup.objects.filter(organization_id=organization_id,
                                   granularity=rollups.DAILY if day_aligned else rollups.HOURLY,
                                   period_start__gte=start, period_start__lt=end)
        .order_by().values("model_name")
        .annotate(requests=Sum("requests"), prompt_tokens=Sum("prompt_tokens"),
                  completion_tokens=Sum("completion_tokens"), images=Sum("images"),
                  audio_seconds=Sum("audio_seconds"), amount=Sum("price"))
    )
    prepaid = _totals(
        UsageRecord.objects.filter(organization_id=organization_id, created_at__gte=start, created_at__lt=end,
                                   ledger_entry__isnull=False)
        .order_by().values("model_name")
        .annotate(requests=Count("id"), prompt_tokens=Sum("prompt_tokens"),
                  completion_tokens=Sum("completion_tokens"), images=Sum("images"),
                  audio_seconds=Sum("audio_seconds"), charged=Sum("ledger_entry__amount"))
    )
    lines = []
    for model_name, row in sorted(used.items()):
        paid = prepaid.get(model_name, {})
        paid["amount"] = -(paid.pop("charged", None) or 0)  # usage entries are negative
        values = {name: (row[name] or 0) - (paid.get(name) or 0) for name in LINE_FIELDS}
        if values["amount"]:
            lines.append(InvoiceLine(model_name=model_name, **values))
    return lines


def _next_number(period_start: datetime) -> str:
    # Called holding the rollups' lock, which every issue takes: numbers are
    # taken one at a time, and invoices are never deleted, so a count is the sequence.
    prefix = f"{getattr(settings, 'HUB_INVOICE_NUMBER_PREFIX', 'HUB')}-{period_start:%Y-%m}-"
    return f"{prefix}{Invoice.objects.filter(number__startswith=prefix).count() + 1:04d}"


def invoice_issue(*, organization_id: int, period_start: datetime, now: datetime | None = None) -> Invoice | None:
    """Issue the invoice of one organisation's month; None if it exists already or there is nothing to bill.

    Reads the rollups as they are: roll up first (issue_due does).
    """
    from accounts.services import audit_record

    now = now or timezone.now()
    period_end = rollups.next_month(period_start)
    with transaction.atomic():
        rollups.lock()
        if Invoice.objects.filter(organization_id=organization_id, period_start=period_start).exists():
            return None  # another run issued it
        account = CreditAccount.objects.select_related("organization").get(organization_id=organization_id)
        since, until = _postpaid_hours(account)
        start, end = max(period_start, since or period_start), min(period_end, until or period_end)
        lines = invoice_lines(organization_id=organization_id, start=start, end=end) if start < end else []
        subtotal = sum((line.amount for line in lines), Decimal(0))
        if subtotal <= 0:
            return None
        total = subtotal.quantize(CENT, rounding=ROUND_HALF_UP)
        try:
            with transaction.atomic():
                invoice = Invoice.objects.create(
                    organization_id=organization_id, number=_next_number(period_start), period_start=period_start,
                    period_end=period_end, currency=settings.STRIPE_CURRENCY.lower(), subtotal=subtotal,
                    total=total, issued_at=now,
                    # Under half a cent rounds to nothing due.
                    status=Invoice.Status.OPEN if total > 0 else Invoice.Status.PAID,
                    paid_at=None if total > 0 else now,
                )
        except IntegrityError:
            if Invoice.objects.filter(organization_id=organization_id, period_start=period_start).exists():
                return None  # issued outside the lock meanwhile; the constraint keeps it to one
            raise
        for line in lines:
            line.invoice = invoice
        InvoiceLine.objects.bulk_create(lines)
        audit_record(action="invoice.issue", organization=account.organization, target=invoice,
                     details={"number": invoice.number, "period_start": period_start.isoformat(),
                              "subtotal": str(subtotal), "total": str(total)})
    logger.info("issued invoice %s to %s: %s %s", invoice.number, account.organization, total, invoice.currency)
    return invoice


def issue_due(*, now: datetime | None = None) -> list[int]:
    """Roll usage up, then issue every finished month of every postpaid organisation. Returns the new ids."""
    now = now or timezone.now()
    rollups.roll_up(now=now)
    issued = []
    for account in invoiced_accounts():
        for month in months_due(account, now=now):
            invoice = invoice_issue(organization_id=account.organization_id, period_start=month, now=now)
            if invoice is not None:
                issued.append(invoice.pk)
    return issued


# Reads -----------------------------------------------------------------------

def invoices_of(*, organization):
    return Invoice.objects.filter(organization=organization).exclude(status=Invoice.Status.DRAFT)


def invoice_path(invoice: Invoice) -> str:
    return reverse("billing-invoice-print", kwargs={"slug": invoice.organization.slug, "number": invoice.number})


def invoice_url(invoice: Invoice) -> str:
    """The printable invoice's address: absolute with HUB_PUBLIC_URL, else its path."""
    return getattr(settings, "HUB_PUBLIC_URL", "").rstrip("/") + invoice_path(invoice)


# Email -----------------------------------------------------------------------

def unsent() -> list[int]:
    return list(Invoice.objects.filter(issued_at__isnull=False, notified_at__isnull=True)
                .exclude(status__in=[Invoice.Status.DRAFT, Invoice.Status.VOID])
                .order_by("pk").values_list("pk", flat=True))


def invoice_notify(*, invoice_id: int) -> int:
    """Claim the invoice's email and send it to its organisation's owners and billing members. Returns emails sent."""
    from .notifications import recipients_of

    now = timezone.now()
    claimed = Invoice.objects.filter(pk=invoice_id, notified_at__isnull=True).update(notified_at=now)
    if claimed != 1:
        return 0  # another run sent it
    invoice = Invoice.objects.select_related("organization").get(pk=invoice_id)
    try:
        messages = []
        context = {"invoice": invoice, "organization": invoice.organization, "url": invoice_url(invoice),
                   "auto_charge": card_to_charge(invoice) is not None}
        for membership in recipients_of(invoice.organization):
            context.update(user=membership.user, role=membership.get_role_display().lower())
            subject = " ".join(render_to_string("billing/invoice_subject.txt", context).split())
            messages.append(EmailMessage(subject, render_to_string("billing/invoice_email.txt", context), None,
                                         [membership.user.email]))
        if messages:
            get_connection(fail_silently=False).send_messages(messages)
    except Exception:
        Invoice.objects.filter(pk=invoice_id, notified_at=now).update(notified_at=None)
        logger.exception("email of invoice %s failed; the next run tries again", invoice.number)
        return 0
    logger.info("invoice %s emailed to %d member(s)", invoice.number, len(messages))
    return len(messages)


# Charging the saved card -----------------------------------------------------

def _auto_charge(account: CreditAccount | None) -> bool:
    flag = account.invoice_auto_charge if account is not None else None
    return bool(getattr(settings, "HUB_INVOICE_AUTO_CHARGE", False)) if flag is None else flag


def card_to_charge(invoice: Invoice) -> AutoRecharge | None:
    """The saved card (auto-recharge's) to charge the invoice to, if auto-charge is on and there is one."""
    account = CreditAccount.objects.filter(organization_id=invoice.organization_id).first()
    if not _auto_charge(account):
        return None
    return (AutoRecharge.objects.filter(organization_id=invoice.organization_id)
            .exclude(stripe_customer_id="").exclude(stripe_payment_method_id="").first())


def _chargeable(now: datetime):
    return Invoice.objects.filter(
        status=Invoice.Status.OPEN, stripe_payment_intent_id__isnull=True, payment_error="",
        total__gte=MIN_CHARGE,
    ).filter(Q(charge_started_at__isnull=True)
             | Q(charge_started_at__lt=now - STALE_CHARGE, charge_started_at__gt=now - KEY_KEPT))


def chargeable(*, now: datetime | None = None) -> list[int]:
    """Open invoices not charged yet (or whose charge never answered) of organisations with auto-charge on."""
    if not settings.STRIPE_SECRET_KEY:
        return []
    return [invoice.pk for invoice in _chargeable(now or timezone.now()).order_by("pk")
            if card_to_charge(invoice) is not None]


def invoice_charge(*, invoice_id: int, now: datetime | None = None) -> str:
    """Charge an open invoice's total off-session, once: the claim admits one run, and Stripe's
    idempotency key (the invoice's) makes a repeated call return the same payment intent."""
    now = now or timezone.now()
    invoice = Invoice.objects.get(pk=invoice_id)
    card = card_to_charge(invoice)
    if card is None or not settings.STRIPE_SECRET_KEY:
        return f"not charged: no saved card or auto-charge off for invoice {invoice.number}"
    if _chargeable(now).filter(pk=invoice_id).update(charge_started_at=now) != 1:
        return f"not charged: invoice {invoice.number} is paid, charged or being charged"
    try:
        charge = stripe_gateway.invoice_charge(invoice=invoice, customer_id=card.stripe_customer_id,
                                               payment_method_id=card.stripe_payment_method_id)
    except stripe_gateway.PaymentDeclined as exc:
        Invoice.objects.filter(pk=invoice_id, status=Invoice.Status.OPEN).update(payment_error=str(exc)[:500])
        logger.warning("charge of invoice %s declined: %s", invoice.number, exc)
        return f"declined: invoice {invoice.number} stays open"
    # Paid comes with payment_intent.succeeded, never from this answer.
    Invoice.objects.filter(pk=invoice_id, stripe_payment_intent_id__isnull=True).update(
        stripe_payment_intent_id=charge.payment_intent_id)
    return f"charging invoice {invoice.number}: {charge.payment_intent_id} ({charge.status})"


# What Stripe's events do -----------------------------------------------------

def _locked_invoice(*, invoice_id, payment_intent_id: str) -> Invoice | None:
    rows = Invoice.objects.select_for_update()
    found = rows.filter(stripe_payment_intent_id=payment_intent_id).first()
    if found is None and invoice_id and str(invoice_id).isdigit():
        found = rows.filter(pk=int(invoice_id)).first()
    return found


def invoice_settle(*, invoice_id, payment_intent_id: str, paid: Decimal, currency: str) -> str:
    """Mark an invoice paid by a succeeded payment intent, once. No credit moves."""
    invoice = _locked_invoice(invoice_id=invoice_id, payment_intent_id=payment_intent_id)
    if invoice is None:
        return f"ignored: no hub invoice for {payment_intent_id}"
    if invoice.stripe_payment_intent_id and invoice.stripe_payment_intent_id != payment_intent_id:
        logger.error("invoice %s: paid by %s but charged by %s", invoice.number, payment_intent_id,
                     invoice.stripe_payment_intent_id)
        return f"refused: invoice {invoice.number} belongs to {invoice.stripe_payment_intent_id}"
    if paid != invoice.total or currency.lower() != invoice.currency:
        logger.error("invoice %s: paid %s %s, due %s %s", invoice.number, paid, currency, invoice.total,
                     invoice.currency)
        return f"refused: paid {paid:.2f} {currency}, due {invoice.total:.2f} {invoice.currency}"
    if invoice.status == Invoice.Status.PAID:
        return f"already paid: invoice {invoice.number}"
    if invoice.status != Invoice.Status.OPEN:
        logger.error("invoice %s is %s but was paid by %s: refund it", invoice.number, invoice.status,
                     payment_intent_id)
        return f"refused: invoice {invoice.number} is {invoice.status}"
    Invoice.objects.filter(pk=invoice.pk).update(status=Invoice.Status.PAID, paid_at=timezone.now(),
                                                 stripe_payment_intent_id=payment_intent_id, payment_error="")
    return f"paid {invoice.total:.2f}: invoice {invoice.number}"


def invoice_payment_failed(*, invoice_id, payment_intent_id: str, reason: str) -> str:
    """A charge of an invoice failed: it stays open, with the reason."""
    invoice = _locked_invoice(invoice_id=invoice_id, payment_intent_id=payment_intent_id)
    if invoice is None:
        return f"ignored: no hub invoice for {payment_intent_id}"
    if invoice.status != Invoice.Status.OPEN:
        return f"ignored: invoice {invoice.number} is {invoice.status}"
    Invoice.objects.filter(pk=invoice.pk).update(
        payment_error=(reason or "payment failed")[:500],
        stripe_payment_intent_id=invoice.stripe_payment_intent_id or payment_intent_id)
    return f"failed: invoice {invoice.number} stays open"


# Operators -------------------------------------------------------------------

def invoice_mark(*, invoice: Invoice, status: str, actor=None) -> bool:
    """An operator marks an open invoice paid (outside Stripe) or void. False if it was not open."""
    from accounts.services import audit_record

    if status not in (Invoice.Status.PAID, Invoice.Status.VOID):
        raise ValueError(f"an invoice is marked paid or void, not {status!r}")
    with transaction.atomic():
        changed = Invoice.objects.filter(pk=invoice.pk, status=Invoice.Status.OPEN).update(
            status=status, paid_at=timezone.now() if status == Invoice.Status.PAID else None)
        if changed:
            audit_record(action=f"invoice.{status}", actor=actor, organization=invoice.organization, target=invoice,
                         details={"number": invoice.number, "total": str(invoice.total)})
    return bool(changed)
