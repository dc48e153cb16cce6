"""Every cell of the role matrix, through the API: allowed → 2xx, refused → 403."""

import pytest

from accounts import permissions
from accounts.services import api_key_create
from tests.actors import ROLES, as_key, as_user, membership_of

BASE = "/manage/v1/orgs/acme/"

# action → (method, path, body, success status). Paths may name the world's objects.
REQUESTS = {
    "view_keys": ("get", "keys/", None, 200),
    "create_keys": ("post", "keys/", {"name": "ci"}, 201),
    "create_admin_keys": ("post", "keys/", {"name": "ops", "scope": "admin"}, 201),
    "revoke_keys": ("post", "keys/{acme_key}/revoke", None, 200),
    "view_usage": ("get", "usage/", None, 200),
    "manage_teams": ("post", "teams/", {"name": "ml"}, 201),
    "view_balance": ("get", "balance", None, 200),
    "view_members": ("get", "members/", None, 200),
    "invite_members": ("post", "invitations/", {"email": "new@example.com", "role": "viewer"}, 201),
    "change_roles": ("patch", "members/{viewer_membership}", {"role": "developer"}, 200),
    "manage_organization": ("patch", "", {"name": "Acme Renamed"}, 200),
    "remove_members": ("delete", "members/{viewer_membership}", None, 204),
    "view_audit_log": ("get", "audit/", None, 200),
}
# The billing app's endpoints (checkout, invoices) check these through permissions.allows.
NOT_HERE = {"buy_credits", "view_invoices"}
# The playground is a dashboard page, not a management endpoint: its API is the gateway itself
# (tests/test_playground.py checks each role against it).
PAGES = {"use_playground"}
EXTRA = {  # endpoints that need more than one action, named after the strictest
    "rotate_keys": (("revoke_keys",), ("post", "keys/{acme_key}/rotate", None, 201)),
    "usage_totals": (("view_usage",), ("get", "usage/totals", None, 200)),
    "usage_export": (("view_usage",), ("get", "usage/export.csv", None, 200)),
    "list_invitations": (("invite_members",), ("get", "invitations/", None, 200)),
    "revoke_invitation": (("invite_members",), ("delete", "invitations/{acme_invitation}", None, 204)),
}


def test_every_action_of_the_matrix_has_a_request_here_or_in_billing():
    assert set(REQUESTS) | NOT_HERE | PAGES == set(permissions.ACTIONS)


def cases():
    for role in [*ROLES, "admin key"]:
        acting = permissions.KEY_ROLE if role == "admin key" else role
        for action, request in REQUESTS.items():
            yield pytest.param(role, request, permissions.allows(acting, action), id=f"{role}-{action}")
        for name, (actions, request) in EXTRA.items():
            allowed = all(permissions.allows(acting, a) for a in actions)
            yield pytest.param(role, request, allowed, id=f"{role}-{name}")


@pytest.mark.parametrize("role, request_, allowed", list(cases()))
def test_role_matrix(world, role, request_, allowed):
    from accounts.services import invitation_create

    method, path, body, success = request_
    invitation, _ = invitation_create(
        organization=world.acme, email="pending@example.com", role="viewer", actor_role="owner"
    )
    path = path.format(
        acme_key=world.acme_key.pk,
        viewer_membership=membership_of(world.viewer, world.acme).pk,
        acme_invitation=invitation.pk,
    )
    if role == "admin key":
        client = as_key(api_key_create(organization=world.acme, name="ops", scope="admin")[1])
    else:
        client = as_user(getattr(world, role))

    response = getattr(client, method)(BASE + path, body, format="json")

    if allowed:
        assert response.status_code == success, response.content
    else:
        assert response.status_code == 403, response.content
        assert response.json()["error"]["code"] == "permission_denied"


@pytest.mark.parametrize("action", sorted(NOT_HERE))
@pytest.mark.parametrize("role", ROLES)
def test_billing_actions_of_the_matrix(role, action):
    assert permissions.allows(role, action) == (role in {"owner", "billing"})


def test_an_unknown_action_is_a_bug_not_a_refusal():
    with pytest.raises(KeyError):
        permissions.allows("owner", "launch_rockets")


def test_every_role_can_list_its_organisations(world):
    for role in ROLES:
        response = as_user(getattr(world, role)).get("/manage/v1/orgs/")
        assert response.json() == [{"slug": "acme", "name": "Acme", "role": role}]
