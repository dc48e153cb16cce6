"""Postpaid invoices: one per organisation and finished month, exactly the usage's price, issued,
emailed and charged once however often (or however concurrently) the task runs; paid by Stripe's
signed webhook, which never grants credit for them."""

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest
from celery._state import _set_task_join_will_block
from django.contrib.messages import get_messages
from django.core import mail
from django.db import connection
from django.db.models import Sum
from django.test import Client
from django.utils import timezone

from accounts.models import AuditEvent, User
from accounts.services import api_key_create
from billing import invoices, modes, rollups, services
from billing.models import AutoRecharge, CreditAccount, Invoice, LedgerEntry, StripeEvent, UsageRecord
from billing.tasks import issue_invoices
from tests import factories
from tests.actors import ROLES, as_key, as_user
from tests.concurrency import at_once
from tests.fakes.server import running
from tests.fakes.stripe_server import RecordedStripe, event, fixture
from tests.stripe_fixtures import DECLINED_CARD, GOOD_CARD, card_of, deliver, wait_for

postgres_only = pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks need PostgreSQL")

NOW = MONTH = EARLIER = NEXT = None  # set by _clock
CENT = Decimal("0.01")


@pytest.fixture(autouse=True)
def _clock():
    """The clock read at each test's start, not when the module was collected: a run that crosses the end of a
    month UTC would otherwise invoice the wrong one."""
    global NOW, MONTH, EARLIER, NEXT
    NOW = datetime.now(UTC)
    # The last month the task may invoice now (a month is due an hour after it ends), and the one before.
    MONTH = rollups.start_of_month(rollups.start_of_month(NOW - invoices.SETTLE_DELAY) - timedelta(days=1))
    EARLIER = rollups.start_of_month(MONTH - timedelta(days=1))
    NEXT = rollups.next_month(MONTH)


_n = iter(range(1, 10**9))


def spent(
    org, when, *, model="openai/gpt-4o-mini", price="0.0012345678", cost="0.0006", mode="postpaid", key=None, **fields
):
    """A usage event as the gateway hands it over; charged in the ledger only in credits mode."""
    n = next(_n)
    fields = {"prompt_tokens": 100 + n % 11, "completion_tokens": 30 + n % 7, **fields}
    return factories.usage_event(
        org, key=key, model_name=model, price=price, cost=cost, created_at=when, billing_mode=mode, **fields
    )


def postpaid(org, **fields):
    CreditAccount.objects.filter(organization=org).update(billing_mode="postpaid", **fields)


def a_month_of_usage(org, month=None):
    """Usage at the month's first and last instants and in between; models priced by token, image and second."""
    month = month or MONTH
    end = rollups.next_month(month)
    at = [
        month,
        month + timedelta(days=3, hours=7, minutes=59),
        month + timedelta(days=17, seconds=1),
        end - timedelta(microseconds=1),
    ]
    events = []
    for when in at:
        events += [
            spent(org, when),
            spent(org, when, model="anthropic/claude", price="0.0300000001"),
            spent(org, when, model="openai/gpt-image-1", price="0.08", unit="images", images=2),
            spent(
                org, when, model="openai/whisper-1", price="0.0012346", unit="seconds", audio_seconds=Decimal("12.345")
            ),
            spent(org, when, model="openai/gpt-4o-mini", price="0", status="client_error"),  # refused: free
        ]
    services.record_usage(events)


def raw(org, since, until):
    return UsageRecord.objects.filter(organization=org, created_at__gte=since, created_at__lt=until)


def raw_lines(org, since, until):
    lines = defaultdict(lambda: defaultdict(Decimal))
    for record in raw(org, since, until):
        line = lines[record.model_name]
        line["requests"] += 1
        for name in ("prompt_tokens", "completion_tokens", "images", "audio_seconds"):
            line[name] += getattr(record, name)
        line["amount"] += record.price
    return {model: dict(line) for model, line in lines.items()}


def lines_of(invoice):
    return {
        line.model_name: {name: getattr(line, name) for name in invoices.LINE_FIELDS} for line in invoice.lines.all()
    }


def run():
    return issue_invoices.delay().get()


def ledger_is_truth(org):
    account = CreditAccount.objects.get(organization=org)
    assert account.balance == (account.entries.aggregate(s=Sum("amount"))["s"] or 0)


# Issuing ---------------------------------------------------------------------


def test_it_invoices_a_finished_month_per_model_and_the_subtotal_is_the_raw_usage_exactly(world):
    postpaid(world.acme)
    a_month_of_usage(world.acme)
    services.record_usage([spent(world.acme, NEXT), spent(world.acme, MONTH - timedelta(microseconds=1))])

    assert run() == 2  # this month and the one before (its single request)

    invoice = Invoice.objects.get(organization=world.acme, period_start=MONTH)
    expected = raw(world.acme, MONTH, NEXT).aggregate(s=Sum("price"))["s"]
    assert invoice.subtotal == expected and sum(invoice.lines.values_list("amount", flat=True)) == expected
    assert invoice.total == expected.quantize(CENT, rounding=ROUND_HALF_UP) and invoice.total != invoice.subtotal
    wanted = {m: line for m, line in raw_lines(world.acme, MONTH, NEXT).items() if line["amount"]}
    assert lines_of(invoice) == wanted
    assert lines_of(invoice)["openai/gpt-4o-mini"]["requests"] == 8, "a refused request is counted, at no price"
    assert (invoice.status, invoice.currency, invoice.period_end) == ("open", "usd", NEXT)
    assert invoice.number == f"HUB-{MONTH:%Y-%m}-0001" and invoice.issued_at and not invoice.paid_at
    earlier = Invoice.objects.get(organization=world.acme, period_start=EARLIER)
    assert earlier.subtotal == Decimal("0.0012345678") and earlier.number == f"HUB-{EARLIER:%Y-%m}-0001"
    assert not LedgerEntry.objects.filter(kind="usage").exists(), "postpaid usage never touches the ledger"
    assert AuditEvent.objects.filter(action="invoice.issue", organization=world.acme).count() == 2
    ledger_is_truth(world.acme)


