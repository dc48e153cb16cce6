"""A member of Acme can read, change or spend nothing of Globex, and cannot even tell what exists there."""

import pytest

from accounts.models import ApiKey, Invitation, Membership
from accounts.services import api_key_create
from tests.actors import as_key, as_user

# Every organisation-scoped endpoint: (method, path under orgs/<slug>/, body).
ENDPOINTS = [
    ("get", "keys/", None),
    ("post", "keys/", {"name": "stolen"}),
    ("post", "keys/{key}/revoke", None),
    ("post", "keys/{key}/rotate", None),
    ("get", "members/", None),
    ("patch", "members/{member}", {"role": "owner"}),
    ("delete", "members/{member}", None),
    ("post", "leave", None),
    ("get", "invitations/", None),
    ("post", "invitations/", {"email": "spy@example.com", "role": "owner"}),
    ("delete", "invitations/{invitation}", None),
    ("get", "usage/", None),
    ("get", "usage/totals", None),
    ("get", "balance", None),
    ("get", "audit/", None),
]
OBJECT_ENDPOINTS = [e for e in ENDPOINTS if "{" in e[1]]


def globex_ids(world):
    return {"key": world.globex_key.pk, "member": world.globex_membership.pk, "invitation": world.globex_invitation.pk}


def acme_clients(world):
    admin_key = api_key_create(organization=world.acme, name="ops", scope="admin")[1]
    return {"acme owner": as_user(world.owner), "acme admin key": as_key(admin_key)}


def assert_globex_untouched(world):
    assert ApiKey.objects.filter(organization=world.globex).count() == 1
    assert ApiKey.objects.get(pk=world.globex_key.pk).revoked_at is None
    assert Membership.objects.get(pk=world.globex_membership.pk).role == "developer"
    assert Invitation.objects.get(pk=world.globex_invitation.pk).status == "pending"
    assert Invitation.objects.filter(organization=world.globex).count() == 1


@pytest.mark.parametrize("method, path, body", ENDPOINTS, ids=[f"{m} {p}" for m, p, _ in ENDPOINTS])
def test_another_organisations_slug_is_not_found(world, method, path, body):
    for name, client in acme_clients(world).items():
        response = getattr(client, method)(
            "/manage/v1/orgs/globex/" + path.format(**globex_ids(world)), body, format="json"
        )

        assert response.status_code == 404, (name, response.content)
        assert response.json()["error"]["message"] == "No such organisation."
    assert_globex_untouched(world)


@pytest.mark.parametrize("method, path, body", ENDPOINTS, ids=[f"{m} {p}" for m, p, _ in ENDPOINTS])
def test_a_slug_that_does_not_exist_answers_the_same(world, method, path, body):
    response = getattr(as_user(world.owner), method)(
        "/manage/v1/orgs/nowhere/" + path.format(key=1, member=1, invitation=1), body, format="json"
    )

    assert response.status_code == 404
    assert response.json()["error"]["message"] == "No such organisation."


@pytest.mark.parametrize("method, path, body", OBJECT_ENDPOINTS, ids=[f"{m} {p}" for m, p, _ in OBJECT_ENDPOINTS])
def test_another_organisations_objects_are_not_found_under_ones_own_slug(world, method, path, body):
    for name, client in acme_clients(world).items():
        response = getattr(client, method)(
            "/manage/v1/orgs/acme/" + path.format(**globex_ids(world)), body, format="json"
        )

        assert response.status_code == 404, (name, response.content)
    assert_globex_untouched(world)


def test_reads_show_only_ones_own_organisation(world):
    owner = as_user(world.owner)

    keys = owner.get("/manage/v1/orgs/acme/keys/").json()
    members = owner.get("/manage/v1/orgs/acme/members/").json()
    usage = owner.get("/manage/v1/orgs/acme/usage/").json()["results"]
    totals = owner.get("/manage/v1/orgs/acme/usage/totals").json()
    balance = owner.get("/manage/v1/orgs/acme/balance").json()
    audit = owner.get("/manage/v1/orgs/acme/audit/").json()["results"]
    invitations = owner.get("/manage/v1/orgs/acme/invitations/").json()

    assert [k["name"] for k in keys] == ["acme app"]
    assert "outsider" not in {m["username"] for m in members} and len(members) == 5
    assert {u["model"] for u in usage} == {t["model"] for t in totals} == {"openai/gpt-4o-mini"}
    assert balance["balance"] == "10.0000000000"
    assert invitations == []
    assert all("globex" not in str(event["details"]).lower() for event in audit)


def test_an_admin_key_of_globex_cannot_manage_acme(world):
    globex_admin = as_key(api_key_create(organization=world.globex, name="ops", scope="admin")[1])

    assert globex_admin.get("/manage/v1/orgs/acme/keys/").status_code == 404
    assert globex_admin.get("/manage/v1/orgs/globex/keys/").status_code == 200
    assert [o["slug"] for o in globex_admin.get("/manage/v1/orgs/").json()] == ["globex"]
