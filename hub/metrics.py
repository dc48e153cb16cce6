"""What Prometheus reads of the hub: the figures the gateway counts as it serves, and GET /metrics.

Under gunicorn each worker writes its figures to files in PROMETHEUS_MULTIPROC_DIR (hub/metrics_dir.py) and a
scrape adds up every process's; in one process (tests, runserver) the figures are that process's own. Counting
on the request path touches only memory (or those memory-mapped files): no query, no lookup beyond the
catalogue entry the request already holds. What is shared already (credentials cooling down, credit holds) is
read when Prometheus asks, not counted.

Labels stay bounded: endpoints, the catalogue's public model ids (a name it does not know counts as "other"),
provider names, status classes, task names. No key or user label; the organisation only when
HUB_METRICS_ORGANIZATION_LABEL asks for it.
"""

import hmac
import ipaddress
import os
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.models import Count, Sum
from django.http import Http404, HttpResponse
from django.utils.translation import gettext
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily

from accounts import caches
from accounts.addresses import address_allowed, client_address
from billing.models import CreditHold
from providers.models import Credential

from . import route_health
from .metrics_dir import VARIABLE

OTHER = "other"  # the model label of every name the catalogue does not know
# The endpoints of the API (hub/views.py adds each it serves); any other (a 413 names one from its path) is OTHER.
ENDPOINTS: set[str] = set()
# 1 ms to 5 min: a refused request takes a millisecond, a long reasoning stream minutes.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)

_by_org = ("organization",) if settings.HUB_METRICS_ORGANIZATION_LABEL else ()
REQUESTS = Counter(
    "hub_requests", "Gateway requests, finished.", ("endpoint", "model", "provider", "status_class", *_by_org)
)
TOKENS = Counter(
    "hub_tokens", "Tokens, in (prompt) and out (completion).", ("direction", "model", "provider", *_by_org)
)
COST = Counter("hub_cost", "What providers charge for the requests, in the hub's currency.", ("model", "provider"))
PRICE = Counter("hub_price", "What the hub charges for the requests, in its currency.", ("model", "provider", *_by_org))
LATENCY = Histogram(
    "hub_request_duration_seconds",
    "A request's whole time in the hub.",
    ("endpoint", "model", "provider"),
    buckets=BUCKETS,
)
UPSTREAM = Histogram(
    "hub_upstream_duration_seconds",
    "The provider's time: every attempt, to the answer's end.",
    ("provider",),
    buckets=BUCKETS,
)
TTFT = Histogram(
    "hub_time_to_first_token_seconds", "A stream's time to its first token.", ("model", "provider"), buckets=BUCKETS
)
OVERHEAD = Histogram(
    "hub_overhead_seconds", "A request's time in the hub less the provider's.", ("endpoint",), buckets=BUCKETS
)
IN_FLIGHT = Gauge("hub_requests_in_flight", "Gateway requests being served.", multiprocess_mode="livesum")
FAILOVERS = Counter("hub_failovers", "Attempts on another route after a retryable failure.", ("provider",))
FALLBACKS = Counter("hub_fallbacks", "Requests answered by a fallback model of the one asked for.", ("model",))
RESPONSE_CACHE = Counter(
    "hub_response_cache", "Requests the response cache looked up, by result (hit, miss).", ("model", "result")
)
METER_QUEUE = Gauge("hub_meter_queue_depth", "Usage events waiting to be written.", multiprocess_mode="livesum")
METER_FLUSH = Histogram("hub_meter_flush_seconds", "Writing one batch of usage records.", buckets=BUCKETS)
METER_FAILED = Counter("hub_meter_failed_writes", "Batches of usage records whose write failed (kept to retry).")
METER_SET_ASIDE = Counter("hub_meter_set_aside", "Usage records the database refused, set aside (dead letters).")
TASKS = Counter("hub_celery_tasks", "Celery task runs, by task and state.", ("task", "state"))
TASK_FAILURES = Counter("hub_celery_task_failures", "Celery task runs that raised.", ("task",))


