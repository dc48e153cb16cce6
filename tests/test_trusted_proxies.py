"""Behind a reverse proxy (HUB_TRUSTED_PROXIES): a trusted proxy's X-Forwarded-For names the client, anyone else's
is ignored; one function says so (accounts/addresses.client_address) for the key IP policies on the gateway and the
management API, the login lockout, and gunicorn's uvicorn workers follow the same setting."""

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from axes.models import AccessAttempt
from django.test import Client, RequestFactory

from accounts.addresses import client_address
from accounts.services import api_key_create
from tests.actors import as_key
from tests.signin import fresh_throttles, log_in, verified_user

__all__ = ["fresh_throttles"]
ROOT = Path(__file__).resolve().parent.parent
HELLO = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}


def address_of(peer: str, forwarded: str | None = None) -> str:
    headers = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded is not None else {}
    return client_address(RequestFactory().get("/", REMOTE_ADDR=peer, **headers))


def test_without_trusted_proxies_the_header_is_ignored(settings):
    assert settings.HUB_TRUSTED_PROXIES == []
    assert address_of("127.0.0.1", "203.0.113.9") == "127.0.0.1"
    assert address_of("198.51.100.7", "203.0.113.9") == "198.51.100.7"


def test_a_trusted_proxy_names_the_client_and_an_untrusted_one_does_not(settings):
    settings.HUB_TRUSTED_PROXIES = ["10.0.0.0/8", "192.0.2.1"]
    assert address_of("10.1.1.1", "203.0.113.9") == "203.0.113.9"
    assert address_of("192.0.2.1", "203.0.113.9") == "203.0.113.9"
    assert address_of("198.51.100.7", "203.0.113.9") == "198.51.100.7"  # not a proxy of ours: its header is a lie
    assert address_of("10.1.1.1") == "10.1.1.1"  # no header: the proxy itself


def test_the_client_is_the_last_address_no_trusted_proxy_added(settings):
    settings.HUB_TRUSTED_PROXIES = ["10.0.0.0/8"]
    # A client forging the header's start only adds entries left of the one our proxy wrote.
    assert address_of("10.1.1.1", "6.6.6.6, 203.0.113.9") == "203.0.113.9"
    assert address_of("10.1.1.1", "6.6.6.6, 203.0.113.9, 10.2.2.2") == "203.0.113.9"  # two proxies of ours
    assert address_of("10.1.1.1", "10.3.3.3, 10.2.2.2") == "10.3.3.3"  # only proxies: the first is the client
    assert address_of("10.1.1.1", "203.0.113.9:51234") == "203.0.113.9"  # a port some proxies add
    assert address_of("10.1.1.1", "[2001:db8::5]:443") == "2001:db8::5"
    assert address_of("10.1.1.1", "unknown") == ""  # not an address: no allow-list matches it


# The key IP policies.


@pytest.fixture
def key_for_documentation_net(organization, chat_model, upstream, hub):
    """A key that may be used from 203.0.113.0/24 only; the live hub is reached from 127.0.0.1."""
    return api_key_create(organization=organization, name="net", limits={"allowed_ips": ["203.0.113.0/24"]})[1]


def call(hub, key, forwarded):
    return httpx.post(
        f"{hub.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}", "X-Forwarded-For": forwarded},
        json=HELLO,
    )


def test_the_gateway_ignores_a_forged_header_from_an_untrusted_peer(hub, key_for_documentation_net):
    refused = call(hub, key_for_documentation_net, "203.0.113.5")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "ip_not_allowed"


def test_the_gateway_believes_a_trusted_proxy(hub, key_for_documentation_net, settings):
    settings.HUB_TRUSTED_PROXIES = ["127.0.0.1/32"]
    assert call(hub, key_for_documentation_net, "203.0.113.5").status_code == 200
    outside = call(hub, key_for_documentation_net, "203.0.113.5, 198.51.100.7")  # the proxy saw 198.51.100.7
    assert outside.status_code == 403 and outside.json()["error"]["code"] == "ip_not_allowed"


def test_the_management_api_uses_the_same_address(world, settings):
    _, raw = api_key_create(organization=world.acme, name="ops", scope="admin", limits={"allowed_ips": ["10.0.0.0/8"]})
    forged = {"REMOTE_ADDR": "198.51.100.7", "HTTP_X_FORWARDED_FOR": "10.20.30.40"}
    assert as_key(raw).get("/manage/v1/orgs/acme/keys/", **forged).status_code == 403
    settings.HUB_TRUSTED_PROXIES = ["198.51.100.0/24"]
    assert as_key(raw).get("/manage/v1/orgs/acme/keys/", **forged).status_code == 200


# The login lockout.


@pytest.mark.django_db
def test_a_forged_header_does_not_dodge_the_lockout():
    verified_user("alice@example.com")
    for n in range(5):
        last = log_in(
            Client(REMOTE_ADDR="198.51.100.7", HTTP_X_FORWARDED_FOR=f"203.0.113.{n}"), "alice@example.com", "x"
        )
    assert last.status_code == 429
    assert list(AccessAttempt.objects.values_list("ip_address", flat=True)) == ["198.51.100.7"]


@pytest.mark.django_db
def test_behind_a_trusted_proxy_each_client_is_locked_out_on_its_own(settings):
    settings.HUB_TRUSTED_PROXIES = ["10.0.0.0/8"]
    verified_user("alice@example.com")
    attacker = Client(REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="203.0.113.66")
    for _ in range(5):
        last = log_in(attacker, "alice@example.com", "x")
    assert last.status_code == 429
    assert AccessAttempt.objects.get().ip_address == "203.0.113.66"
    owner = Client(REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="198.51.100.20")  # the same proxy, another client
    assert log_in(owner, "alice@example.com").status_code == 302


# The server.


def gunicorn_setting(**environment) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("HUB_TRUSTED_PROXIES", "DJANGO_SETTINGS_MODULE")}
    printed = subprocess.run(
        [
            Path(sys.executable).parent / "gunicorn",
            "-c",
            "hub/gunicorn.conf.py",
            "--print-config",
            "hub.asgi:application",
        ],
        cwd=ROOT,
        env={**env, **environment},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    (line,) = [line for line in printed.splitlines() if line.startswith("forwarded_allow_ips")]
    return line.split("=", 1)[1].strip()


def test_gunicorn_trusts_the_same_proxies(tmp_path):
    assert gunicorn_setting(HUB_VAR_DIR=str(tmp_path)) == "[]"  # not even 127.0.0.1, uvicorn's own default
    trusted = gunicorn_setting(HUB_VAR_DIR=str(tmp_path), HUB_TRUSTED_PROXIES="10.0.0.0/8,192.0.2.1")
    assert trusted == "['10.0.0.0/8', '192.0.2.1']"


def test_the_audit_log_and_allauths_throttles_see_the_same_address(world, settings):
    from accounts.auth_adapter import AccountAdapter
    from accounts.models import AuditEvent

    settings.HUB_TRUSTED_PROXIES = ["198.51.100.0/24"]
    behind = {"REMOTE_ADDR": "198.51.100.7", "HTTP_X_FORWARDED_FOR": "203.0.113.9"}
    _, raw = api_key_create(organization=world.acme, name="ops", scope="admin")
    assert as_key(raw).post("/manage/v1/orgs/acme/keys/", {"name": "new"}, format="json", **behind).status_code == 201
    assert AuditEvent.objects.filter(action="key.create").latest("pk").ip_address == "203.0.113.9"
    request = RequestFactory().get("/accounts/login/", **behind)
    assert AccountAdapter(request).get_client_ip(request) == "203.0.113.9"
