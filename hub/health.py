"""GET /healthz and GET /readyz, for load balancers and orchestrators (not hub/health_checks.py, which checks
providers' credentials).

Both are answered in hub/asgi.py before Django's handlers: no session, no auth, no rate limit, no host check and
no HTTPS redirect, which a probe calling the pod's address over plain HTTP would trip over.
/healthz says the process answers (nothing else is touched); /readyz that its database, its cache and its Celery
broker answer, each check bounded so that a server that hangs makes the probe fail fast instead of hang.
"""

import asyncio
import json

from django.core.cache import cache
from django.db import connection

from .celery import app as celery_app

PATHS = ("/healthz", "/readyz")
CHECK_SECONDS = 1.5


def _database() -> None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    finally:
        connection.close()  # the check runs in a pool thread: leave no connection behind in it


def _cache() -> None:
    cache.set("hub:readyz", "1", 10)
    if cache.get("hub:readyz") != "1":
        raise RuntimeError("the cache did not keep a value")


def _broker() -> None:
    with celery_app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=1)


CHECKS = {"database": _database, "cache": _cache, "broker": _broker}


async def _check(check) -> str:
    try:
        await asyncio.wait_for(asyncio.to_thread(check), CHECK_SECONDS)
    except TimeoutError:
        return "timeout"
    except Exception as exc:  # whatever the driver raises, the probe says which check failed and how
        return f"down: {type(exc).__name__}"
    return "ok"


async def readiness() -> tuple[int, dict]:
    results = await asyncio.gather(*(_check(check) for check in CHECKS.values()))
    checks = dict(zip(CHECKS, results, strict=True))
    down = [name for name, result in checks.items() if result != "ok"]
    return (503 if down else 200), {"status": "down" if down else "ok", "checks": checks, "down": down}


async def app(scope, receive, send) -> None:
    if scope["method"] not in ("GET", "HEAD"):
        status, body = 405, {"status": "method not allowed"}
    elif scope["path"] == "/healthz":
        status, body = 200, {"status": "ok"}
    else:
        status, body = await readiness()
    payload = json.dumps(body).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        (b"cache-control", b"no-store"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else payload})
