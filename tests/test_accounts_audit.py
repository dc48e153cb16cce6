"""The audit log: every change through the services leaves one event; operators' admin changes too."""

from decimal import Decimal

import pytest
from django.contrib.auth.models import Group

from accounts.models import AuditEvent
from accounts.services import api_key_create
from tests import factories
from tests.actors import as_key, as_user, membership_of

BASE = "/manage/v1/orgs/acme/"


def actions(organization):
    return list(AuditEvent.objects.filter(organization=organization).order_by("id").values_list("action", flat=True))


def test_each_change_through_the_api_writes_one_event_with_actor_and_address(world):
    admin = as_user(world.admin)
    before = AuditEvent.objects.count()

    key = admin.post(BASE + "keys/", {"name": "ci"}, format="json", REMOTE_ADDR="203.0.113.7").json()
    admin.post(BASE + f"keys/{key['id']}/revoke")
    admin.patch(BASE + f"members/{membership_of(world.viewer, world.acme).pk}", {"role": "developer"}, format="json")
    invitation = admin.post(BASE + "invitations/", {"email": "x@example.com"}, format="json").json()
    admin.delete(BASE + f"invitations/{invitation['id']}")
    admin.delete(BASE + f"members/{membership_of(world.billing, world.acme).pk}")

    events = list(AuditEvent.objects.order_by("id")[before:])
    assert [e.action for e in events] == [
        "key.create",
        "key.revoke",
        "member.role_change",
        "invitation.create",
        "invitation.revoke",
        "member.remove",
    ]
    assert {e.actor_user for e in events} == {world.admin} and {e.organization for e in events} == {world.acme}
    assert events[0].ip_address == "203.0.113.7" and events[0].target_id == str(key["id"])
    assert events[2].details == {"user": "viewer", "from": "viewer", "to": "developer"}
    assert "sk-hub-" not in str([e.details for e in events]).replace(key["prefix"], "")


def test_a_key_acting_is_named_as_the_actor(world):
    admin_key, raw = api_key_create(organization=world.acme, name="ops", scope="admin")

    as_key(raw).post(BASE + "keys/", {"name": "by key"}, format="json")

    event = AuditEvent.objects.latest("id")
    assert event.actor_key == admin_key and event.actor_user is None and event.actor_label.startswith("key sk-hub-")


def test_only_owners_read_the_audit_log_and_only_their_organisations(world):
    as_user(world.owner).post(BASE + "keys/", {"name": "ci"}, format="json")

    log = as_user(world.owner).get(BASE + "audit/").json()["results"]

    assert log[0]["action"] == "key.create" and log[0]["actor"] == "owner@example.com"
    assert {e["action"] for e in log} <= {"key.create", "invitation.create", "credit.grant"}
    assert as_user(world.admin).get(BASE + "audit/").status_code == 403


def test_events_cannot_be_edited_or_deleted(world):
    event = AuditEvent.objects.filter(organization=world.acme).first()

    for attempt in (
        event.save,
        event.delete,
        AuditEvent.objects.all().delete,
        lambda: AuditEvent.objects.update(action="x"),
    ):
        with pytest.raises(ValueError, match="append-only"):
            attempt()


@pytest.fixture
def operator(world):
    from django.test import Client

    from accounts.models import User

    client = Client()
    user = User.objects.create_superuser("op", "op@example.com", "pw")
    client.force_login(user)
    return client


def test_a_credit_grant_in_the_admin_is_audited(world, operator):
    operator.post(
        "/admin/billing/ledgerentry/add/",
        {"account": world.acme.credit.pk, "kind": "grant", "amount": "5", "description": "goodwill"},
    )

    event = AuditEvent.objects.get(action="admin.ledgerentry.add")
    assert event.organization == world.acme and event.actor_user.username == "op"
    assert event.details["amount"] == str(Decimal("5").quantize(Decimal("1e-10"))) and event.details["kind"] == "grant"


def test_a_credential_change_in_the_admin_is_audited_without_its_secret(world, operator):
    provider = factories.provider("openai", kind="openai_compatible", preset="openai")
    response = operator.post(
        "/admin/providers/credential/add/",
        {
            "provider": provider.pk,
            "name": "main",
            "secret": "sk-very-secret-123456",
            "enabled": "on",
            "weight": 1,
            "priority": 0,
        },
    )

    assert response.status_code == 302, response.content

    event = AuditEvent.objects.get(action="admin.credential.add")
    assert event.organization is None and "very-secret" not in str(event.details)