def test_the_rollups_are_brought_up_to_date_before_a_month_is_invoiced(world):
    postpaid(world.acme)
    a_month_of_usage(world.acme)
    rollups.roll_up()
    services.record_usage([spent(world.acme, MONTH + timedelta(days=20), price="5")])  # a late batch

    run()

    assert (
        Invoice.objects.get(period_start=MONTH).subtotal == raw(world.acme, MONTH, NEXT).aggregate(s=Sum("price"))["s"]
    )


def test_numbers_run_in_sequence_across_organisations(world):
    postpaid(world.acme)
    postpaid(world.globex)
    services.record_usage([spent(world.acme, MONTH + timedelta(days=1)), spent(world.globex, MONTH)])
    run()
    numbers = sorted(Invoice.objects.values_list("number", flat=True))
    assert numbers == [f"HUB-{MONTH:%Y-%m}-0001", f"HUB-{MONTH:%Y-%m}-0002"]


def test_credits_and_internal_organisations_and_unfinished_months_are_not_invoiced(world, settings):
    CreditAccount.objects.filter(organization=world.globex).update(billing_mode="internal")
    services.record_usage([spent(world.acme, MONTH, mode="credits"), spent(world.globex, MONTH, mode="internal")])
    postpaid(world.acme)  # now postpaid, with nothing unpaid: its month was charged in the ledger
    current = rollups.start_of_month(NOW - invoices.SETTLE_DELAY)
    services.record_usage([spent(world.acme, current)])

    assert run() == 0
    assert not Invoice.objects.exists()
    assert LedgerEntry.objects.filter(kind="usage").count() == 1


def test_a_month_of_free_usage_only_is_not_invoiced(world):
    postpaid(world.acme)
    services.record_usage([spent(world.acme, MONTH, price="0"), spent(world.acme, MONTH, price="0")])
    assert run() == 0 and not Invoice.objects.exists()


def test_usage_under_half_a_cent_is_invoiced_with_nothing_due(world):
    postpaid(world.acme)
    services.record_usage([spent(world.acme, MONTH, price="0.0049999999")])
    run()
    invoice = Invoice.objects.get()
    assert (invoice.subtotal, invoice.total, invoice.status) == (Decimal("0.0049999999"), 0, "paid")


def switch(org, mode, at, monkeypatch):
    """An operator changes the organisation's billing mode at `at`."""
    with monkeypatch.context() as m:
        m.setattr(timezone, "now", lambda: at)
        modes.billing_mode_set(account=CreditAccount.objects.get(organization=org), mode=mode)


def test_a_switch_from_credits_mid_month_bills_only_the_postpaid_requests(world):
    switch_at = MONTH + timedelta(days=10, hours=5, minutes=30)
    before = [
        spent(world.acme, MONTH + timedelta(days=2), mode="credits", price="0.4"),
        spent(world.acme, switch_at - timedelta(minutes=10), mode="credits", price="0.3"),
    ]  # the switch's hour
    after = [
        spent(world.acme, switch_at + timedelta(minutes=1), mode="credits", price="0.2"),  # in flight at the switch
        spent(world.acme, switch_at + timedelta(minutes=2), price="0.0700000001"),
        spent(world.acme, MONTH + timedelta(days=20), price="1.25", model="anthropic/claude"),
    ]
    services.record_usage(before + after)
    postpaid(world.acme)

    run()

    invoice = Invoice.objects.get()
    assert invoice.subtotal == Decimal("1.3200000001"), "only the postpaid requests"
    assert {m: line["requests"] for m, line in lines_of(invoice).items()} == {
        "openai/gpt-4o-mini": 1,
        "anthropic/claude": 1,
    }
    assert CreditAccount.objects.get(organization=world.acme).balance == Decimal(10) - Decimal("0.9")
    ledger_is_truth(world.acme)


def test_a_switch_from_internal_mid_month_bills_the_requests_made_in_postpaid_mode(world, monkeypatch):
    switch_at = MONTH + timedelta(days=10, hours=5, minutes=30)
    CreditAccount.objects.filter(organization=world.acme).update(billing_mode="internal")
    services.record_usage([spent(world.acme, switch_at - timedelta(hours=1), mode="internal", price="9")])
    switch(world.acme, "postpaid", switch_at, monkeypatch)
    services.record_usage(
        [
            spent(world.acme, switch_at + timedelta(minutes=1), price="0.5"),
            spent(world.acme, NEXT - timedelta(seconds=1), price="0.25"),
        ]
    )
    run()
    assert Invoice.objects.get().subtotal == Decimal("0.75")


def test_an_organisation_that_stopped_being_postpaid_is_invoiced_for_its_postpaid_requests(world, monkeypatch):
    until = MONTH + timedelta(days=5, hours=2)
    postpaid(world.acme)
    services.record_usage([spent(world.acme, MONTH + timedelta(days=1), price="2")])
    switch(world.acme, "internal", until, monkeypatch)
    services.record_usage([spent(world.acme, until + timedelta(hours=1), mode="internal", price="3")])
    run()
    assert Invoice.objects.get().subtotal == Decimal("2")


