"""Probing credentials: a one-token chat request through the credential's provider.

Run by a Celery beat task for every enabled credential, and by the admin's
"test now" action. The result is kept on the credential (for operators) and
fed to the routing state (a success brings a cooled-down credential back).
"""

import asyncio
import time

from asgiref.sync import async_to_sync
from django.utils import timezone

from providers import http
from providers.adapters import UpstreamError, get_adapter
from providers.models import CatalogModel, Credential, ModelRoute

from . import catalogue, route_health

PING = {"messages": [{"role": "user", "content": "ping"}], "max_tokens": 1}


def _route_for(credential: Credential):
    """A chat route of the credential's provider, with this credential."""
    row = (
        ModelRoute.objects.filter(provider=credential.provider, enabled=True, model__kind=CatalogModel.Kind.CHAT)
        .select_related("model", "model__rate", "provider")
        .order_by("priority", "pk")
        .first()
    )
    if row is None:
        return None
    routes = catalogue._routes(
        row.model, getattr(row.model, "rate", None), [row], {credential.provider_id: [credential]}
    )
    return routes[0]


async def _probe(route) -> tuple[UpstreamError | None, int]:
    started = time.monotonic()
    try:
        await get_adapter(route.provider_kind).chat(route, dict(PING))
    except UpstreamError as error:
        return error, int((time.monotonic() - started) * 1000)
    finally:
        await http.close()
    return None, int((time.monotonic() - started) * 1000)


def check(credential: Credential) -> Credential:
    """Probe one credential now; record and return it."""
    route = _route_for(credential)
    failure: UpstreamError | None
    if route is None:
        failure = UpstreamError("No enabled chat model is served by this provider: nothing to probe with.")
        latency = 0
    else:
        failure, latency = asyncio.run(_probe(route)) if not _in_loop() else async_to_sync(_probe)(route)
    ok, error = failure is None, failure.message if failure is not None else ""
    credential.last_checked_at = timezone.now()
    credential.last_check_ok, credential.last_check_latency_ms, credential.last_check_error = ok, latency, error[:300]
    Credential.objects.filter(pk=credential.pk).update(
        last_checked_at=credential.last_checked_at,
        last_check_ok=ok,
        last_check_latency_ms=latency,
        last_check_error=error[:300],
    )
    store = route_health.store()
    if failure is None:
        store.succeeded(credential.pk, latency)
    elif route is not None and failure.retryable:
        store.failed(credential.pk, route_health.Failure.of(failure), time.time())
    return credential


def _in_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def check_all() -> int:
    count = 0
    for credential in Credential.objects.filter(enabled=True, provider__enabled=True).select_related("provider"):
        check(credential)
        count += 1
    return count
