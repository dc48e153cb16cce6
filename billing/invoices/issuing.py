"""Issuing postpaid invoices: one per organisation and calendar month (UTC), from the usage rollups.

The beat task (billing.tasks.issue_invoices):

1. rolls usage up, so the rollups equal the raw records;
2. issues each finished month (a month is finished SETTLE_DELAY after its
   end: usage records are written after their request started) of every
   organisation with priced postpaid usage in it and no invoice yet. Each is
   issued in one transaction holding the rollups' lock (billing/rollups.py):
   the rollups cannot change while they are read, numbers are taken one at a
   time, and a month already invoiced (unique organisation + period_start) is
   left alone, so runs twice or at once make one invoice;
3. emails each invoice once, behind a claim (a conditional UPDATE that must
   touch exactly one row), and has it charged (billing/invoices/collecting.py).

What a month bills: per model, the month's daily rollups of usage that ran in
postpaid mode. Every usage record keeps the mode its request ran in
(billing/services.py), whatever the organisation's mode or HUB_BILLING_MODE
is later, and the rollups keep them apart, so a switch, in either direction
and at any minute, bills each request by the mode it ran in: never twice
(postpaid records have no ledger entry) and never not at all. Records written
before records kept their mode have none and are never invoiced. `subtotal`
is that, exactly; `total`, what is due, is the subtotal rounded half-up to
the cent.

Invoices read the daily rollups only, never raw usage records: retention
(billing/rollups.py) archives and deletes a day's records once that day's
rollups are final, so a month bills the same before and after it is pruned.
"""

import logging
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.db.models.functions import TruncMonth
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation

from accounts.audit import audit_record
from accounts.models import Organization

from .. import rollups
from ..models import BillingMode, Invoice, InvoiceLine, UsageRollup
from ..notifications import billing_recipients, recipient_context
from .collecting import card_to_charge

logger = logging.getLogger(__name__)

CENT = Decimal("0.01")
SETTLE_DELAY = timedelta(hours=1)
LINE_FIELDS = ("requests", "prompt_tokens", "completion_tokens", "images", "audio_seconds", "amount")


def _postpaid_days(**filters):
    return UsageRollup.objects.filter(granularity=rollups.DAILY, billing_mode=BillingMode.POSTPAID, **filters)


def months_due(*, now: datetime) -> list[tuple[int, datetime]]:
    """(organisation id, month) of every finished month with priced postpaid usage and no invoice yet,
    whatever the organisation's mode is now."""
    months = set(
        _postpaid_days(period_start__lt=rollups.start_of_month(now - SETTLE_DELAY), price__gt=0)
        .annotate(month=TruncMonth("period_start", tzinfo=UTC))
        .order_by()
        .values_list("organization_id", "month")
        .distinct()
    )
    invoiced = set(
        Invoice.objects.filter(organization_id__in={org for org, _ in months}).values_list(
            "organization_id", "period_start"
        )
    )
    return sorted(months - invoiced)


def invoice_lines(*, organization_id: int, start: datetime, end: datetime) -> list[InvoiceLine]:
    """Per model: the usage in postpaid mode of the whole days [start, end), from the daily rollups."""
    rows = (
        _postpaid_days(organization_id=organization_id, period_start__gte=start, period_start__lt=end)
        .order_by()
        .values("model_name")
        .annotate(
            requests=Sum("requests"),
            prompt_tokens=Sum("prompt_tokens"),
            completion_tokens=Sum("completion_tokens"),
            images=Sum("images"),
            audio_seconds=Sum("audio_seconds"),
            amount=Sum("price"),
        )
    )
    return [InvoiceLine(**row) for row in sorted(rows, key=lambda row: row["model_name"]) if row["amount"]]


def _next_number(period_start: datetime) -> str:
    # Called holding the rollups' lock, which every issue takes: numbers are
    # taken one at a time, and invoices are never deleted, so a count is the sequence.
    prefix = f"{getattr(settings, 'HUB_INVOICE_NUMBER_PREFIX', 'HUB')}-{period_start:%Y-%m}-"
    return f"{prefix}{Invoice.objects.filter(number__startswith=prefix).count() + 1:04d}"


def invoice_issue(*, organization_id: int, period_start: datetime, now: datetime | None = None) -> Invoice | None:
    """Issue the invoice of one organisation's month; None if it exists already or there is nothing to bill.

    Reads the rollups as they are: roll up first (issue_due does).
    """
    now = now or timezone.now()
    period_end = rollups.next_month(period_start)
    with transaction.atomic():
        rollups.lock()
        if Invoice.objects.filter(organization_id=organization_id, period_start=period_start).exists():
            return None  # another run issued it
        organization = Organization.objects.get(pk=organization_id)
        lines = invoice_lines(organization_id=organization_id, start=period_start, end=period_end)
        subtotal = sum((line.amount for line in lines), Decimal(0))
        if subtotal <= 0:
            return None
        total = subtotal.quantize(CENT, rounding=ROUND_HALF_UP)
        try:
            with transaction.atomic():
                invoice = Invoice.objects.create(
                    organization_id=organization_id,
                    number=_next_number(period_start),
                    period_start=period_start,
                    period_end=period_end,
                    currency=settings.STRIPE_CURRENCY.lower(),
                    subtotal=subtotal,
                    total=total,
                    issued_at=now,
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
        audit_record(
            action="invoice.issue",
            organization=organization,
            target=invoice,
            details={
                "number": invoice.number,
                "period_start": period_start.isoformat(),
                "subtotal": str(subtotal),
                "total": str(total),
            },
        )
    logger.info("issued invoice %s to %s: %s %s", invoice.number, organization, total, invoice.currency)
    return invoice


def issue_due(*, now: datetime | None = None) -> list[int]:
    """Roll usage up, then issue every finished month with postpaid usage not invoiced yet. Returns the new ids."""
    now = now or timezone.now()
    rollups.roll_up(now=now)
    issued = []
    for organization_id, month in months_due(now=now):
        invoice = invoice_issue(organization_id=organization_id, period_start=month, now=now)
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
    return list(
        Invoice.objects.filter(issued_at__isnull=False, notified_at__isnull=True)
        .exclude(status__in=[Invoice.Status.DRAFT, Invoice.Status.VOID])
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def invoice_notify(*, invoice_id: int) -> int:
    """Claim the invoice's email and send it to its organisation's billing recipients (owners, billing members and
    the billing email: billing/notifications.py). Returns emails sent."""
    now = timezone.now()
    claimed = Invoice.objects.filter(pk=invoice_id, notified_at__isnull=True).update(notified_at=now)
    if claimed != 1:
        return 0  # another run sent it
    invoice = Invoice.objects.select_related("organization").get(pk=invoice_id)
    try:
        messages = []
        context = {
            "invoice": invoice,
            "organization": invoice.organization,
            "url": invoice_url(invoice),
            "auto_charge": card_to_charge(invoice) is not None,
        }
        for recipient in billing_recipients(invoice.organization):
            with translation.override(recipient.language):  # the member's language, else the site's
                context.update(recipient_context(recipient))
                subject = " ".join(render_to_string("billing/invoice_subject.txt", context).split())
                body = render_to_string("billing/invoice_email.txt", context)
            messages.append(EmailMessage(subject, body, None, [recipient.email]))
        if messages:
            get_connection(fail_silently=False).send_messages(messages)
    except Exception:
        Invoice.objects.filter(pk=invoice_id, notified_at=now).update(notified_at=None)
        logger.exception("email of invoice %s failed; the next run tries again", invoice.number)
        return 0
    logger.info("invoice %s emailed to %d address(es)", invoice.number, len(messages))
    return len(messages)
