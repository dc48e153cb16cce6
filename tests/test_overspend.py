"""The worst-case hold is a bound: attacks that made it smaller than what the provider then billed.

Each attack runs as hundreds of concurrent requests against an organisation
with credit for about one: before the fix a few got through and the balance
went far below zero (n × the output billed, a 400 KB `functions` list billed
as prompt, no cap sent and 10,000 tokens written). The bound (README, "Reserve,
then settle"): nothing, while providers write no more than the cap they are
sent and count no more prompt tokens than the hold does.
"""

import asyncio
import json
from decimal import Decimal

import httpx
import openai
import pytest
from django.db import connection
from django.db.models import Sum

from billing.models import CreditAccount, CreditHold, LedgerEntry, UsageRecord
from billing.services import credit_grant
from hub import catalogue
from providers.adapters.anthropic import request as anthropic
from providers.adapters.base import UpstreamError
from providers.adapters.bedrock import request as bedrock
from providers.models import CatalogModel
from tests import factories
from tests.factories import add_model
from tests.fakes.openai_upstream import OVERRUN_WORDS

HELLO = [{"role": "user", "content": "hello"}]
PER_MILLION = Decimal(1000)  # 0.001 a token, in and out


def concurrency() -> int:
    # SQLite takes one writer at a time, so hundreds of requests only queue behind each other there; the race
    # the hold must win is PostgreSQL's, where the full 300 run.
    return 300 if connection.vendor == "postgresql" else 30


@pytest.fixture
def mallory(transactional_db):
    """An organisation whose key is used by the attacker; its credit is set by each test."""
    organization, _, raw = factories.organization_with_key("Mallory", key_name="attack")
    organization.raw_key = raw
    return organization


@pytest.fixture
def uncapped(openai_provider):
    """A model with no output cap of its own (as the shipped xai, mistral and openrouter catalogues), whose
    upstream writes 10,000 tokens unless it is sent a cap."""
    return add_model(
        openai_provider,
        "openai/long",
        "fake-long",
        input_cost=Decimal(0),
        output_cost=Decimal(0),
        input_price=PER_MILLION,
        output_price=PER_MILLION,
    )


def balance(organization) -> Decimal:
    return CreditAccount.objects.get(organization=organization).balance


def assert_settled(organization):
    account = CreditAccount.objects.get(organization=organization)
    assert account.balance == LedgerEntry.objects.filter(account=account).aggregate(s=Sum("amount"))["s"]
    assert account.held == 0 and not CreditHold.objects.exists()


def attack(hub, raw_key: str, requests: int, **kwargs) -> list:
    """`requests` concurrent chat completions with `kwargs`: "ok" or the status of each."""
    client = openai.AsyncOpenAI(
        base_url=f"{hub.url}/v1",
        api_key=raw_key,
        max_retries=0,
        timeout=60,
        http_client=openai.DefaultAsyncHttpxClient(limits=httpx.Limits(max_connections=requests)),
    )

    async def one():
        try:
            answer = await client.chat.completions.create(model="openai/long", messages=HELLO, **kwargs)
            if kwargs.get("stream"):
                async for _ in answer:
                    pass
            return "ok"
        except openai.APIStatusError as error:
            return error.status_code

    async def scenario():
        try:
            return await asyncio.gather(*[one() for _ in range(requests)])
        finally:
            await client.close()

    return asyncio.run(scenario())


# 400 functions of 1 KB each: billed as prompt by the provider, left out of the hold before.
BIG_FUNCTIONS = [
    {"name": f"f{i}", "description": "d" * 1000, "parameters": {"type": "object", "properties": {}}} for i in range(400)
]


@pytest.mark.parametrize(
    "credit, kwargs",
    [
        ("0.15", {"max_tokens": 10, "n": 128}),
        ("0.15", {"max_tokens": 10, "n": 128, "stream": True}),
        ("0.15", {"max_tokens": 10, "extra_body": {"functions": BIG_FUNCTIONS}}),
        ("5", {}),  # no max_tokens: 4,096 held, and before the fix no cap sent
    ],
    ids=["n", "n-streaming", "functions", "no-max-tokens"],
)
def test_concurrent_attacks_never_take_the_balance_below_the_bound(hub, upstream, mallory, uncapped, credit, kwargs):
    credit_grant(organization=mallory, amount=Decimal(credit))
    results = attack(hub, mallory.raw_key, concurrency(), **kwargs)
    assert set(results) <= {"ok", 402}, results
    hub.drain()
    assert_settled(mallory)
    assert balance(mallory) >= 0, f"{results.count('ok')} answered, balance {balance(mallory)}"
    for request in upstream.requests:  # every request that went out carried the cap credit was held for
        assert request.json["max_completion_tokens"] <= kwargs.get("max_tokens", 4096)
    if not kwargs:
        assert results.count("ok") == 1, "the credit covers one request of 4,096 tokens"


