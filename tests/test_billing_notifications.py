"""Low-balance emails: one per fall under the threshold, to owners and billing members, none per request."""

from decimal import Decimal

import pytest

from billing import notifications, services
from billing.models import CreditAccount, LowBalanceAlert
from billing.tasks import notify_low_balances
from tests import factories

D = Decimal


def spend(organization, price, request_id):
    services.record_usage([factories.usage_event(organization, request_id=request_id, price=price)])


def run() -> int:
    return notify_low_balances.delay().get()


def recipients(mailoutbox) -> list[str]:
    return sorted(address for message in mailoutbox for address in message.to)


@pytest.fixture
def acme(world):
    """Acme has 10 credits and a member of every role; the default threshold is 1."""
    assert run() == 0  # both organisations are over the threshold: the alerts are armed
    return world.acme


def test_it_emails_owners_and_billing_members_once_when_credit_falls_under_the_threshold(acme, mailoutbox):
    spend(acme, "9.5", "req_1")
    assert run() == 2
    assert recipients(mailoutbox) == ["billing@example.com", "owner@example.com"]
    assert "Acme" in mailoutbox[0].subject and "0.5" in mailoutbox[0].subject
    assert "402" in mailoutbox[0].body

    spend(acme, "0.1", "req_2")
    assert run() == 0  # still under: no second email
    assert len(mailoutbox) == 2


def test_a_top_up_re_arms_it_and_the_next_fall_sends_again(acme, mailoutbox):
    spend(acme, "9.5", "req_1")
    run()
    services.credit_grant(organization=acme, amount=D(5), description="top-up")
    assert run() == 0
    assert LowBalanceAlert.objects.get(account__organization=acme).notified_at is None
    spend(acme, "5", "req_2")
    assert run() == 2
    assert len(mailoutbox) == 4


def test_a_top_up_that_stays_under_the_threshold_does_not_re_arm_it(acme, mailoutbox):
    spend(acme, "9.9", "req_1")
    run()
    services.credit_grant(organization=acme, amount=D("0.5"), description="small top-up")
    spend(acme, "0.2", "req_2")
    assert run() == 0
    assert len(mailoutbox) == 2


def test_a_credit_lease_given_back_does_not_re_arm_it(acme, mailoutbox):
    spend(acme, "8.5", "req_1")  # 1.5 left: over the threshold until a process leases 1 of it
    assert services.hold_place(organization_id=acme.pk, request_id="lease-1", amount=D(1), ttl_seconds=60) is None
    assert run() == 2
    services.record_usage([], releases=["lease-1"])
    assert CreditAccount.objects.get(organization=acme).available == D("1.5")
    assert run() == 0
    assert services.hold_place(organization_id=acme.pk, request_id="lease-2", amount=D(1), ttl_seconds=60) is None
    assert run() == 0
    assert len(mailoutbox) == 2


def test_each_account_may_have_its_own_threshold(acme, mailoutbox, settings):
    alert = LowBalanceAlert.objects.get(account__organization=acme)
    alert.threshold = D(20)
    alert.save()
    assert run() == 2
    assert "under 20" in mailoutbox[0].body

    settings.HUB_LOW_BALANCE_THRESHOLD = "150"  # Globex's 99 are now low too; Acme is already told
    assert run() == 1
    assert mailoutbox[2].to == ["outsider@example.com"]


def test_a_disabled_alert_sends_nothing(acme, mailoutbox):
    LowBalanceAlert.objects.filter(account__organization=acme).update(enabled=False)
    spend(acme, "9.5", "req_1")
    assert run() == 0


def test_an_organisation_without_credit_yet_is_not_told_until_it_had_some(db, mailoutbox):
    from accounts.services import organization_create
    from tests.actors import make_user

    initech = organization_create(name="Initech", owner=make_user("peter"))
    assert run() == 0
    services.credit_grant(organization=initech, amount=D(3), description="first top-up")
    assert run() == 0
    spend(initech, "2.5", "req_1")
    assert run() == 1
    assert mailoutbox[0].to == ["peter@example.com"]


def test_a_failed_send_gives_the_claim_back(acme, mailoutbox, monkeypatch):
    spend(acme, "9.5", "req_1")

    def refuse(alert):
        raise ConnectionRefusedError("smtp down")

    monkeypatch.setattr(notifications, "_send", refuse)
    assert run() == 0
    assert LowBalanceAlert.objects.get(account__organization=acme).notified_at is None
    monkeypatch.undo()
    assert run() == 2


def test_a_second_claim_of_the_same_alert_sends_nothing(acme, mailoutbox):
    spend(acme, "9.5", "req_1")
    (alert_id,) = notifications.alerts_due()
    assert notifications.alert_send(alert_id=alert_id) == 2
    assert notifications.alert_send(alert_id=alert_id) == 0
    assert len(mailoutbox) == 2


def test_internal_billing_sends_nothing(acme, mailoutbox, settings):
    spend(acme, "9.5", "req_1")
    settings.HUB_BILLING_MODE = "internal"
    assert run() == 0


def test_each_member_is_told_in_their_own_language_and_the_billing_email_in_the_sites(acme, mailoutbox):
    from accounts.models import User

    User.objects.filter(email="owner@example.com").update(language="ja")
    User.objects.filter(email="billing@example.com").update(language="zh-hans")
    CreditAccount.objects.filter(organization=acme).update(billing_email="accounts@example.com")
    spend(acme, "9.5", "req_1")
    assert run() == 3
    by_address = {message.to[0]: message for message in mailoutbox}
    assert by_address["owner@example.com"].subject.startswith("Acme: クレジットが残りわずかです（残り 0.5")
    assert "オーナー ロールのメンバー" in by_address["owner@example.com"].body
    assert "额度即将用完" in by_address["billing@example.com"].subject
    assert "402 insufficient_quota" in by_address["billing@example.com"].body
    english = by_address["accounts@example.com"]
    assert "credit is running low" in english.subject and "billing email address of Acme" in english.body