def test_operators_read_the_audit_log_in_the_admin_but_cannot_change_it(world, operator):
    event = AuditEvent.objects.first()

    assert operator.get("/admin/accounts/auditevent/").status_code == 200
    assert operator.get(f"/admin/accounts/auditevent/{event.pk}/change/").status_code == 200
    assert operator.post(f"/admin/accounts/auditevent/{event.pk}/delete/", {"post": "yes"}).status_code == 403
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_the_operator_groups_exist_with_their_permissions(db):
    perms = {
        g.name: {f"{p.content_type.app_label}.{p.codename}" for p in g.permissions.all()}
        for g in Group.objects.prefetch_related("permissions__content_type")
    }

    assert {"support", "finance", "providers"} <= set(perms)
    assert "accounts.view_organization" in perms["support"]
    assert not any(p.startswith("providers.") and "credential" in p for p in perms["support"])
    assert not any(p.split(".")[1].startswith(("add_", "change_", "delete_")) for p in perms["support"])
    assert {"billing.add_ledgerentry", "billing.change_modelrate"} <= perms["finance"]
    assert {"providers.change_credential", "providers.add_catalogmodel"} <= perms["providers"]
    assert "billing.change_modelrate" not in perms["providers"]


def test_syncing_the_operator_groups_again_changes_nothing(db):
    from django.apps import apps

    from accounts.permissions import sync_operator_groups

    sync_operator_groups(apps)  # picks up the permissions of models added after accounts.0003
    before = {g.name: set(g.permissions.values_list("pk", flat=True)) for g in Group.objects.all()}
    sync_operator_groups(apps)

    assert {g.name: set(g.permissions.values_list("pk", flat=True)) for g in Group.objects.all()} == before


def test_a_support_operator_sees_tenants_but_not_credentials(world):
    from django.test import Client

    from accounts.models import User

    client = Client()
    support = User.objects.create_user("helpdesk", password="pw", is_staff=True)
    support.groups.add(Group.objects.get(name="support"))
    client.force_login(support)

    assert client.get(f"/admin/accounts/organization/{world.acme.pk}/change/").status_code == 200
    assert client.get("/admin/providers/credential/").status_code == 403
    assert (
        client.post(
            f"/admin/accounts/organization/{world.acme.pk}/change/", {"name": "Hacked", "slug": "acme"}
        ).status_code
        == 403
    )


def test_credit_the_system_moves_is_audited(transactional_db):
    from decimal import Decimal

    from accounts.models import AuditEvent
    from accounts.services import organization_create
    from billing.services import credit_grant

    org = organization_create(name="Initech")
    entry = credit_grant(
        organization=org, amount=Decimal("25"), description="Stripe payment", idempotency_key="stripe:payment:pi_123"
    )
    credit_grant(organization=org, amount=Decimal("25"), idempotency_key="stripe:payment:pi_123")  # a replay
    (event,) = AuditEvent.objects.filter(action="credit.grant")
    assert (event.organization, event.target_id, event.details["amount"]) == (org, str(entry.pk), "25.0000000000")
    assert event.actor_user is None


def test_operator_changes_in_the_admin_are_audited_with_their_address_bulk_deletions_too(transactional_db):
    from django.test import Client

    from accounts.models import User
    from providers.models import Provider

    operator = User.objects.create_superuser("operator", "op@example.com", "pw")
    browser = Client(REMOTE_ADDR="198.51.100.7")
    browser.force_login(operator)
    browser.post(
        "/admin/providers/provider/add/",
        {
            "name": "acme-ai",
            "kind": "openai_compatible",
            "preset": "openai",
            "base_url": "",
            "options": "{}",
            "enabled": "on",
            "credentials-TOTAL_FORMS": "0",
            "credentials-INITIAL_FORMS": "0",
        },
    )
    factories.provider("old-one", preset="openai")
    factories.provider("old-two", preset="openai")
    ids = list(Provider.objects.filter(name__startswith="old-").values_list("pk", flat=True))
    browser.post("/admin/providers/provider/", {"action": "delete_selected", "_selected_action": ids, "post": "yes"})
    added = AuditEvent.objects.get(action="admin.provider.add")
    assert (added.actor_user, added.ip_address) == (operator, "198.51.100.7")
    deleted = AuditEvent.objects.filter(action="admin.provider.delete")
    assert sorted(e.target_id for e in deleted) == sorted(map(str, ids))
    assert {e.ip_address for e in deleted} == {"198.51.100.7"}
