"""GET /v1/status: is the hub up, and which of the caller's models can serve now.

A model is available when one of its routes is: its provider enabled (it is in
the catalogue), its credential not cooling down (hub/route_health.py) and not
failing its last health check. Only models the caller's key may use are
listed; nothing about credentials, providers' keys or other tenants.
"""

import time

from django.conf import settings
from django.db import connection
from django.utils import timezone

from . import catalogue, db, route_health
from .policy import may_use
from .shared_state import redis_client


def _database_ok() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return True


async def _check(probe) -> str:
    try:
        await probe()
        return "ok"
    except Exception:
        return "unavailable"


async def usable_routes(models) -> dict[int, int]:
    """How many of each model's routes can serve now (by the model's id): the one count /v1/status and the
    catalogue pages (hub/catalogue_pages.py) report."""
    store = route_health.store()
    ids = sorted({r.credential_id for m in models for r in m.routes if r.credential_id})
    states = await store.states(ids) if ids else {}
    now = time.time()
    return {
        model.id: sum(
            1
            for r in model.routes
            if r.last_check_ok is not False
            and not (r.credential_id and states.get(r.credential_id, route_health.Health()).cooling(now))
        )
        for model in models
    }


async def report(key) -> dict:
    snapshot = await catalogue.snapshot()
    database = await _check(lambda: db.read(_database_ok))
    if settings.REDIS_URL:
        cache = await _check(lambda: redis_client(settings.REDIS_URL).ping())
    else:
        cache = "not configured"
    models = [m for m in snapshot.listed if may_use(key.policy, m)]
    usable = await usable_routes(models)
    listed = [
        {
            "id": model.public_id,
            "object": "model.status",
            "available": bool(usable[model.id]),
            "routes": len(model.routes),
            "routes_available": usable[model.id],
        }
        for model in models
    ]
    healthy = database == "ok" and cache != "unavailable"
    return {
        "object": "status",
        "status": ("ok" if all(m["available"] for m in listed) else "degraded") if healthy else "unavailable",
        "time": timezone.now().isoformat(),
        "services": {"database": database, "cache": cache},
        "models": listed,
    }
