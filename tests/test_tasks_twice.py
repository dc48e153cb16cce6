"""Every task Celery beat runs is safe to run twice: the whole schedule is run, then run again, and the
second run changes nothing (rows, emails, stored files), while the first did all the work there was."""

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from celery import Task
from django.conf import settings
from django.core import mail
from django.core.files.base import ContentFile
from django.utils.module_loading import import_string

from accounts.models import Membership, Organization, Role, User
from accounts.services import organization_create
from billing import archive, grants, invoices, notifications, rollups, services
from billing.models import (
    AutoRecharge,
    CreditAccount,
    CreditGrant,
    CreditHold,
    Invoice,
    InvoiceLine,
    LedgerEntry,
    LowBalanceAlert,
    Payment,
    PriceChange,
    UsageRecord,
    UsageRollup,
)
from hub import media
from tests import factories

# What the tasks write. Timestamps of "last ran at" kind are left out: they are
# meant to move on every run.
STATE = [
    LedgerEntry,
    CreditAccount,
    CreditHold,
    CreditGrant,
    UsageRecord,
    UsageRollup,
    Invoice,
    InvoiceLine,
    LowBalanceAlert,
    Payment,
    AutoRecharge,
    PriceChange,
]
VOLATILE = {"updated_at"}
# Tasks whose run-twice test needs Stripe (localstripe) and lives beside its other Stripe tests.
COVERED_ELSEWHERE = {
    "billing.tasks.auto_recharge_all": (
        "tests/test_billing_stripe.py::test_auto_recharge_run_twice_charges_once_and_the_webhook_credits_it"
    ),
}


def state() -> dict:
    snapshot = {}
    for model in STATE:
        fields = [f.attname for f in model._meta.concrete_fields if f.name not in VOLATILE]
        snapshot[model.__name__] = list(model.objects.order_by("pk").values_list(*fields))
    snapshot["emails"] = [(m.subject, tuple(m.to)) for m in mail.outbox]
    try:
        snapshot["media"] = sorted(media.storage().listdir(media.FOLDER)[1])
    except FileNotFoundError:
        snapshot["media"] = []
    try:
        parts = sorted(archive.storage().listdir(archive.FOLDER)[1])
    except FileNotFoundError:
        parts = []
    snapshot["usage archive"] = [(name, archive.storage().open(f"{archive.FOLDER}/{name}").read()) for name in parts]
    return snapshot


def run_schedule() -> None:
    for entry in settings.CELERY_BEAT_SCHEDULE.values():
        if entry["task"] not in COVERED_ELSEWHERE:
            import_string(entry["task"]).delay()  # eager in tests: runs here, now


def org(name: str) -> Organization:
    organization = organization_create(name=name, slug=name)
    owner = User.objects.create_user(username=f"{name}-owner", email=f"owner@{name}.example", password="pw")
    Membership.objects.create(user=owner, organization=organization, role=Role.OWNER)
    return organization


def usage(organization, when, *, price="0.25", status="ok", mode="credits"):
    return factories.usage_event(
        organization,
        status=status,
        prompt_tokens=10,
        completion_tokens=5,
        price=price,
        cost=Decimal(price) / 2,
        created_at=when,
        billing_mode=mode,
    )


@pytest.fixture
def work_for_every_task(transactional_db, settings):
    now = datetime.now(UTC)
    settings.HUB_USAGE_RETENTION_DAYS = 90
    credits, low, postpaid = org("credits"), org("low"), org("postpaid")
    services.credit_grant(organization=credits, amount=Decimal(10), idempotency_key="twice:credits")
    # An account that falls under its low-balance threshold (1) after its alert was armed (notify-low-balances).
    services.credit_grant(organization=low, amount=Decimal(5), idempotency_key="twice:low")
    notifications.alerts_open()
    services.record_usage([usage(low, now - timedelta(minutes=5), price="4.5")])
    # Charged usage yesterday, and a free refusal long past retention (roll-up, then prune).
    services.record_usage(
        [
            usage(credits, now - timedelta(days=1)),
            usage(credits, now - timedelta(days=200), price="0", status="client_error"),
        ]
    )
    # A hold left by a crashed process (release-expired-holds).
    services.hold_place(organization_id=credits.pk, request_id="lease:dead", amount=Decimal(2), ttl_seconds=60)
    CreditHold.objects.filter(request_id="lease:dead").update(expires_at=now - timedelta(minutes=1))
    # A grant that has expired (lapse-expired-grants).
    grant = grants.grant_with_expiry(
        organization=credits, amount=Decimal(3), expires_at=now + timedelta(days=1), description="promo"
    )
    CreditGrant.objects.filter(pk=grant.pk).update(expires_at=now - timedelta(hours=1))
    # Last month's usage of a postpaid organisation (issue-invoices, and its email).
    CreditAccount.objects.filter(organization=postpaid).update(billing_mode="postpaid")
    due = rollups.start_of_month(now - invoices.SETTLE_DELAY)  # the first month not yet due
    last_month = rollups.start_of_month(due - timedelta(days=1)) + timedelta(days=2)
    services.record_usage([usage(postpaid, last_month, price="1.5", mode="postpaid")])
    # A model sold below its cost (flag-prices-below-cost: a warning, nothing written).
    factories.rate(factories.catalog_model("cheap/model"), input_cost=Decimal(2), input_price=Decimal(1))
    # A generated image whose link has expired (delete-expired-media).
    media.storage().save(f"{media.FOLDER}/{int(time.time()) - 10}-expired.png", ContentFile(b"png"))
    return credits, low, postpaid


def test_every_scheduled_task_run_twice_changes_nothing_the_second_time(work_for_every_task):
    credits, _low, postpaid = work_for_every_task
    before = state()
    run_schedule()
    first = state()
    run_schedule()
    assert state() == first

    # ...and the first run did everything there was to do, so the comparison means something.
    assert first != before
    assert not CreditHold.objects.exists()
    assert CreditGrant.objects.get().lapsed_at is not None
    assert Invoice.objects.get().organization == postpaid
    assert UsageRollup.objects.filter(organization=credits).exists()
    assert not UsageRecord.objects.filter(status="client_error").exists(), "pruned after its roll-up"
    assert set(first["usage archive"]) - set(before["usage archive"]), "archived before it was deleted"
    # Only the expired image goes: other tests' images may still be within their links' lifetime.
    assert not [name for name in first["media"] if name.endswith("-expired.png")]
    assert [name for name in before["media"] if name.endswith("-expired.png")]
    emailed = {(m.to[0], "invoice" in m.subject.lower()) for m in mail.outbox}
    assert emailed == {("owner@postpaid.example", True), ("owner@low.example", False)}  # the invoice, low balance
    balance, total = (
        CreditAccount.objects.get(organization=credits).balance,
        sum(LedgerEntry.objects.filter(account__organization=credits).values_list("amount", flat=True)),
    )
    assert balance == total


def test_every_scheduled_task_is_run_here_or_by_a_run_twice_test_of_its_own():
    import importlib

    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert all(isinstance(import_string(task), Task) for task in scheduled)
    for task, test in COVERED_ELSEWHERE.items():
        assert task in scheduled
        path, name = test.split("::")
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        assert callable(getattr(module, name))
