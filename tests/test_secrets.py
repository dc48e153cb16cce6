"""Provider secrets are encrypted at rest and write-only; hub keys are hashed and shown once."""

import hashlib
import logging

import openai
import pytest
from django.db import connection
from django.test import Client

from accounts.models import ApiKey, User
from providers.models import Credential
from tests.conftest import UPSTREAM_KEY
from tests.factories import add_model


def test_a_provider_secret_is_encrypted_at_rest(openai_provider):
    with connection.cursor() as cursor:
        cursor.execute("SELECT encrypted_secret, secret_hint FROM providers_credential")
        ((stored, hint),) = cursor.fetchall()
    assert UPSTREAM_KEY not in stored
    assert hint == "…" + UPSTREAM_KEY[-4:]
    assert Credential.objects.get().get_secret() == UPSTREAM_KEY


def test_secrets_survive_a_key_rotation(openai_provider, settings):
    from cryptography.fernet import Fernet
    from django.core.management import call_command

    from providers import crypto

    old_token = Credential.objects.get().encrypted_secret
    settings.HUB_ENCRYPTION_KEYS = [Fernet.generate_key().decode(), *settings.HUB_ENCRYPTION_KEYS]
    crypto.reset_cache()
    try:
        assert Credential.objects.get().get_secret() == UPSTREAM_KEY  # old key still decrypts
        call_command("rotate_secrets", stdout=open("/dev/null", "w"))
        credential = Credential.objects.get()
        assert credential.encrypted_secret != old_token and credential.get_secret() == UPSTREAM_KEY
        settings.HUB_ENCRYPTION_KEYS = settings.HUB_ENCRYPTION_KEYS[:1]  # the old key can now go
        crypto.reset_cache()
        assert Credential.objects.get().get_secret() == UPSTREAM_KEY
    finally:
        crypto.reset_cache()


@pytest.fixture
def operator(transactional_db):
    return User.objects.create_superuser("operator", "op@example.com", "pw")


def test_the_admin_never_shows_a_secret(openai_provider, operator):
    browser = Client()
    browser.force_login(operator)
    credential = Credential.objects.get()
    for url in [
        f"/admin/providers/credential/{credential.pk}/change/",
        f"/admin/providers/provider/{openai_provider.pk}/change/",
        "/admin/providers/credential/",
    ]:
        page = browser.get(url).content.decode()
        assert UPSTREAM_KEY not in page and credential.encrypted_secret not in page, url
        assert "…" + UPSTREAM_KEY[-4:] in page or url.endswith("credential/")


def test_the_admin_keeps_the_secret_when_the_field_is_left_empty(openai_provider, operator):
    browser = Client()
    browser.force_login(operator)
    credential = Credential.objects.get()
    url = f"/admin/providers/credential/{credential.pk}/change/"
    form = {"provider": openai_provider.pk, "name": "main", "enabled": "on", "weight": 1, "priority": 0}
    response = browser.post(url, dict(form, secret=""))
    assert response.status_code == 302
    assert Credential.objects.get().get_secret() == UPSTREAM_KEY
    browser.post(url, dict(form, secret="sk-new-secret-value-1234"))
    assert Credential.objects.get().get_secret() == "sk-new-secret-value-1234"


def test_an_api_key_is_stored_only_as_a_hash(api_key):
    stored = ApiKey.objects.get()
    assert stored.hashed_key == hashlib.sha256(api_key.encode()).hexdigest()
    assert stored.prefix == api_key[:13] and api_key.startswith("sk-hub-")
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM accounts_apikey")
        assert api_key not in repr(cursor.fetchall())


def test_the_admin_shows_a_new_key_once(organization, operator):
    browser = Client()
    browser.force_login(operator)
    response = browser.post(
        "/admin/accounts/apikey/add/",
        {
            "organization": organization.pk,
            "name": "ci",
            "budget_period": "monthly",
            "allowed_models": "[]",
            "allowed_ips": "[]",
        },
        follow=True,
    )
    page = response.content.decode()
    raw = page.split("it will not be shown again: ")[1][:47]
    assert ApiKey.objects.get(name="ci").hashed_key == hashlib.sha256(raw.encode()).hexdigest()
    again = browser.get(f"/admin/accounts/apikey/{ApiKey.objects.get(name='ci').pk}/change/").content.decode()
    assert raw not in again


def test_no_secret_reaches_a_log_line_or_a_response(hub, api_key, openai_provider, upstream, caplog):
    caplog.set_level(logging.DEBUG)
    client = openai.OpenAI(base_url=f"{hub.url}/v1", api_key=api_key, max_retries=0)
    add_model(openai_provider, "openai/gpt-4o-mini", "gpt-4o-mini")
    add_model(openai_provider, "openai/auth-fails", "fake-error-401")
    add_model(openai_provider, "openai/down", "fake-error-500")
    bodies = [
        client.chat.completions.with_raw_response.create(
            model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        ).text
    ]
    for model in ("openai/auth-fails", "openai/down"):
        with pytest.raises(openai.APIStatusError) as raised:
            client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
        bodies.append(raised.value.response.text)
    hub.drain()
    logged = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    for secret in (UPSTREAM_KEY, api_key, Credential.objects.get().encrypted_secret):
        assert secret not in logged
        assert all(secret not in body for body in bodies)


def test_the_log_filter_masks_keys():
    from hub.logging import redact

    line = redact("calling with Authorization: Bearer sk-abcdefghijklmnopqrstuvwxyz and key=AIzaSyA1234567890abcdef")
    assert "abcdefghijklmnop" not in line and "A1234567890abcdef" not in line


@pytest.mark.parametrize("name", ["uvicorn.error", "uvicorn.access", "hub.relay", "gunicorn.error", "a.library"])
def test_a_handler_an_operator_adds_to_any_logger_sees_no_secret(name):
    """Only settings.LOGGING's console handler had the redaction filter: a file or syslog handler added
    to uvicorn's, gunicorn's or the hub's loggers (or a library's, not propagating) wrote keys as logged."""
    import io
    import logging

    from uvicorn.logging import AccessFormatter

    secret, google = "sk-proj-" + "Zq8Wm3Xk7Lp2Nv9Bt4Yr6Hs1", "AIzaSyA1234567890abcdefGHIJ"
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    logger = logging.getLogger(name)
    logger.addHandler(handler)
    saved = logger.propagate, logger.level, logger.disabled  # the live hub's uvicorn may have set them
    logger.propagate, logger.disabled = False, False
    logger.setLevel(logging.INFO)
    try:
        if name == "uvicorn.access":
            # uvicorn's access formatter reads the record's arguments itself: they stay a tuple, each scrubbed.
            handler.setFormatter(AccessFormatter(use_colors=False))
            logger.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5", "GET", f"/v1/x?key={google}", "1.1", 200)
        else:
            logger.warning("upstream said %s", f"Authorization: Bearer {secret}")
            logger.error(f"key={google} in the message itself")
            try:
                raise RuntimeError(f"provider echoed x-api-key: {secret}")
            except RuntimeError:
                logger.exception("failed")
            logger.warning("here", stack_info=True, extra={"unused": secret})
    finally:
        logger.removeHandler(handler)
        logger.propagate, logger.level, logger.disabled = saved
    written = out.getvalue()
    assert written and secret[8:20] not in written and google[4:20] not in written, written
    assert "upstream said" in written or "GET /v1/x?key=" in written