def test_a_request_without_max_tokens_is_sent_the_cap_it_holds_for(client, hub, upstream, uncapped):
    # fake-long writes 10,000 tokens when it is sent no cap.
    client.chat.completions.create(model="openai/long", messages=HELLO)  # no cap of its own: 4,096
    CatalogModel.objects.filter(public_id="openai/long").update(max_output_tokens=700)
    catalogue.invalidate()
    client.chat.completions.create(model="openai/long", messages=HELLO)  # its own cap
    assert [r.json["max_completion_tokens"] for r in upstream.requests] == [4096, 700]
    hub.drain()
    assert [r.completion_tokens for r in UsageRecord.objects.order_by("id")] == [4096, 700]


def test_max_tokens_above_the_models_cap_is_400_naming_the_cap(client, hub, upstream, uncapped):
    CatalogModel.objects.filter(public_id="openai/long").update(max_output_tokens=700)
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model="openai/long", messages=HELLO, max_completion_tokens=701)
    assert raised.value.body["param"] == "max_completion_tokens" and "at most 700 tokens" in raised.value.message
    assert upstream.requests == []
    client.chat.completions.create(model="openai/long", messages=HELLO, max_tokens=700)
    hub.drain()
    assert [(r.status, r.http_status) for r in UsageRecord.objects.order_by("id")] == [
        ("client_error", 400),
        ("ok", 200),
    ]


def test_with_both_caps_only_max_completion_tokens_is_sent(client, hub, upstream, uncapped):
    # Held for max_completion_tokens; a provider that honours max_tokens instead must never see the other.
    client.chat.completions.create(model="openai/long", messages=HELLO, max_completion_tokens=3, max_tokens=100_000)
    sent = upstream.requests[0].json
    assert sent["max_completion_tokens"] == 3 and "max_tokens" not in sent


def test_a_provider_that_writes_past_its_cap_is_charged_what_it_billed(
    client, hub, upstream, organization, openai_provider
):
    add_model(
        openai_provider,
        "openai/overrun",
        "fake-overrun",
        input_cost=Decimal(0),
        output_cost=Decimal(0),
        input_price=PER_MILLION,
        output_price=PER_MILLION,
    )
    client.chat.completions.create(model="openai/overrun", messages=HELLO, max_tokens=50)
    hub.drain()
    record = UsageRecord.objects.get()
    assert record.completion_tokens == 50 + OVERRUN_WORDS, "the usage the provider reported"
    assert balance(organization) == Decimal(10) - record.price
    assert_settled(organization)


@pytest.mark.parametrize(
    "field, value",
    [
        ("max_tokens", 10**30),
        ("max_tokens", 2**31),
        ("max_tokens", -1),
        ("max_tokens", 1.5),
        ("max_tokens", 5.0),
        ("max_tokens", True),
        ("max_tokens", "7"),
        ("max_completion_tokens", 1e30),
        ("max_completion_tokens", 10**30),
        ("n", 10**30),
        ("n", 0),
        ("n", 129),
        ("n", 2.0),
        ("n", True),
        ("temperature", True),
        ("temperature", "1"),
        ("top_p", 10**400),
        ("presence_penalty", 3),
        ("seed", 2**64),
        ("top_logprobs", 21),
    ],
)
def test_numbers_out_of_range_or_of_the_wrong_type_are_400_and_recorded(
    hub, api_key, chat_model, upstream, field, value
):
    body = json.dumps({"model": "gpt-4o-mini", "messages": HELLO, field: value})
    response = httpx.post(
        f"{hub.url}/v1/chat/completions",
        content=body,
        timeout=10,
        headers={"authorization": f"Bearer {api_key}", "content-type": "application/json"},
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["type"], error["param"]) == ("invalid_request_error", field)
    assert upstream.requests == []
    hub.drain()
    assert (UsageRecord.objects.get().status, UsageRecord.objects.get().http_status) == ("client_error", 400)


def _route(**changes):
    from types import SimpleNamespace

    values = {
        "upstream_name": "m",
        "max_output_tokens": None,
        "options": {},
        "secret": "k",
        "base_url": "https://x",
        "provider_name": "p",
    }
    return SimpleNamespace(**(values | changes))


def test_n_is_refused_by_providers_that_answer_one_choice():
    body = {"messages": HELLO, "n": 3}
    for build in (
        lambda: anthropic.build_request(_route(), body, stream=False),
        lambda: bedrock.build_request(_route(), body),
    ):
        with pytest.raises(UpstreamError) as raised:
            build()
        assert (raised.value.status, raised.value.param, raised.value.retryable) == (400, "n", False)
    assert anthropic.build_request(_route(), dict(body, n=1), stream=False)