def test_a_stint_in_internal_mode_is_not_billed_when_the_organisation_returns_to_postpaid(world, monkeypatch):
    """Postpaid, internal from the 10th, postpaid again from the 20th, all before the month is invoiced."""
    postpaid(world.acme)
    services.record_usage([spent(world.acme, MONTH + timedelta(days=5), price="1")])
    switch(world.acme, "internal", MONTH + timedelta(days=10), monkeypatch)
    services.record_usage([spent(world.acme, MONTH + timedelta(days=15), mode="internal", price="9")])
    switch(world.acme, "postpaid", MONTH + timedelta(days=20), monkeypatch)
    services.record_usage([spent(world.acme, MONTH + timedelta(days=25), price="0.5")])

    run()

    invoice = Invoice.objects.get()
    assert invoice.subtotal == Decimal("1.5") and lines_of(invoice)["openai/gpt-4o-mini"]["requests"] == 2
    assert sorted(raw(world.acme, MONTH, NEXT).values_list("billing_mode", flat=True)) == [
        "internal",
        "postpaid",
        "postpaid",
    ]


def test_a_hub_switched_from_internal_to_postpaid_does_not_bill_its_internal_past(world, settings):
    settings.HUB_BILLING_MODE = "internal"
    # The organisation has no mode of its own: the gateway hands events over with an empty mode.
    services.record_usage(
        [
            spent(world.acme, EARLIER + timedelta(days=3), mode="", price="4"),
            spent(world.acme, MONTH + timedelta(days=3), mode="", price="5"),
        ]
    )
    settings.HUB_BILLING_MODE = "postpaid"
    services.record_usage([spent(world.acme, MONTH + timedelta(days=20), mode="", price="0.75")])

    run()

    invoice = Invoice.objects.get()
    assert (invoice.period_start, invoice.subtotal) == (MONTH, Decimal("0.75"))
    assert set(
        UsageRecord.objects.filter(organization=world.acme, price__gt=1).values_list("billing_mode", flat=True)
    ) == {"internal"}


def test_a_hub_switched_from_postpaid_to_credits_still_bills_its_last_postpaid_month(world, settings):
    settings.HUB_BILLING_MODE = "postpaid"
    services.record_usage([spent(world.acme, MONTH + timedelta(days=3), mode="", price="5")])
    settings.HUB_BILLING_MODE = "credits"

    run()

    invoice = Invoice.objects.get()
    assert (invoice.organization, invoice.period_start, invoice.subtotal) == (world.acme, MONTH, Decimal("5"))
    assert run() == 0


def test_a_switch_inside_an_hour_bills_exactly_the_requests_made_in_postpaid_mode(world, monkeypatch):
    hour = MONTH + timedelta(days=10, hours=5)
    # Acme: postpaid, then internal from 05:59:50; a process whose cached key still says postpaid
    # serves one more request at 06:00:10.
    postpaid(world.acme)
    services.record_usage([spent(world.acme, hour + timedelta(minutes=10), price="1")])
    switch(world.acme, "internal", hour + timedelta(minutes=59, seconds=50), monkeypatch)
    services.record_usage(
        [
            spent(world.acme, hour + timedelta(minutes=59, seconds=55), mode="internal", price="9"),
            spent(world.acme, hour + timedelta(hours=1, seconds=10), price="0.25"),
        ]
    )
    # Globex: internal, then postpaid from 05:30.
    CreditAccount.objects.filter(organization=world.globex).update(billing_mode="internal")
    services.record_usage([spent(world.globex, hour + timedelta(minutes=10), mode="internal", price="8")])
    switch(world.globex, "postpaid", hour + timedelta(minutes=30), monkeypatch)
    services.record_usage([spent(world.globex, hour + timedelta(minutes=31), price="0.5")])

    run()

    assert Invoice.objects.get(organization=world.acme).subtotal == Decimal("1.25")
    assert Invoice.objects.get(organization=world.globex).subtotal == Decimal("0.5")


def test_usage_recorded_before_records_kept_their_mode_is_never_invoiced(world):
    postpaid(world.acme)
    services.record_usage([spent(world.acme, MONTH + timedelta(days=3), price="5")])
    UsageRecord.objects.filter(organization=world.acme).update(billing_mode="")  # as the migration left them
    assert run() == 0 and not Invoice.objects.exists()


def test_a_record_keeps_the_mode_it_ran_in(world, settings):
    settings.HUB_BILLING_MODE = "postpaid"
    services.record_usage(
        [
            spent(world.acme, MONTH, mode=""),
            spent(world.acme, MONTH, mode="internal"),
            spent(world.acme, MONTH, mode="credits"),
        ]
    )
    settings.HUB_BILLING_MODE = "internal"
    assert sorted(UsageRecord.objects.filter(created_at=MONTH).values_list("billing_mode", flat=True)) == [
        "credits",
        "internal",
        "postpaid",
    ]


def test_running_the_task_twice_issues_and_emails_once(world, mailoutbox):
    postpaid(world.acme)
    a_month_of_usage(world.acme)

    assert run() == 1
    assert run() == 0

    invoice = Invoice.objects.get()
    assert sorted(m.to[0] for m in mailoutbox) == ["billing@example.com", "owner@example.com"]
    message = mailoutbox[0]
    assert invoice.number in message.subject and "Acme" in message.subject
    total = f"{invoice.total:,.2f}"
    assert total in message.subject and f"Total: {total} USD" in message.body
    assert f"/manage/v1/orgs/acme/invoices/{invoice.number}/print" in message.body
    assert invoice.notified_at is not None


