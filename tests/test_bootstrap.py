"""`make run`'s bootstrap: a demo organisation, a key and the free offline demo provider."""

import io

import openai
from django.core.management import call_command

from accounts.models import ApiKey, AuditEvent, Membership, Organization, User
from billing.models import LedgerEntry, UsageRecord
from tests.actors import as_user


def bootstrap(*args) -> str:
    out = io.StringIO()
    call_command("hub_bootstrap", *args, stdout=out)
    return out.getvalue().strip()


def test_bootstrap_is_idempotent_and_prints_the_same_key(transactional_db):
    first = bootstrap("--key-only")
    assert first.startswith("sk-hub-")
    assert bootstrap("--key-only") == first
    assert Organization.objects.filter(slug="demo").count() == 1
    assert ApiKey.objects.count() == 1
    assert LedgerEntry.objects.filter(idempotency_key="bootstrap:demo-credits").count() == 1


def test_the_admin_user_owns_the_demo_organisation_and_reaches_the_management_api(transactional_db):
    first = bootstrap()
    assert "python manage.py changepassword admin" in first and "/manage/v1/docs/" in first
    assert "API docs: http://127.0.0.1:8000/docs/api/ (OpenAPI: http://127.0.0.1:8000/v1/openapi.json)" in first
    again = bootstrap()
    assert "password" not in again and "/manage/v1/docs/" in again  # the password is shown once
    admin = User.objects.get(username="admin")
    (membership,) = Membership.objects.filter(user=admin)
    assert (membership.organization.slug, membership.role) == ("demo", "owner")
    assert AuditEvent.objects.filter(action="member.add").count() == 1
    manage = as_user(admin)
    assert [o["slug"] for o in manage.get("/manage/v1/orgs/").json()] == ["demo"]
    keys = manage.get("/manage/v1/orgs/demo/keys/")
    assert keys.status_code == 200 and [k["name"] for k in keys.json()] == ["demo"]


def test_a_superuser_made_before_is_the_owner_and_a_changed_role_is_kept(transactional_db):
    root = User.objects.create_superuser("root", "root@example.com", "pw-not-used")
    output = bootstrap()
    assert "password" not in output and not User.objects.filter(username="admin").exists()
    membership = Membership.objects.get(user=root, organization__slug="demo")
    assert membership.role == "owner"
    Membership.objects.filter(pk=membership.pk).update(role="viewer")
    bootstrap()
    assert Membership.objects.get(pk=membership.pk).role == "viewer"


def test_bootstrap_uses_the_key_from_the_environment(transactional_db, settings):
    settings.HUB_DEMO_API_KEY = "sk-hub-demo-key-from-environment-0001"
    assert bootstrap("--key-only") == settings.HUB_DEMO_API_KEY


def test_the_demo_provider_answers_offline_and_free(hub):
    key = bootstrap("--key-only")
    client = openai.OpenAI(base_url=f"{hub.url}/v1", api_key=key, max_retries=0)
    reply = client.chat.completions.create(model="demo/echo", messages=[{"role": "user", "content": "ping pong"}])
    assert reply.choices[0].message.content == "Hello from the hub's demo model! You said: ping pong"
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (5, 10)
    words = [
        c.choices[0].delta.content
        for c in client.chat.completions.create(
            model="demo",
            messages=[{"role": "user", "content": "ping pong"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        if c.choices and c.choices[0].delta.content
    ]
    assert len(words) == 10 and "".join(words) == reply.choices[0].message.content
    cut = client.chat.completions.create(model="demo", messages=[{"role": "user", "content": "x"}], max_tokens=3)
    assert cut.choices[0].finish_reason == "length" and cut.usage.completion_tokens == 3
    hub.drain()
    assert UsageRecord.objects.count() == 3 and all(r.price == 0 for r in UsageRecord.objects.all())


def test_the_home_page_shows_how_to_call_the_hub(hub):
    import httpx

    page = httpx.get(f"{hub.url}/").text
    assert f"{hub.url}/v1" in page and "chat/completions" in page


def test_the_home_page_lists_every_gateway_endpoint_and_links_to_the_docs(hub):
    import html

    import httpx
    from django.urls import get_resolver

    page = html.unescape(httpx.get(f"{hub.url}/").text)
    routes = {
        str(p.pattern).replace("<path:model_id>", "{id}").replace("<str:name>", "{name}")
        for p in get_resolver().url_patterns
        if str(p.pattern).startswith("v1/")
    }
    assert len(routes) == 14
    for route in routes:
        assert f"{hub.url}/{route}</code>" in page, route
    assert 'href="/manage/v1/docs/"' in page and 'href="/docs/api/"' in page and "README.md" in page


def test_static_files_are_served_under_asgi(hub):
    import httpx

    response = httpx.get(f"{hub.url}/static/hub/hub.css")
    assert response.status_code == 200 and "font-family" in response.text
    assert response.headers["content-type"].startswith("text/css")