def observe(call, event) -> None:
    """A finished gateway request (hub/relay.py Call.record), counted."""
    route, asked = call.route, call.model
    if route is not None:
        model, provider = route.public_id, route.provider_name
    else:
        # None served: the model asked for, under the provider whose failure the client got, if any.
        model = asked.public_id if asked is not None else OTHER
        provider = call.failed.provider_name if call.failed is not None else "cache" if event.cache_hit else "none"
    org = str(event.organization_id) if _by_org else ""
    key = (_endpoint_label(call.endpoint), model, provider, event.http_status // 100, org)
    series = _series.get(key) or _series_of(key)
    series.requests.inc()
    if event.prompt_tokens:
        series.tokens_in.inc(event.prompt_tokens)
    if event.completion_tokens:
        series.tokens_out.inc(event.completion_tokens)
    if event.cost:
        series.cost.inc(float(event.cost))  # Decimal until here: Prometheus counts in floats
    if event.price:
        series.price.inc(float(event.price))
    total = time.monotonic() - call.started
    series.latency.observe(total)
    served = call.served
    if served is not None:
        upstream = served.waited + (time.monotonic() if call.stream else served.answered) - served.started
        series.upstream.observe(upstream)
        series.overhead.observe(max(total - upstream, 0.0))
        if asked is not None and route is not None and route.model_id != asked.id:
            FALLBACKS.labels(asked.public_id).inc()
    else:
        series.overhead.observe(total)
    if event.first_token_ms is not None:
        series.ttft.observe(event.first_token_ms / 1000)


def _endpoint_label(endpoint: str) -> str:
    return endpoint if endpoint in ENDPOINTS else OTHER


def unauthenticated(endpoint: str, http_status: int) -> None:
    """A request refused for its key: no organisation, model or provider to count it under."""
    key = (_endpoint_label(endpoint), OTHER, "none", http_status // 100, "")
    (_series.get(key) or _series_of(key)).requests.inc()


@dataclass(frozen=True)
class _Series:
    requests: Any
    tokens_in: Any
    tokens_out: Any
    cost: Any
    price: Any
    latency: Any
    upstream: Any
    overhead: Any
    ttft: Any


# One request's series, by (endpoint, model, provider, status class, organisation): looked up once each, as
# prometheus_client's labels() costs a lock and a validation per call. As bounded as the labels are.
_series: dict[tuple, _Series] = {}


def _series_of(key: tuple) -> _Series:
    endpoint, model, provider, status, org = key
    by_org = (org,) if _by_org else ()
    series = _series[key] = _Series(
        requests=REQUESTS.labels(endpoint, model, provider, f"{status}xx", *by_org),
        tokens_in=TOKENS.labels("in", model, provider, *by_org),
        tokens_out=TOKENS.labels("out", model, provider, *by_org),
        cost=COST.labels(model, provider),
        price=PRICE.labels(model, provider, *by_org),
        latency=LATENCY.labels(endpoint, model, provider),
        upstream=UPSTREAM.labels(provider),
        overhead=OVERHEAD.labels(endpoint),
        ttft=TTFT.labels(model, provider),
    )
    return series


def forget_series() -> None:
    """Forget the looked-up series (tests); the figures stay with prometheus_client."""
    _series.clear()


caches.register(forget_series, lambda: _series)


def task_ran(sender=None, state=None, **kwargs) -> None:
    TASKS.labels(getattr(sender, "name", "unknown"), state or "unknown").inc()


def task_failed(sender=None, **kwargs) -> None:
    TASK_FAILURES.labels(getattr(sender, "name", "unknown")).inc()


class SharedState:
    """Figures the hub keeps in its database and shared routing state, read at each scrape (not per request)."""

    def collect(self):
        cooling = GaugeMetricFamily(
            "hub_route_cooling_down",
            "1 while a credential is out of rotation (cooling down or being probed), else 0.",
            labels=("credential_id", "credential", "provider"),
        )
        store, now = route_health.store(), time.time()
        for cid, name, provider in Credential.objects.filter(enabled=True).values_list("pk", "name", "provider__name"):
            try:
                out = store.read(cid).out(now)
            except Exception:  # noqa: S112 - Redis is away: routing fails open, and so does this figure
                continue
            cooling.add_metric((str(cid), name, provider), 1.0 if out else 0.0)
        yield cooling
        holds = CreditHold.objects.aggregate(count=Count("pk"), amount=Sum("amount"))
        count = GaugeMetricFamily("hub_credit_holds", "Credit holds outstanding (leases of requests in flight).")
        count.add_metric((), holds["count"])
        yield count
        held = GaugeMetricFamily("hub_credit_held", "Credit held by the outstanding holds, in the hub's currency.")
        held.add_metric((), float(holds["amount"] or 0))
        yield held


class _ThisProcess:
    def collect(self):
        return REGISTRY.collect()


def _registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    if os.environ.get(VARIABLE):
        multiprocess.MultiProcessCollector(registry)  # every worker's files, added up
    else:
        registry.register(_ThisProcess())
    registry.register(SharedState())
    return registry


def scrape(request) -> HttpResponse:
    """GET /metrics: for Prometheus, not people, so it answers with status codes and no page."""
    token, networks = settings.HUB_METRICS_TOKEN, _networks(tuple(settings.HUB_METRICS_ALLOW_IPS))
    if not token and not networks:
        raise Http404("metrics are off")
    if networks and not address_allowed(networks, client_address(request)):
        return HttpResponse(
            gettext("This address may not read the metrics.") + "\n", status=403, content_type="text/plain"
        )
    if token:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
            return HttpResponse(
                gettext("A bearer token is needed to read the metrics.") + "\n",
                status=401,
                content_type="text/plain",
                headers={"www-authenticate": 'Bearer realm="metrics"'},
            )
    return HttpResponse(generate_latest(_registry()), content_type=CONTENT_TYPE_LATEST)


def _networks(cidrs: tuple[str, ...]) -> tuple:
    return tuple(ipaddress.ip_network(c) for c in cidrs)