def test_the_email_link_is_absolute_with_a_public_url(world, mailoutbox, settings):
    settings.HUB_PUBLIC_URL = "https://hub.example.com/"
    postpaid(world.acme)
    services.record_usage([spent(world.acme, MONTH, price="3")])
    run()
    assert (
        f"https://hub.example.com/manage/v1/orgs/acme/invoices/{Invoice.objects.get().number}/print"
        in mailoutbox[0].body
    )


def test_an_email_that_fails_is_sent_by_the_next_run(world, mailoutbox, monkeypatch):
    postpaid(world.acme)
    services.record_usage([spent(world.acme, MONTH, price="3")])

    def down(*args, **kwargs):
        raise ConnectionRefusedError("smtp is down")

    monkeypatch.setattr("django.core.mail.backends.locmem.EmailBackend.send_messages", down)
    run()
    assert Invoice.objects.get().notified_at is None and not mailoutbox
    monkeypatch.undo()
    run()
    run()
    assert len(mailoutbox) == 2


@postgres_only
def test_concurrent_runs_issue_one_invoice_per_month_and_email_it_once(world, transactional_db, mailoutbox):
    postpaid(world.acme)
    postpaid(world.globex)
    a_month_of_usage(world.acme)
    a_month_of_usage(world.acme, EARLIER)
    a_month_of_usage(world.globex)
    try:
        results = at_once(*[issue_invoices] * 4)
    finally:
        # Eager subtasks in threads race on Celery's process-wide "inside a task" flag
        # (Task.apply sets and restores it): put it back for the tests that follow.
        _set_task_join_will_block(False)

    assert sum(results) == 3
    assert Invoice.objects.count() == 3
    assert sorted(Invoice.objects.filter(period_start=MONTH).values_list("number", flat=True)) == [
        f"HUB-{MONTH:%Y-%m}-0001",
        f"HUB-{MONTH:%Y-%m}-0002",
    ]
    # Acme's two invoices to its owner and billing member, Globex's to its owner: once each.
    sent = sorted(m.to[0] for m in mail.outbox if "invoice" in m.subject)
    assert sent == sorted(["owner@example.com", "billing@example.com"] * 2 + ["outsider@example.com"])
    for invoice in Invoice.objects.all():
        assert (
            invoice.subtotal
            == raw(invoice.organization, invoice.period_start, invoice.period_end).aggregate(s=Sum("price"))["s"]
        )


@postgres_only
def test_invoices_of_two_organisations_issued_at_once_get_their_own_numbers(world, transactional_db):
    postpaid(world.acme)
    postpaid(world.globex)
    services.record_usage([spent(world.acme, MONTH, price="3"), spent(world.globex, MONTH, price="4")])
    rollups.roll_up()
    issued = at_once(
        *[
            lambda org=org: invoices.invoice_issue(organization_id=org.pk, period_start=MONTH)
            for org in (world.acme, world.globex)
        ]
    )
    assert None not in issued
    assert sorted(i.number for i in issued) == [f"HUB-{MONTH:%Y-%m}-0001", f"HUB-{MONTH:%Y-%m}-0002"]


def test_a_month_is_invoiced_once_even_outside_the_task(world):
    postpaid(world.acme)
    services.record_usage([spent(world.acme, MONTH, price="3")])
    rollups.roll_up()
    first = invoices.invoice_issue(organization_id=world.acme.pk, period_start=MONTH)
    assert first is not None
    assert invoices.invoice_issue(organization_id=world.acme.pk, period_start=MONTH) is None
    assert Invoice.objects.count() == 1


# Seeing invoices -------------------------------------------------------------


@pytest.fixture
def issued(world):
    postpaid(world.acme)
    a_month_of_usage(world.acme)
    postpaid(world.globex)
    services.record_usage([spent(world.globex, MONTH, model="globex-secret-model", price="7")])
    run()
    return Invoice.objects.get(organization=world.acme)


@pytest.mark.parametrize("role", ROLES)
def test_owners_and_billing_members_see_the_printable_invoice(world, issued, role):
    response = as_user(getattr(world, role)).get(f"/manage/v1/orgs/acme/invoices/{issued.number}/print")
    if role not in ("owner", "billing"):
        assert response.status_code == 403
        return
    assert response.status_code == 200 and response["content-type"].startswith("text/html")
    page = response.content.decode()
    for text in (
        issued.number,
        "Acme",
        "anthropic/claude",
        "openai/gpt-image-1",
        "openai/whisper-1",
        f"{issued.total:,.2f} USD",
        f"{issued.subtotal.normalize():f}",
        f"{MONTH:%-d %B %Y}",
        f"{NEXT - timedelta(days=1):%-d %B %Y}",
        "hub/invoice.css",  # its print styles: a file, as the Content-Security-Policy wants
    ):
        assert text in page, text
    assert "globex" not in page.lower()
    assert "@media print" in (Path(__file__).resolve().parent.parent / "static/hub/invoice.css").read_text()


def test_another_organisations_invoice_is_not_found(world, issued):
    globex_invoice = Invoice.objects.get(organization=world.globex)
    owner = as_user(world.owner)
    assert owner.get(f"/manage/v1/orgs/acme/invoices/{globex_invoice.number}/print").status_code == 404
    assert owner.get(f"/manage/v1/orgs/globex/invoices/{globex_invoice.number}/print").status_code == 404
    assert owner.get(f"/manage/v1/orgs/acme/invoices/{globex_invoice.number}").status_code == 404
    assert as_user(world.outsider).get(f"/manage/v1/orgs/acme/invoices/{issued.number}/print").status_code == 404
    assert Client().get(f"/manage/v1/orgs/acme/invoices/{issued.number}/print").status_code in (401, 403)


