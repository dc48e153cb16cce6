"""The cast of the management API's stories, shared by the test_manage_* and test_accounts_* files.

Acme (slug `acme`) has one member of every role: owner, admin, developer,
billing, viewer; Globex (slug `globex`) belongs to the outsider, with a key, a
member, an invitation and some usage of its own.
"""

from datetime import timedelta
from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

ROLES = ["owner", "admin", "developer", "billing", "viewer"]


def make_user(username: str):
    from accounts.models import User

    return User.objects.create_user(username=username, email=f"{username}@example.com", password="pw-not-used")


def usage(organization, *, model="openai/gpt-4o-mini", when=None, prompt=10, completion=5, price="0.002", api_key=None):
    from billing.models import UsageRecord

    return UsageRecord.objects.create(
        request_id=f"req-{UsageRecord.objects.count() + 1}-{organization.slug}",
        organization=organization,
        api_key=api_key,
        model_name=model,
        status="ok",
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        price=Decimal(price),
        created_at=when or timezone.now(),
    )


def as_user(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def as_key(raw_key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    return client


@pytest.fixture
def world(db):
    from accounts.models import Membership
    from accounts.services import api_key_create, invitation_create, organization_create
    from billing.services import credit_grant

    w = SimpleNamespace()
    w.owner = make_user("owner")
    w.acme = organization_create(name="Acme", owner=w.owner)
    for role in ROLES[1:]:
        user = make_user(role)
        setattr(w, role, user)
        Membership.objects.create(user=user, organization=w.acme, role=role)
    w.acme_key, w.acme_raw_key = api_key_create(organization=w.acme, name="acme app", created_by=w.developer)
    w.acme_usage = usage(w.acme, api_key=w.acme_key)
    credit_grant(organization=w.acme, amount=Decimal("10"), description="test credit")

    w.outsider = make_user("outsider")
    w.globex = organization_create(name="Globex", owner=w.outsider)
    w.globex_member = make_user("globex-member")
    w.globex_membership = Membership.objects.create(user=w.globex_member, organization=w.globex, role="developer")
    w.globex_key, _ = api_key_create(organization=w.globex, name="globex app")
    w.globex_invitation, _ = invitation_create(
        organization=w.globex, email="new@example.com", role="viewer", actor_role="owner"
    )
    usage(w.globex, model="globex-secret-model", price="7")
    credit_grant(organization=w.globex, amount=Decimal("99"), description="globex credit")
    w.yesterday = (timezone.now() - timedelta(days=1)).date()
    return w


def membership_of(user, organization):
    return organization.memberships.get(user=user)
