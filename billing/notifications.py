"""Low-balance emails: one per crossing under the threshold, not one per request.

Each account has a `LowBalanceAlert` (made on the task's first look at it):
its threshold (empty: HUB_LOW_BALANCE_THRESHOLD, default 1) and `notified_at`,
empty while the alert is armed. A beat task (`notify_low_balances`):

1. re-arms every alert whose account has its available credit (balance less
   holds) back at or over the threshold *and* a balance higher than when it
   was sent. The second condition is why: a hub process's credit lease is a
   hold, so available credit dips and recovers every few seconds on a busy
   account; only credit added (a top-up, a grant) raises the balance.
2. claims every armed alert whose account's available credit is under its
   threshold, with a conditional UPDATE that must touch exactly one row (two
   runs at once send once), then emails the organisation's billing recipients
   (`billing_recipients`), one message each. A send that fails gives the claim
   back, so the next run tries again.

Billing recipients, for these and for invoices (billing/invoices/issuing.py):
the organisation's active owners and billing members, *and* its billing email
(CreditAccount.billing_email) when set. In addition, not instead: a shared
accounts address is one more reader, and nobody who may act on the bill (buy
credit, pay an invoice) stops hearing of it because one was added. An address
that is also a member's gets one message, the member's.

Only organisations in credits mode (billing/modes.py) are alerted: postpaid
and internal ones are never refused for credit.

An account seen for the first time while already under its threshold (a new
organisation without credit, or any account when this is first deployed) is
recorded as notified without an email: the first email follows a top-up and
a new fall.
"""

import logging
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.db import transaction
from django.db.models import F, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.template.loader import render_to_string
from django.utils import timezone, translation

from accounts.audit import audit_record
from accounts.models import Membership, Role, User

from . import modes
from .models import BillingMode, CreditAccount, LowBalanceAlert
from .money import MoneyField, money_value
from .services import account_open

logger = logging.getLogger(__name__)

NOTIFIED_ROLES = ("owner", "billing")


def default_threshold() -> Decimal:
    return Decimal(str(getattr(settings, "HUB_LOW_BALANCE_THRESHOLD", "1")))


def _with_limit(queryset):
    return queryset.annotate(
        limit=Coalesce(F("threshold"), money_value(default_threshold()), output_field=MoneyField())
    )


def alerts_open() -> int:
    """Give every account without one its alert; armed unless it is already under its threshold."""
    threshold, now = default_threshold(), timezone.now()
    alerts = []
    for account in CreditAccount.objects.filter(low_balance_alert__isnull=True):
        low = account.available < threshold
        alerts.append(
            LowBalanceAlert(
                account=account, notified_at=now if low else None, notified_balance=account.balance if low else None
            )
        )
    LowBalanceAlert.objects.bulk_create(alerts, ignore_conflicts=True)
    return len(alerts)


def alerts_rearm() -> int:
    """Arm again every alert whose account had credit added and is back at or over its threshold."""
    return (
        _with_limit(LowBalanceAlert.objects.filter(notified_at__isnull=False))
        .filter(
            account__balance__gte=F("account__held") + F("limit"),
            account__balance__gt=F("notified_balance"),
        )
        .update(notified_at=None, notified_balance=None)
    )