def test_the_api_lists_an_organisations_invoices_and_details_one(world, issued):
    billing = as_user(world.billing)
    listed = billing.get("/manage/v1/orgs/acme/invoices/")
    assert listed.status_code == 200
    (row,) = listed.json()["results"]
    assert row["number"] == issued.number and Decimal(row["subtotal"]) == issued.subtotal
    assert Decimal(row["total"]) == issued.total and row["status"] == "open"
    assert row["html_url"] == f"/manage/v1/orgs/acme/invoices/{issued.number}/print"

    detail = billing.get(f"/manage/v1/orgs/acme/invoices/{issued.number}").json()
    assert {line["model"]: Decimal(line["amount"]) for line in detail["lines"]} == {
        m: line["amount"] for m, line in lines_of(issued).items()
    }
    assert as_user(world.developer).get("/manage/v1/orgs/acme/invoices/").status_code == 403
    _, raw_key = api_key_create(organization=world.acme, name="ops", scope="admin")
    assert as_key(raw_key).get("/manage/v1/orgs/acme/invoices/").status_code == 403, "a key acts as an admin"


def test_operators_open_the_invoice_from_the_admin_and_mark_it_paid(world, issued):
    browser = Client()
    operator = User.objects.create_superuser("operator", "op@example.com", "pw")
    browser.force_login(operator)
    change = browser.get(f"/admin/billing/invoice/{issued.pk}/change/").content.decode()
    assert f"/admin/billing/invoice/{issued.pk}/print/" in change
    printed = browser.get(f"/admin/billing/invoice/{issued.pk}/print/")
    assert printed.status_code == 200 and issued.number in printed.content.decode()

    response = browser.post("/admin/billing/invoice/", {"action": "mark_paid", "_selected_action": [issued.pk]})
    assert response.status_code == 302
    issued.refresh_from_db()
    assert issued.status == "paid" and issued.paid_at is not None
    assert AuditEvent.objects.filter(action="invoice.paid", actor_user=operator).exists()
    browser.post("/admin/billing/invoice/", {"action": "mark_void", "_selected_action": [issued.pk]})
    issued.refresh_from_db()
    assert issued.status == "paid", "only an open invoice is voided"


def operator_browser():
    browser = Client()
    browser.force_login(User.objects.create_superuser("operator", "op@example.com", "pw"))
    return browser


def mark_in_admin(browser, invoice, action):
    response = browser.post("/admin/billing/invoice/", {"action": action, "_selected_action": [invoice.pk]})
    assert response.status_code == 302
    return [str(m) for m in get_messages(response.wsgi_request)]


def test_an_invoice_whose_card_charge_is_in_flight_cannot_be_marked_paid_or_void(world, issued):
    browser = operator_browser()
    # Claimed by the charge task, Stripe has not answered yet.
    Invoice.objects.filter(pk=issued.pk).update(charge_started_at=timezone.now())
    with pytest.raises(invoices.PaymentInFlight):
        invoices.invoice_mark(invoice=issued, status="paid")
    said = mark_in_admin(browser, issued, "mark_paid")
    assert any(issued.number in m and "card charge is in flight" in m for m in said), said
    # Stripe answered with a payment intent; its payment_intent.succeeded has not arrived.
    Invoice.objects.filter(pk=issued.pk).update(stripe_payment_intent_id="pi_in_flight")
    said = mark_in_admin(browser, issued, "mark_void")
    assert any("pi_in_flight" in m for m in said), said
    issued.refresh_from_db()
    assert (issued.status, issued.paid_at) == ("open", None)
    assert not AuditEvent.objects.filter(action__in=["invoice.paid", "invoice.void"]).exists()

    # A charge that failed is over: the operator settles the invoice by hand.
    Invoice.objects.filter(pk=issued.pk).update(payment_error="Your card was declined.")
    mark_in_admin(browser, issued, "mark_paid")
    issued.refresh_from_db()
    assert issued.status == "paid"


def test_a_payment_for_an_invoice_already_paid_or_void_is_recorded_for_a_refund(world, issued, stripe_settings, caplog):
    globex_invoice = Invoice.objects.get(organization=world.globex)
    assert invoices.invoice_mark(invoice=issued, status="paid")  # paid outside Stripe
    assert invoices.invoice_mark(invoice=globex_invoice, status="void")

    for invoice, intent_id in ((issued, "pi_late_acme"), (globex_invoice, "pi_late_globex")):
        late = {
            "id": intent_id,
            "object": "payment_intent",
            "amount": int(invoice.total * 100),
            "amount_received": int(invoice.total * 100),
            "currency": "usd",
            "status": "succeeded",
            "metadata": {"hub_invoice": str(invoice.pk)},
        }
        assert deliver(event("payment_intent.succeeded", late)).status_code == 200

    issued.refresh_from_db()
    globex_invoice.refresh_from_db()
    assert (issued.status, issued.payment_error) == ("paid", "paid twice: refund payment intent pi_late_acme")
    assert globex_invoice.status == "void"
    assert globex_invoice.payment_error == "paid after it was voided: refund payment intent pi_late_globex"
    assert [r.levelname for r in caplog.records if "pi_late" in r.getMessage()] == ["ERROR", "ERROR"]
    assert all(o.startswith("refused") for o in StripeEvent.objects.values_list("outcome", flat=True))
    assert CreditAccount.objects.get(organization=world.acme).balance == Decimal(10)


