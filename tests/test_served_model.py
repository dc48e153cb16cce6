"""Usage is filed under the model that served: a fallback's usage is priced at the fallback's rate, so its
records, rollups, invoice lines, totals and ledger entries name the fallback; the record keeps what was asked."""

from datetime import timedelta
from decimal import Decimal

import openai
import pytest
from django.utils import timezone

from accounts.services import api_key_create
from billing import invoices, rollups
from billing.models import CreditAccount, LedgerEntry, UsageRecord, UsageRollup
from providers.models import CatalogModel
from tests import factories
from tests.actors import as_key
from tests.conftest import UPSTREAM_KEY
from tests.factories import add_model
from tests.fakes.openai_upstream import FakeOpenAI
from tests.fakes.server import server_fixture

HELLO = [{"role": "user", "content": "hello"}]


backup_server = server_fixture(lambda: FakeOpenAI(api_key=None))


def provider(name, base_url, secret):
    return factories.provider(name, preset="openai", base_url=base_url, secret=secret)


@pytest.fixture
def fallback(hub, upstream, backup_server, transactional_db):
    """`big/model` (alias `big`) always fails; its fallback `small/model` answers, at prices of its own."""
    backup_server.reset()
    add_model(
        provider("primary", upstream.base_url, UPSTREAM_KEY),
        "big/model",
        "fake-error-503",
        alias="big",
        input_price=Decimal(100),
        output_price=Decimal(200),
    )
    add_model(
        provider("backup", backup_server.base_url, "sk-backup-key-0001"),
        "small/model",
        "gpt-4o-mini",
        input_price=Decimal(7),
        output_price=Decimal(11),
    )
    CatalogModel.objects.filter(public_id="big/model").update(fallbacks=["small/model"])


def at_small_rate(usage) -> Decimal:
    return (Decimal(usage.prompt_tokens) * 7 + Decimal(usage.completion_tokens) * 11) / 10**6


def test_a_fallback_s_usage_is_recorded_rolled_up_and_invoiced_under_the_fallback(hub, organization, fallback):
    CreditAccount.objects.filter(organization=organization).update(billing_mode="postpaid")
    _, raw = api_key_create(organization=organization, name="app")
    client = openai.OpenAI(base_url=f"{hub.url}/v1", api_key=raw, max_retries=0)
    replies = [client.chat.completions.create(model=name, messages=HELLO) for name in ("big/model", "big")]
    replies.append(client.chat.completions.create(model="small/model", messages=HELLO))
    hub.drain()

    records = {r.model_name: r for r in UsageRecord.objects.all()}
    assert {name: r.served_model for name, r in records.items()} == {
        "big/model": "small/model",
        "big": "small/model",
        "small/model": "small/model",
    }
    for reply, name in zip(replies, ("big/model", "big", "small/model"), strict=True):
        assert records[name].price == at_small_rate(reply.usage) > 0

    now = timezone.now()
    rollups.roll_up(now=now)
    day = rollups.start_of_day(now)
    assert set(UsageRollup.objects.values_list("model_name", flat=True)) == {"small/model"}
    (line,) = invoices.invoice_lines(organization_id=organization.pk, start=day, end=day + timedelta(days=1))
    assert (line.model_name, line.requests) == ("small/model", 3)
    assert line.amount == sum(r.price for r in records.values())
    assert line.prompt_tokens == sum(r.usage.prompt_tokens for r in replies)


def test_usage_totals_go_by_the_model_that_served_and_records_show_both(hub, organization, fallback):
    _, raw = api_key_create(organization=organization, name="app")
    _, admin_key = api_key_create(organization=organization, name="admin", scope="admin")
    client = openai.OpenAI(base_url=f"{hub.url}/v1", api_key=raw, max_retries=0)
    reply = client.chat.completions.create(model="big", messages=HELLO)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="no/such-model", messages=HELLO)
    hub.drain()

    manage = as_key(admin_key)
    totals = manage.get(f"/manage/v1/orgs/{organization.slug}/usage/totals").json()
    assert {t["model"]: (t["requests"], Decimal(t["price"])) for t in totals} == {
        "small/model": (1, at_small_rate(reply.usage)),
        "no/such-model": (1, Decimal(0)),
    }
    records = manage.get(f"/manage/v1/orgs/{organization.slug}/usage/").json()["results"]
    assert {(r["model"], r["served_model"]) for r in records} == {
        ("big", "small/model"),
        ("no/such-model", "no/such-model"),
    }


def test_the_ledger_entry_names_the_model_that_served(hub, client, organization, fallback):
    client.chat.completions.create(model="big/model", messages=HELLO)
    hub.drain()
    entry = LedgerEntry.objects.get(kind=LedgerEntry.Kind.USAGE)
    assert entry.description == "chat.completions small/model"
