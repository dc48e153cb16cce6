"""GET /metrics in one process (the live hub of the tests): who may read it, what it counts, how many series.

tests/test_metrics_processes.py runs the real gunicorn with two workers."""

import asyncio
import json
import re
import time
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from billing.models import UsageRecord
from billing.services import hold_place
from billing.tasks import release_expired_holds
from hub import metrics
from providers.models import CatalogModel
from tests import factories
from tests.conftest import UPSTREAM_KEY
from tests.factories import add_model

TOKEN = "metrics-token-for-tests"
DASHBOARD = Path(__file__).resolve().parent.parent / "hub" / "grafana" / "hub-dashboard.json"


def scrape(hub, token: str | None = TOKEN, **headers) -> httpx.Response:
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    return httpx.get(f"{hub.url}/metrics", headers=headers, timeout=30)


def samples(text: str) -> dict[tuple, float]:
    """Every sample as (name, sorted labels) → value."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def total(figures: dict, name: str, **labels) -> float:
    return sum(v for (n, ls), v in figures.items() if n == name and labels.items() <= dict(ls).items())


@pytest.fixture
def token(settings):
    settings.HUB_METRICS_TOKEN = TOKEN


def test_it_is_off_without_a_token_or_an_address_list(hub, settings):
    settings.HUB_METRICS_TOKEN, settings.HUB_METRICS_ALLOW_IPS = "", []
    assert scrape(hub).status_code == 404


def test_it_needs_the_token_and_no_session(hub, token):
    assert scrape(hub, None).status_code == 401
    refused = scrape(hub, "metrics-token-for-tesTs")
    assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Bearer")
    assert scrape(hub, None, authorization=TOKEN).status_code == 401  # no scheme
    assert scrape(hub, TOKEN + "x").status_code == 401
    answer = scrape(hub)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain; version=")
    assert "hub_requests_in_flight" in answer.text and "set-cookie" not in answer.headers


def test_an_address_outside_the_list_is_refused(hub, settings):
    settings.HUB_METRICS_TOKEN, settings.HUB_METRICS_ALLOW_IPS = "", ["10.0.0.0/8"]
    assert scrape(hub, None).status_code == 403
    settings.HUB_METRICS_ALLOW_IPS = ["10.0.0.0/8", "127.0.0.0/8"]
    assert scrape(hub, None).status_code == 200


def test_the_address_is_the_client_behind_a_trusted_proxy(hub, settings):
    settings.HUB_METRICS_TOKEN, settings.HUB_METRICS_ALLOW_IPS = "", ["10.0.0.0/8"]
    settings.HUB_TRUSTED_PROXIES = ["127.0.0.1/32"]
    assert scrape(hub, None, **{"x-forwarded-for": "10.1.2.3"}).status_code == 200
    settings.HUB_METRICS_ALLOW_IPS = ["127.0.0.0/8"]
    assert scrape(hub, None, **{"x-forwarded-for": "10.1.2.3"}).status_code == 403


def test_with_both_set_a_scrape_needs_both(hub, settings):
    settings.HUB_METRICS_TOKEN, settings.HUB_METRICS_ALLOW_IPS = TOKEN, ["127.0.0.0/8"]
    assert scrape(hub, None).status_code == 401
    assert scrape(hub).status_code == 200
    settings.HUB_METRICS_ALLOW_IPS = ["10.0.0.0/8"]
    assert scrape(hub).status_code == 403


def test_the_figures_equal_a_known_mix_of_requests(hub, token, client, openai_provider):
    add_model(openai_provider, "openai/broken", "fake-error-500")
    before = samples(scrape(hub).text)
    prompt = completion = 0
    for _ in range(3):
        answer = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        prompt, completion = prompt + answer.usage.prompt_tokens, completion + answer.usage.completion_tokens
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "a stream"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    for chunk in stream:
        if chunk.usage:
            prompt, completion = prompt + chunk.usage.prompt_tokens, completion + chunk.usage.completion_tokens
    for name in ("no-such-model", "nor-this-one"):
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(model=name, messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.InternalServerError):
        client.with_options(max_retries=0).chat.completions.create(
            model="openai/broken", messages=[{"role": "user", "content": "hi"}]
        )
    hub.drain()
    after = samples(scrape(hub).text)

    def added(name, **labels):
        return total(after, name, **labels) - total(before, name, **labels)

    model = "openai/gpt-4o-mini"
    assert added("hub_requests_total", model=model, status_class="2xx", endpoint="chat.completions") == 4
    assert added("hub_requests_total", model="other", status_class="4xx", provider="none") == 2
    # Served by none: counted under the provider that failed.
    assert added("hub_requests_total", model="openai/broken", status_class="5xx", provider="openai") == 1
    assert added("hub_tokens_total", model=model, direction="in") == prompt
    assert added("hub_tokens_total", model=model, direction="out") == completion
    assert added("hub_request_duration_seconds_count", model=model) == 4
    assert added("hub_time_to_first_token_seconds_count", model=model) == 1
    assert added("hub_upstream_duration_seconds_count", provider="openai") == 4
    records = UsageRecord.objects.filter(served_model=model, status=UsageRecord.Status.OK)
    assert records.count() == 4
    price = sum((r.price for r in records), Decimal(0))
    cost = sum((r.cost for r in records), Decimal(0))
    assert price > 0 and cost > 0
    assert added("hub_price_total", model=model) == pytest.approx(float(price))
    assert added("hub_cost_total", model=model) == pytest.approx(float(cost))
    assert total(after, "hub_requests_in_flight") == 0
    assert total(after, "hub_route_cooling_down", provider="openai") == 0
    assert ("hub_credit_holds", ()) in after


def test_ten_thousand_unknown_model_names_add_one_series(hub, token, api_key, chat_model):
    """500 names through the live hub, then 10,000 more as the relay hands them to the metrics (the label
    comes from the catalogue entry the request resolved, never from the name asked)."""
    names = [f"made-up-model-{i}" for i in range(500)]

    async def send():
        client = openai.AsyncOpenAI(base_url=f"{hub.url}/v1", api_key=api_key, max_retries=0)
        gate = asyncio.Semaphore(32)

        async def one(name):
            async with gate:
                with pytest.raises(openai.NotFoundError):
                    await client.chat.completions.create(model=name, messages=[{"role": "user", "content": "x"}])

        await asyncio.gather(*(one(n) for n in names))
        await client.close()

    def series():
        figures = samples(scrape(hub).text)
        return {labels for (name, labels) in figures if name.startswith("hub_")}

    httpx.post(f"{hub.url}/v1/chat/completions", json={"model": "warm-up", "messages": []}, timeout=30)
    before = series()
    asyncio.run(send())
    hub.drain()
    assert len(series() - before) <= 1
    for i in range(10_000):
        call = SimpleNamespace(
            route=None,
            model=None,
            failed=None,
            endpoint="chat.completions",
            started=time.monotonic(),
            served=None,
            stream=False,
        )
        metrics.observe(
            call, factories.usage_event(model_name=f"another-made-up-{i}", organization_id=1, http_status=404)
        )
    assert len(series() - before) <= 1
    assert not [labels for labels in series() if any(v.startswith("made-up") for _, v in labels)]


def test_requests_without_a_valid_key_or_to_made_up_paths_count_under_bounded_labels(hub, token, api_key, settings):
    settings.HUB_MAX_BODY_BYTES = 10_000
    before = samples(scrape(hub).text)
    for i in range(5):
        wrong = httpx.post(
            f"{hub.url}/v1/chat/completions", json={"model": "m"}, headers={"authorization": f"Bearer sk-hub-no{i}"}
        )
        assert wrong.status_code == 401
        # Too large, with a valid key, to a path of the client's making: its endpoint label is "other".
        large = httpx.post(
            f"{hub.url}/v1/made-up-{i}", content=b"x" * 20_000, headers={"authorization": f"Bearer {api_key}"}
        )
        assert large.status_code == 413
    assert httpx.post(f"{hub.url}/v1/embeddings", json={"model": "m", "input": "x"}).status_code == 401
    after = samples(scrape(hub).text)

    def added(name, **labels):
        return total(after, name, **labels) - total(before, name, **labels)

    assert added("hub_requests_total", endpoint="chat.completions", status_class="4xx", provider="none") == 5
    assert added("hub_requests_total", endpoint="embeddings", status_class="4xx", provider="none") == 1
    assert added("hub_requests_total", endpoint="other", status_class="4xx") == 5
    assert not [labels for (_, labels) in after if any(v.startswith("made-up") for _, v in labels)]


def test_the_grafana_dashboard_reads_only_metrics_the_hub_exports(hub, token, client):
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    hub.drain()
    text = scrape(hub).text
    exported = {s.name for f in text_string_to_metric_families(text) for s in f.samples}
    exported |= set(re.findall(r"^# TYPE (\w+)", text, re.MULTILINE))
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", ())]
    used = {name for q in queries for name in re.findall(r"\bhub_[a-z_]+\b", q)}
    assert len(queries) >= 10 and len(used) >= 15
    # A histogram no request has filled yet is exported by its TYPE line alone.
    missing = {
        name for name in used if name not in exported and re.sub(r"_(bucket|sum|count)$", "", name) not in exported
    }
    assert not missing, missing


def test_a_failover_a_fallback_and_a_cooling_credential_are_counted(hub, token, api_key, upstream, settings):
    settings.HUB_COOLDOWN_AFTER_FAILURES = 1
    primary = factories.provider("primary", preset="openai", base_url=upstream.base_url, secret=UPSTREAM_KEY)
    backup = factories.provider("backup", preset="openai", base_url=upstream.base_url, secret=UPSTREAM_KEY)
    factories.add_model(primary, "big/model", "fake-error-503")
    factories.add_model(backup, "small/model", "gpt-4o-mini")
    CatalogModel.objects.filter(public_id="big/model").update(fallbacks=["small/model"])
    before = samples(scrape(hub).text)
    client = openai.OpenAI(base_url=f"{hub.url}/v1", api_key=api_key, max_retries=0)
    reply = client.chat.completions.with_raw_response.create(
        model="big/model", messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.headers["x-hub-route"] == "small/model; provider=backup"
    after = samples(scrape(hub).text)

    def added(name, **labels):
        return total(after, name, **labels) - total(before, name, **labels)

    assert added("hub_failovers_total", provider="backup") == 1
    assert added("hub_fallbacks_total", model="big/model") == 1
    assert added("hub_requests_total", model="small/model", provider="backup", status_class="2xx") == 1
    assert total(after, "hub_route_cooling_down", provider="primary", credential="main") == 1
    assert total(after, "hub_route_cooling_down", provider="backup", credential="main") == 0


def test_celery_task_runs_and_failures_are_counted(hub, token):
    before = samples(scrape(hub).text)
    release_expired_holds.apply()
    # throw=False: as a worker runs it (the tests' eager mode would raise before Celery handles the failure).
    assert release_expired_holds.apply(args=("not an argument it takes",), throw=False).failed()
    after = samples(scrape(hub).text)
    task = "billing.tasks.release_expired_holds"
    ran = total(after, "hub_celery_tasks_total", task=task) - total(before, "hub_celery_tasks_total", task=task)
    failed = total(after, "hub_celery_task_failures_total", task=task) - total(
        before, "hub_celery_task_failures_total", task=task
    )
    assert (ran, failed) == (2, 1)
    assert total(after, "hub_celery_tasks_total", task=task, state="SUCCESS") >= 1


def test_credit_holds_outstanding_are_read_from_the_database(hub, token, organization):
    before = samples(scrape(hub).text)
    for i, amount in enumerate(("0.25", "1.5")):
        assert (
            hold_place(organization_id=organization.pk, request_id=f"req_{i}", amount=Decimal(amount), ttl_seconds=60)
            is None
        )
    after = samples(scrape(hub).text)
    assert total(after, "hub_credit_holds") - total(before, "hub_credit_holds") == 2
    assert total(after, "hub_credit_held") - total(before, "hub_credit_held") == pytest.approx(1.75)