# Charging the saved card -----------------------------------------------------


@pytest.fixture
def stripe_settings(stripe_settings):
    stripe_settings.HUB_INVOICE_AUTO_CHARGE = True
    return stripe_settings


def saved_card(org, stripe_client, card=GOOD_CARD):
    customer, method = card_of(stripe_client, card)
    return AutoRecharge.objects.create(
        organization=org, enabled=False, stripe_customer_id=customer.id, stripe_payment_method_id=method.id
    )


def test_a_charged_invoice_is_paid_by_the_webhook_and_grants_no_credit(
    world, transactional_db, stripe_client, localstripe_webhook
):
    postpaid(world.acme)
    saved_card(world.acme, stripe_client)
    a_month_of_usage(world.acme)
    services.record_usage([spent(world.acme, MONTH + timedelta(days=9), price="24.5")])

    run()
    run()

    invoice = Invoice.objects.get()
    assert invoice.stripe_payment_intent_id.startswith("pi_") and invoice.status == "open"
    intent = stripe_client.v1.payment_intents.retrieve(invoice.stripe_payment_intent_id)
    assert intent.amount == int(invoice.total * 100) and intent.metadata["hub_invoice"] == str(invoice.pk)
    assert "hub_payment" not in intent.metadata

    # localstripe signs and sends payment_intent.succeeded to the live hub.
    assert wait_for(lambda: Invoice.objects.get().status == "paid")
    invoice.refresh_from_db()
    assert invoice.paid_at is not None and not invoice.payment_error
    row = StripeEvent.objects.get(type="payment_intent.succeeded")
    assert row.outcome == f"paid {invoice.total:.2f}: invoice {invoice.number}"

    # A replay of the same event, and the same payment announced again: nothing more happens.
    assert deliver(event("payment_intent.succeeded", intent.to_dict(), event_id=row.stripe_id)).status_code == 200
    assert deliver(event("payment_intent.succeeded", intent.to_dict())).status_code == 200
    assert StripeEvent.objects.get(stripe_id=row.stripe_id).attempts == 1
    assert (
        StripeEvent.objects.exclude(stripe_id=row.stripe_id).get().outcome == f"already paid: invoice {invoice.number}"
    )
    assert CreditAccount.objects.get(organization=world.acme).balance == Decimal(10)
    assert not LedgerEntry.objects.filter(idempotency_key__startswith="stripe:").exists()
    ledger_is_truth(world.acme)


def test_a_declined_charge_leaves_the_invoice_open_and_says_why(
    world, transactional_db, stripe_client, localstripe_webhook
):
    postpaid(world.acme)
    saved_card(world.acme, stripe_client, card=DECLINED_CARD)
    services.record_usage([spent(world.acme, MONTH + timedelta(days=9), price="24.5")])

    run()

    invoice = Invoice.objects.get()
    assert invoice.status == "open" and "declined" in invoice.payment_error
    assert wait_for(
        lambda: StripeEvent.objects.filter(type="payment_intent.payment_failed", processed_at__isnull=False).exists()
    )
    run()  # not charged again
    invoice.refresh_from_db()
    assert invoice.status == "open" and "declined" in invoice.payment_error
    assert CreditAccount.objects.get(organization=world.acme).balance == Decimal(10)


def test_a_failed_payment_event_records_why_and_keeps_the_invoice_open(world, issued, stripe_settings):
    failed = {
        "id": "pi_invoice_failed",
        "object": "payment_intent",
        "amount": int(issued.total * 100),
        "currency": "usd",
        "status": "requires_payment_method",
        "last_payment_error": {"code": "card_declined", "message": "Your card has insufficient funds."},
        "metadata": {"hub_invoice": str(issued.pk)},
    }
    assert deliver(event("payment_intent.payment_failed", failed)).status_code == 200
    issued.refresh_from_db()
    assert issued.status == "open" and issued.payment_error == "Your card has insufficient funds."


def test_a_succeeded_event_for_the_wrong_amount_does_not_pay_the_invoice(world, issued, stripe_settings):
    wrong = {
        "id": "pi_invoice_wrong",
        "object": "payment_intent",
        "amount": 100,
        "amount_received": 100,
        "currency": "usd",
        "status": "succeeded",
        "metadata": {"hub_invoice": str(issued.pk)},
    }
    assert deliver(event("payment_intent.succeeded", wrong)).status_code == 200
    issued.refresh_from_db()
    assert issued.status == "open"
    assert StripeEvent.objects.get().outcome.startswith("refused: paid 1.00 usd")
    assert CreditAccount.objects.get(organization=world.acme).balance == Decimal(10)


@pytest.fixture
def recorded_stripe(stripe_settings):
    with running(RecordedStripe()) as server:
        stripe_settings.STRIPE_API_BASE = server.url
        yield server


def test_the_charge_carries_a_key_derived_from_the_invoice_and_is_asked_once(world, recorded_stripe):
    postpaid(world.acme)
    AutoRecharge.objects.create(organization=world.acme, stripe_customer_id="cus_1", stripe_payment_method_id="pm_1")
    services.record_usage([spent(world.acme, MONTH, price="12.345")])

    run()
    run()

    invoice = Invoice.objects.get()
    (sent,) = recorded_stripe.requests
    assert sent["path"] == "/v1/payment_intents"
    assert sent["headers"]["Idempotency-Key"] == f"hub-invoice-{invoice.key}-intent"
    assert {
        k: sent["form"][k]
        for k in ("amount", "currency", "customer", "payment_method", "off_session", "metadata[hub_invoice]")
    } == {
        "amount": "1235",
        "currency": "usd",
        "customer": "cus_1",
        "payment_method": "pm_1",
        "off_session": "true",
        "metadata[hub_invoice]": str(invoice.pk),
    }
    assert "metadata[hub_payment]" not in sent["form"]
    # Stripe refused outright (here: no such route): the invoice stays open with the reason.
    assert invoice.status == "open" and invoice.payment_error


