"""The management API fuzzed from its own OpenAPI schema (schemathesis): no input may end in a 5xx.

Every operation of /manage/v1/ gets schemathesis's examples, coverage cases (boundaries, wrong types, methods
the operation lacks) and a bounded, derandomized fuzzing run, so that the run is repeatable and takes a minute
or two; each case is sent as Acme's owner and again with an admin-scoped key. Stripe is played by localstripe,
which has no Checkout: a checkout answers the hub's defined 503 there, the only 5xx allowed. The gateway (/v1/)
is fuzzed from its own document by tests/test_gateway_openapi.py.
"""

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.test import Client
from django.utils.crypto import get_random_string
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from accounts.services import api_key_create

CHECKOUT = "POST /manage/v1/orgs/{slug}/billing/checkout"
EXAMPLES = 40  # generated per operation, beyond the examples and coverage cases

schema = schemathesis.openapi.from_wsgi(
    "/manage/v1/schema/", get_wsgi_application(), headers={"Accept": "application/vnd.oai.openapi+json"}
)


@pytest.fixture
def in_process():
    """Requests served by the WSGI handler inside the test's transaction: its request signals would close the
    database connection mid-test (Django's own test client disconnects them the same way)."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def callers(world, stripe_settings, in_process):
    """Acme's owner signed in (with a CSRF token, so that writes get through), and an admin-scoped key."""
    web = Client()
    web.force_login(world.owner)
    csrf = get_random_string(32)
    session = web.cookies[stripe_settings.SESSION_COOKIE_NAME].value
    owner = {
        "headers": {"X-CSRFToken": csrf},
        "cookies": {stripe_settings.SESSION_COOKIE_NAME: session, stripe_settings.CSRF_COOKIE_NAME: csrf},
    }
    _, raw = api_key_create(organization=world.acme, name="fuzz", scope="admin")
    return {"owner": owner, "admin key": {"headers": {"Authorization": f"Bearer {raw}"}}}


@schema.parametrize()
@settings(
    max_examples=EXAMPLES, derandomize=True, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)
def test_no_generated_request_gets_a_server_error(case, callers):
    if "slug" in (case.path_parameters or {}):
        case.path_parameters["slug"] = "acme"  # the callers' own organisation, or every answer is a 404
    for credentials in callers.values():
        response = case.call(**credentials)
        if case.operation.label == CHECKOUT and response.status_code == 503:
            assert response.json()["error"]["code"] == "service_unavailable"
            continue
        case.validate_response(response, checks=[not_a_server_error])
