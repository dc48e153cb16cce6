"""Shared actors: a live hub under ASGI, a fake OpenAI upstream, an organisation with a key."""

import asyncio
import time

import openai
import pytest
import uvicorn

from tests import factories
from tests.factories import add_model  # noqa: F401 - tests/test_adapter_*.py import it from here
from tests.fakes.openai_upstream import FakeOpenAI
from tests.fakes.server import Running, serve, server_fixture

UPSTREAM_KEY = "sk-upstream-test"

# Named actors of the management API (an owner, members of each role, an outsider).
pytest_plugins = ["tests.actors", "tests.stripe_fixtures", "tests.browser", "tests.secret_guard", "pytester"]


class LiveHub:
    """The real ASGI application (hub.asgi) served by uvicorn on a loopback port."""

    def __init__(self):
        self.running: Running | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.server: uvicorn.Server | None = None

    def start(self) -> "LiveHub":
        from django.conf import settings

        from hub.asgi import application

        # uvicorn believes the proxies the hub's settings name, as gunicorn's workers do (hub/gunicorn.conf.py):
        # none by default, where uvicorn's own default would take 127.0.0.1's X-Forwarded-For.
        forwarded = ",".join(settings.HUB_TRUSTED_PROXIES)
        self.running = serve(application, "live-hub", lifespan="on", forwarded_allow_ips=forwarded)
        self.loop, self.server, self.thread = self.running.loop, self.running.server, self.running.thread
        self.port, self.url = self.running.port, self.running.base_url
        return self

    def call(self, coroutine, timeout: float = 10):
        """Run a coroutine on the hub's event loop and wait for it."""
        return self.running.call(coroutine, timeout)

    def drain(self) -> None:
        """Write every usage record the hub still holds in memory, and give back its idle credit leases."""
        from hub import credit
        from hub.metering import meter

        async def drain():
            from hub import relay

            # Key policies count tokens and spend in tasks of their own (relay._background): wait for them too.
            await asyncio.gather(*list(relay._background), return_exceptions=True)
            await meter.drain()
            credit.release_all()
            await meter.drain()

        self.call(drain())

    def stop(self) -> None:
        self.running.stop(timeout=10)


@pytest.fixture(scope="session", autouse=True)
def known_secrets(request):
    """The fake upstream's key, which no factory makes, must not be in the run's output (tests/secret_guard.py)."""
    request.config.pluginmanager.get_plugin("tests.secret_guard").remember(UPSTREAM_KEY)


@pytest.fixture(scope="session", autouse=True)
def fresh_redis():
    """The test run's Redis database starts empty: counters a previous run left (a key's tokens this minute,
    under the same key id in a new test database) must not count against this one."""
    from django.conf import settings

    if settings.REDIS_URL:
        import redis

        client = redis.Redis.from_url(settings.REDIS_URL)
        client.flushdb()
        client.close()


@pytest.fixture(scope="session")
def live_hub(django_db_setup, django_db_blocker):
    hub = LiveHub().start()
    yield hub
    with django_db_blocker.unblock():
        hub.stop()
        from hub import db

        db.close()


upstream_server = server_fixture(lambda: FakeOpenAI(api_key=UPSTREAM_KEY), scope="session")


@pytest.fixture
def upstream(upstream_server):
    upstream_server.reset()
    return upstream_server


@pytest.fixture(autouse=True)
def fresh_caches():
    """Each test starts with every process-wide cache empty (keys, balances, catalogue, route health, limits…):
    each registers itself with accounts.caches (tests/test_caches.py sees to it)."""
    from accounts import caches

    caches.reset_all()


@pytest.fixture
def hub(live_hub, transactional_db):
    """The live hub (with fresh caches: fresh_caches); its usage buffer is written out after each test."""
    from hub import catalogue

    yield live_hub
    from hub.relay import InFlight

    # Let the hub finish what this test left open (a stream the client just
    # dropped) so its usage is written before the database is emptied.
    deadline = time.monotonic() + 5
    while InFlight.count and time.monotonic() < deadline:
        time.sleep(0.01)
    assert InFlight.count == 0, "a request never finished its accounting"
    live_hub.drain()
    catalogue.invalidate()


@pytest.fixture
def organization(transactional_db):
    return factories.organization("Acme", credit="10")


@pytest.fixture
def api_key(organization):
    return factories.api_key(organization, "test")[1]


@pytest.fixture
def openai_provider(upstream, transactional_db):
    return factories.provider(
        "openai", kind="openai_compatible", preset="openai", base_url=upstream.base_url, secret=UPSTREAM_KEY
    )


@pytest.fixture
def chat_model(openai_provider):
    return factories.add_model(openai_provider, "openai/gpt-4o-mini", "gpt-4o-mini", alias="gpt-4o-mini")


@pytest.fixture
def client(hub, api_key, chat_model):
    return openai.OpenAI(base_url=f"{hub.url}/v1", api_key=api_key, max_retries=0)


@pytest.fixture
def async_client(hub, api_key, chat_model):
    return openai.AsyncOpenAI(base_url=f"{hub.url}/v1", api_key=api_key, max_retries=0)