@postgres_only
def test_concurrent_charges_of_one_invoice_ask_stripe_once(world, transactional_db, recorded_stripe):
    postpaid(world.acme)
    AutoRecharge.objects.create(organization=world.acme, stripe_customer_id="cus_1", stripe_payment_method_id="pm_1")
    services.record_usage([spent(world.acme, MONTH, price="12.345")])
    invoices.issue_due()
    invoice = Invoice.objects.get()
    results = at_once(*[lambda: invoices.invoice_charge(invoice_id=invoice.pk)] * 4)
    assert len(results) == 4 and len(recorded_stripe.requests) == 1


def test_a_charge_whose_call_never_answered_is_asked_again_with_the_same_key(world, recorded_stripe):
    postpaid(world.acme)
    AutoRecharge.objects.create(organization=world.acme, stripe_customer_id="cus_1", stripe_payment_method_id="pm_1")
    services.record_usage([spent(world.acme, MONTH, price="3")])
    invoices.issue_due()
    invoice = Invoice.objects.get()
    # A run that crashed after claiming the charge, before Stripe answered.
    Invoice.objects.filter(pk=invoice.pk).update(charge_started_at=timezone.now() - timedelta(hours=1))
    run()
    assert [r["headers"]["Idempotency-Key"] for r in recorded_stripe.requests] == [f"hub-invoice-{invoice.key}-intent"]
    # Past the day Stripe keeps a key, asking again could charge twice: it is left to an operator.
    Invoice.objects.filter(pk=invoice.pk).update(charge_started_at=timezone.now() - timedelta(days=2), payment_error="")
    run()
    assert len(recorded_stripe.requests) == 1


@pytest.mark.parametrize(
    "setting, flag, charged", [(False, None, False), (False, True, True), (True, False, False), (True, None, True)]
)
def test_auto_charge_follows_the_organisations_flag_else_the_setting(
    world, recorded_stripe, settings, setting, flag, charged
):
    settings.HUB_INVOICE_AUTO_CHARGE = setting
    postpaid(world.acme, invoice_auto_charge=flag)
    AutoRecharge.objects.create(organization=world.acme, stripe_customer_id="cus_1", stripe_payment_method_id="pm_1")
    services.record_usage([spent(world.acme, MONTH, price="3")])
    run()
    assert bool(recorded_stripe.requests) is charged


def test_a_total_under_stripes_minimum_charge_is_left_open(world, recorded_stripe):
    postpaid(world.acme)
    AutoRecharge.objects.create(organization=world.acme, stripe_customer_id="cus_1", stripe_payment_method_id="pm_1")
    services.record_usage([spent(world.acme, MONTH, price="0.49")])
    run()
    assert Invoice.objects.get().status == "open" and not recorded_stripe.requests


def test_without_a_saved_card_an_invoice_is_not_charged(world, recorded_stripe, mailoutbox):
    postpaid(world.acme)
    services.record_usage([spent(world.acme, MONTH, price="3")])
    run()
    assert not recorded_stripe.requests
    assert "It is due now." in mailoutbox[0].body


def test_a_charge_that_never_answered_within_stripes_key_lifetime_says_why(world, recorded_stripe):
    postpaid(world.acme)
    AutoRecharge.objects.create(organization=world.acme, stripe_customer_id="cus_1", stripe_payment_method_id="pm_1")
    services.record_usage([spent(world.acme, MONTH, price="3")])
    invoices.issue_due()
    invoice = Invoice.objects.get()
    started = timezone.now() - timedelta(days=2)
    Invoice.objects.filter(pk=invoice.pk).update(charge_started_at=started)

    run()
    run()

    invoice.refresh_from_db()
    assert not recorded_stripe.requests, "asking again could charge twice"
    assert invoice.status == "open" and "No answer from Stripe" in invoice.payment_error
    assert f"hub_invoice={invoice.pk}" in invoice.payment_error
    # Now the operator may settle it by hand, having looked in Stripe.
    assert invoices.invoice_mark(invoice=invoice, status="void")


# Refunds and disputes of an invoice's payment ------------------------------------


@pytest.fixture
def due(world):
    """An open invoice of 24.50 USD."""
    postpaid(world.acme)
    services.record_usage([spent(world.acme, MONTH + timedelta(days=9), price="24.5")])
    run()
    return Invoice.objects.get(total=Decimal("24.5"))


def paid_by_card(invoice, stripe_client):
    """The invoice charged on localstripe, as invoice_charge does, and paid by its signed event."""
    customer, method = card_of(stripe_client)
    intent = stripe_client.v1.payment_intents.create(
        params={
            "amount": int(invoice.total * 100),
            "currency": "usd",
            "customer": customer.id,
            "payment_method": method.id,
            "confirm": True,
            "off_session": True,
            "metadata": {"hub_invoice": str(invoice.pk)},
        }
    )
    Invoice.objects.filter(pk=invoice.pk).update(charge_started_at=timezone.now(), stripe_payment_intent_id=intent.id)
    assert deliver(event("payment_intent.succeeded", intent.to_dict())).status_code == 200
    invoice.refresh_from_db()
    assert invoice.status == "paid"
    return intent