def alerts_due() -> list[int]:
    # Only credits organisations can run out: postpaid and internal ones are never refused.
    credits = modes.accounts_in_mode(BillingMode.CREDITS)
    return list(
        _with_limit(LowBalanceAlert.objects.filter(enabled=True, notified_at__isnull=True, account__in=credits))
        .filter(account__balance__lt=F("account__held") + F("limit"))
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def alert_send(*, alert_id: int) -> int:
    """Claim one armed alert and email its organisation's owners and billing members. Returns emails sent."""
    now = timezone.now()
    balance = Subquery(CreditAccount.objects.filter(pk=OuterRef("account_id")).values("balance")[:1])
    with transaction.atomic():
        claimed = LowBalanceAlert.objects.filter(pk=alert_id, notified_at__isnull=True).update(
            notified_at=now, notified_balance=balance
        )
    if claimed != 1:
        return 0  # another run sent it
    alert = LowBalanceAlert.objects.select_related("account__organization").get(pk=alert_id)
    try:
        return len(_send(alert))
    except Exception:
        LowBalanceAlert.objects.filter(pk=alert_id, notified_at=now).update(notified_at=None, notified_balance=None)
        logger.exception("low-balance email for account %s failed; the next run tries again", alert.account_id)
        return 0


def recipients_of(organization):
    """Who gets an organisation's billing emails (low balance, invoices): its active owners and billing members."""
    return (
        Membership.objects.filter(organization=organization, role__in=NOTIFIED_ROLES, user__is_active=True)
        .exclude(user__email="")
        .select_related("user")
        .order_by("pk")
    )


@dataclass(frozen=True)
class Recipient:
    """One address a billing email goes to: a member's (`user`, `role`), or the billing email (neither)."""

    email: str
    user: User | None = None
    role: str = ""  # the membership's Role value

    @property
    def language(self) -> str:
        """The language the email is written in: the member's own (settings page), else the site's."""
        return (self.user.language if self.user is not None else "") or settings.LANGUAGE_CODE


def billing_recipients(organization) -> list[Recipient]:
    """Owners and billing members (recipients_of), then the organisation's billing email unless one of them has it."""
    found = [Recipient(email=m.user.email, user=m.user, role=m.role) for m in recipients_of(organization)]
    account = CreditAccount.objects.filter(organization=organization).only("billing_email").first()
    extra = account.billing_email if account is not None else ""
    if extra and extra.lower() not in {r.email.lower() for r in found}:
        found.append(Recipient(email=extra))
    return found


def recipient_context(recipient: Recipient) -> dict:
    """What a billing email's template says of who gets it (`user` is None for the billing email); rendered under
    `translation.override(recipient.language)`, so the role's name is in the email's language."""
    role = str(Role(recipient.role).label).lower() if recipient.role else ""
    return {"user": recipient.user, "role": role, "billing_email": recipient.user is None}


def _send(alert: LowBalanceAlert) -> list[EmailMessage]:
    organization = alert.account.organization
    context = {
        "organization": organization,
        "available": alert.account.available,
        "threshold": alert.threshold if alert.threshold is not None else default_threshold(),
    }
    messages = []
    for recipient in billing_recipients(organization):
        with translation.override(recipient.language):
            context.update(recipient_context(recipient))
            subject = " ".join(render_to_string("billing/low_balance_subject.txt", context).split())
            body = render_to_string("billing/low_balance_email.txt", context)
        messages.append(EmailMessage(subject, body, None, [recipient.email]))
    if messages:
        get_connection(fail_silently=False).send_messages(messages)
    logger.info("low-balance email for %s sent to %d address(es)", organization, len(messages))
    return messages


def billing_settings_set(
    *,
    organization,
    billing_email: str,
    low_balance_threshold: Decimal | None,
    low_balance_enabled: bool = True,
    actor=None,
) -> CreditAccount:
    """Set where billing emails also go and when the low-balance email is sent (None: HUB_LOW_BALANCE_THRESHOLD).

    A changed threshold takes effect at the next run of the task: an alert already sent stays sent until credit
    is added again, as with any threshold. An account whose alert the task has not made yet gets it armed here,
    so a threshold set above the balance is told at the next run: someone asked for it, unlike alerts_open's
    first look at every account."""
    if low_balance_threshold is not None and low_balance_threshold < 0:
        raise ValueError("the low-balance threshold must not be negative")
    with transaction.atomic():
        account = CreditAccount.objects.select_for_update().get(pk=account_open(organization=organization).pk)
        alert, _ = LowBalanceAlert.objects.select_for_update().get_or_create(account=account)
        before = {
            "billing_email": account.billing_email,
            "low_balance_threshold": None if alert.threshold is None else str(alert.threshold),
            "low_balance_enabled": alert.enabled,
        }
        after = {
            "billing_email": billing_email,
            "low_balance_threshold": None if low_balance_threshold is None else str(low_balance_threshold),
            "low_balance_enabled": low_balance_enabled,
        }
        CreditAccount.objects.filter(pk=account.pk).update(billing_email=billing_email, updated_at=timezone.now())
        LowBalanceAlert.objects.filter(pk=alert.pk).update(threshold=low_balance_threshold, enabled=low_balance_enabled)
        if before != after:
            audit_record(
                action="billing.settings",
                actor=actor,
                organization=organization,
                target=account,
                details={"before": before, "after": after},
            )
    account.refresh_from_db()
    return account


def notify_low_balances() -> int:
    """Re-arm, then email every organisation newly under its threshold. Returns emails sent."""
    alerts_open()
    alerts_rearm()
    return sum(alert_send(alert_id=pk) for pk in alerts_due())
