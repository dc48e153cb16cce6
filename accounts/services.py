import hashlib
import secrets

from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from .models import ApiKey, Membership, Organization, Role


def hash_api_key(raw_key: str) -> str:
    # Keys are 240 random bits, so a fast hash is safe and keeps auth cheap.
    return hashlib.sha256(raw_key.encode()).hexdigest()


def organization_create(*, name: str, slug: str = "", owner=None) -> Organization:
    from billing.services import account_open

    with transaction.atomic():
        organization = Organization.objects.create(name=name, slug=slug or slugify(name)[:100])
        if owner is not None:
            Membership.objects.create(user=owner, organization=organization, role=Role.OWNER)
        account_open(organization=organization)
    return organization


def api_key_create(*, organization: Organization, name: str, created_by=None, expires_at=None, raw_key: str = ""):
    """Create a key and return (ApiKey, raw key). The raw key is never stored."""
    raw_key = raw_key or ApiKey.PREFIX + secrets.token_urlsafe(30)
    if not raw_key.startswith(ApiKey.PREFIX) or len(raw_key) < len(ApiKey.PREFIX) + 20:
        raise ValueError(f"an API key must start with {ApiKey.PREFIX} and carry at least 20 random characters")
    api_key = ApiKey.objects.create(
        organization=organization,
        name=name,
        prefix=raw_key[: len(ApiKey.PREFIX) + 6],
        hashed_key=hash_api_key(raw_key),
        created_by=created_by,
        expires_at=expires_at,
    )
    return api_key, raw_key


def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    from hub.auth import forget_key

    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
    forget_key(api_key.hashed_key)
    return api_key
