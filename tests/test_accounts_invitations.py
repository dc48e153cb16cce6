"""Invitations by email, members' roles, leaving and removal; the last owner stays."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import Invitation, Membership
from tests.actors import as_user, make_user, membership_of

INVITATIONS = "/manage/v1/orgs/acme/invitations/"


@pytest.fixture(autouse=True)
def commit(django_capture_on_commit_callbacks):
    # The email goes when the invitation is committed; each test runs in one transaction.
    invite.commit = django_capture_on_commit_callbacks


def invite(world, mailoutbox, email="newcomer@example.com", role="developer", by=None):
    with invite.commit(execute=True):
        response = as_user(by or world.admin).post(INVITATIONS, {"email": email, "role": role}, format="json")
    assert response.status_code == 201, response.content
    # The email links the dashboard's page (tests/test_dashboard_invitations.py); these tests answer by the API.
    token = re.search(r"http://testserver/dashboard/invitations/(\S+)/$", mailoutbox[-1].body, re.M).group(1)
    return response.json(), f"/manage/v1/invitations/{token}/accept"


def test_an_invitation_is_emailed_with_a_link_and_only_its_hash_is_kept(world, mailoutbox):
    invitation, link = invite(world, mailoutbox)

    assert mailoutbox[-1].to == ["newcomer@example.com"] and "Acme" in mailoutbox[-1].subject
    token = link.split("/")[-2]
    assert token not in Invitation.objects.get(pk=invitation["id"]).hashed_token
    assert invitation["status"] == "pending" and invitation["invited_by"] == "admin"


def test_the_invitee_signs_in_sees_and_accepts(world, mailoutbox):
    _, link = invite(world, mailoutbox)
    newcomer = as_user(make_user("newcomer"))

    preview = newcomer.get(link).json()
    accepted = newcomer.post(link)

    assert preview == {
        "organization": "Acme",
        "email": "newcomer@example.com",
        "role": "developer",
        "status": "pending",
        "expires_at": preview["expires_at"],
    }
    assert accepted.status_code == 200 and accepted.json()["status"] == "accepted"
    assert Membership.objects.get(user__username="newcomer", organization=world.acme).role == "developer"
    assert newcomer.post(link).json()["error"]["code"] == "invitation_accepted"


def test_a_forwarded_link_lets_nobody_else_in(world, mailoutbox):
    _, link = invite(world, mailoutbox)

    response = as_user(world.outsider).post(link)

    assert response.status_code == 403 and response.json()["error"]["code"] == "invitation_email_mismatch"
    assert not Membership.objects.filter(user=world.outsider, organization=world.acme).exists()


def test_declining(world, mailoutbox):
    _, link = invite(world, mailoutbox)
    newcomer = as_user(make_user("newcomer"))

    newcomer.post(link.replace("/accept", "/decline"))

    assert newcomer.post(link).json()["error"]["code"] == "invitation_declined"


def test_an_expired_or_revoked_invitation_cannot_be_accepted(world, mailoutbox):
    expired, expired_link = invite(world, mailoutbox)
    Invitation.objects.filter(pk=expired["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    revoked, revoked_link = invite(world, mailoutbox, email="other@example.com")
    as_user(world.owner).delete(f"{INVITATIONS}{revoked['id']}")

    assert as_user(make_user("newcomer")).post(expired_link).json()["error"]["code"] == "invitation_expired"
    assert as_user(make_user("other")).post(revoked_link).json()["error"]["code"] == "invitation_revoked"


def test_an_unknown_token_is_not_found(world):
    assert as_user(world.owner).get("/manage/v1/invitations/nope/accept").status_code == 404


def test_only_an_owner_invites_an_owner(world, mailoutbox):
    refused = as_user(world.admin).post(INVITATIONS, {"email": "boss@example.com", "role": "owner"}, format="json")

    assert refused.status_code == 403
    invite(world, mailoutbox, email="boss@example.com", role="owner", by=world.owner)


def test_inviting_a_member_again_is_refused(world):
    response = as_user(world.owner).post(INVITATIONS, {"email": "viewer@example.com"}, format="json")

    assert response.status_code == 400 and response.json()["error"]["code"] == "already_member"


def members_url(world, user):
    return f"/manage/v1/orgs/acme/members/{membership_of(user, world.acme).pk}"


def test_the_last_owner_cannot_leave_be_demoted_or_removed(world):
    owner = as_user(world.owner)

    left = owner.post("/manage/v1/orgs/acme/leave")
    demoted = owner.patch(members_url(world, world.owner), {"role": "admin"}, format="json")
    removed = owner.delete(members_url(world, world.owner))

    assert [r.json()["error"]["code"] for r in (left, demoted, removed)] == ["last_owner"] * 3
    assert membership_of(world.owner, world.acme).role == "owner"


def test_with_a_second_owner_the_first_may_leave(world):
    owner = as_user(world.owner)
    owner.patch(members_url(world, world.admin), {"role": "owner"}, format="json")

    response = owner.post("/manage/v1/orgs/acme/leave")

    assert response.status_code == 204
    assert not Membership.objects.filter(user=world.owner, organization=world.acme).exists()
    assert as_user(world.owner).get("/manage/v1/orgs/acme/keys/").status_code == 404


def test_an_admin_cannot_touch_owners(world):
    admin = as_user(world.admin)

    promoted = admin.patch(members_url(world, world.viewer), {"role": "owner"}, format="json")
    demoted = admin.patch(members_url(world, world.owner), {"role": "viewer"}, format="json")
    removed = admin.delete(members_url(world, world.owner))

    assert [r.status_code for r in (promoted, demoted, removed)] == [403, 403, 403]


def test_a_member_leaves_and_a_removed_member_loses_access(world):
    assert as_user(world.viewer).post("/manage/v1/orgs/acme/leave").status_code == 204
    assert as_user(world.admin).delete(members_url(world, world.billing)).status_code == 204

    assert as_user(world.billing).get("/manage/v1/orgs/acme/balance").status_code == 404
    assert {m.user.username for m in world.acme.memberships.all()} == {"owner", "admin", "developer"}


def test_an_unknown_role_is_a_400(world):
    response = as_user(world.owner).patch(members_url(world, world.viewer), {"role": "king"}, format="json")

    assert response.status_code == 400 and response.json()["error"]["param"] == "role"


def test_an_invitation_sent_with_an_admin_key_names_the_organisation_not_the_key(world, mailoutbox):
    from accounts.services import api_key_create
    from tests.actors import as_key

    _, raw = api_key_create(organization=world.acme, name="ops", scope="admin")
    with invite.commit(execute=True):
        response = as_key(raw).post(INVITATIONS, {"email": "keyed@example.com", "role": "viewer"}, format="json")
    assert response.status_code == 201, response.content
    email = mailoutbox[-1]
    assert "sk-hub" not in email.subject + email.body and "key" not in email.subject
    assert email.subject == "You are invited to Acme on the hub"
    assert "You are invited to join Acme on the hub as viewer." in email.body
    with invite.commit(execute=True):
        as_user(world.admin).post(INVITATIONS, {"email": "person@example.com", "role": "viewer"}, format="json")
    assert mailoutbox[-1].subject == "admin@example.com invites you to Acme on the hub"


def test_the_invitation_email_and_the_services_refusals_come_in_the_inviters_language(world, mailoutbox):
    with invite.commit(execute=True):
        response = as_user(world.admin).post(
            INVITATIONS, {"email": "person@example.com", "role": "viewer"}, format="json", HTTP_ACCEPT_LANGUAGE="ja"
        )
    assert response.status_code == 201, response.content
    email = mailoutbox[-1]
    assert email.subject == "admin@example.com さんから hub の Acme への招待"
    assert "として参加する招待が届いています" in email.body and "Hello" not in email.body
    refused = as_user(world.admin).post(
        INVITATIONS, {"email": "boss@example.com", "role": "owner"}, format="json", HTTP_ACCEPT_LANGUAGE="zh-hans"
    )
    assert refused.status_code == 403 and refused.json()["error"]["message"] == "只有所有者才能邀请所有者。"