def refund(stripe_client, intent, cents) -> dict:
    made = stripe_client.v1.refunds.create(params={"payment_intent": intent.id, "amount": cents})
    return event("charge.refunded", stripe_client.v1.charges.retrieve(made.charge).to_dict())


def dispute_of(intent, status="needs_response") -> dict:
    charge = intent.latest_charge if isinstance(intent.latest_charge, str) else intent.latest_charge.id
    return fixture("dispute") | {
        "id": f"du_{intent.id}",
        "charge": charge,
        "payment_intent": intent.id,
        "amount": intent.amount,
        "status": status,
    }


def no_credit_moved(org):
    assert CreditAccount.objects.get(organization=org).balance == Decimal(10)
    assert not LedgerEntry.objects.filter(idempotency_key__startswith="stripe:").exists()
    ledger_is_truth(org)


def test_a_refund_of_an_invoices_payment_is_noted_and_a_full_one_reopens_it(world, due, stripe_settings, stripe_client):
    intent = paid_by_card(due, stripe_client)
    cents = int(due.total * 100)

    partial = refund(stripe_client, intent, 100)
    assert deliver(partial).status_code == 200
    due.refresh_from_db()
    assert (due.status, due.amount_refunded) == ("paid", Decimal("1"))
    assert f"Refunded 1.00 of {due.total:.2f} USD" in due.payment_error

    assert deliver(refund(stripe_client, intent, cents - 100)).status_code == 200
    assert deliver(partial).status_code == 200  # a replay
    due.refresh_from_db()
    assert (due.status, due.paid_at, due.amount_refunded) == ("open", None, due.total)
    assert "Refunded in full" in due.payment_error
    assert StripeEvent.objects.filter(type="charge.refunded").exclude(outcome__contains=due.number).count() == 0
    assert AuditEvent.objects.filter(action="invoice.refunded", organization=world.acme).exists()
    no_credit_moved(world.acme)
    # Not charged again by itself; the operator voids it or settles it by hand.
    AutoRecharge.objects.create(organization=world.acme, stripe_customer_id="cus_1", stripe_payment_method_id="pm_1")
    assert due.pk not in invoices.chargeable()
    assert invoices.invoice_mark(invoice=due, status="void")


def test_a_dispute_reopens_an_invoice_and_a_won_one_pays_it_again(world, due, stripe_settings, stripe_client):
    intent = paid_by_card(due, stripe_client)
    opened = event("charge.dispute.created", dispute_of(intent))
    assert deliver(opened).status_code == 200
    due.refresh_from_db()
    assert (due.status, due.paid_at, due.dispute_status) == ("open", None, "needs_response")
    assert "disputed" in due.payment_error
    with pytest.raises(invoices.PaymentInFlight):  # the dispute may yet be won: not by hand meanwhile
        invoices.invoice_mark(invoice=due, status="paid")

    won = event("charge.dispute.closed", dispute_of(intent, "won"))
    assert deliver(won).status_code == 200
    assert deliver(won).status_code == 200
    assert deliver(event("charge.dispute.created", dispute_of(intent))).status_code == 200  # late, again
    due.refresh_from_db()
    assert (due.status, due.dispute_status) == ("paid", "won") and due.paid_at is not None
    assert "won" in due.payment_error
    no_credit_moved(world.acme)


def test_a_lost_dispute_leaves_the_invoice_due(world, due, stripe_settings, stripe_client):
    intent = paid_by_card(due, stripe_client)
    deliver(event("charge.dispute.created", dispute_of(intent)))
    deliver(event("charge.dispute.closed", dispute_of(intent, "lost")))
    due.refresh_from_db()
    assert (due.status, due.dispute_status) == ("open", "lost") and "lost" in due.payment_error
    assert AuditEvent.objects.filter(action="invoice.disputed", organization=world.acme).exists()
    no_credit_moved(world.acme)
    assert invoices.invoice_mark(invoice=due, status="void")


def test_a_dispute_closed_before_it_was_opened_leaves_a_won_invoice_paid(world, due, stripe_settings, stripe_client):
    intent = paid_by_card(due, stripe_client)
    deliver(event("charge.dispute.closed", dispute_of(intent, "won")))
    deliver(event("charge.dispute.created", dispute_of(intent)))
    due.refresh_from_db()
    assert (due.status, due.dispute_status) == ("paid", "won")
    no_credit_moved(world.acme)


def test_a_refund_that_arrives_before_the_payment_leaves_the_invoice_open(world, due, stripe_settings, stripe_client):
    customer, method = card_of(stripe_client)
    intent = stripe_client.v1.payment_intents.create(
        params={
            "amount": 2450,
            "currency": "usd",
            "customer": customer.id,
            "payment_method": method.id,
            "confirm": True,
            "off_session": True,
            "metadata": {"hub_invoice": str(due.pk)},
        }
    )
    Invoice.objects.filter(pk=due.pk).update(charge_started_at=timezone.now(), stripe_payment_intent_id=intent.id)

    assert deliver(refund(stripe_client, intent, 2450)).status_code == 200
    assert deliver(event("payment_intent.succeeded", intent.to_dict())).status_code == 200

    due.refresh_from_db()
    assert (due.status, due.amount_refunded) == ("open", Decimal("24.5")) and "Refunded in full" in due.payment_error
    assert StripeEvent.objects.get(type="payment_intent.succeeded").outcome.startswith("not paid")
    no_credit_moved(world.acme)
