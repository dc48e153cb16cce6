"""The dashboard playground's key: one per member and organisation, made on first use.

The playground calls the gateway in-process with this key, so its requests meet the same policy, credit holds,
routing and metering as any API client's, and show in the log under a key the member can see (the keys page
lists it like any other; revoking it there is allowed: the next use makes a new one). Its secret is thrown away
the moment it is made: the hub finds the key by the member, never by the secret, and no one can call with it.
"""

from django.db import IntegrityError, transaction

from .audit import Actor
from .models import ApiKey, KeyPurpose, KeyScope, Organization
from .services import api_key_create

NAME_LENGTH = ApiKey._meta.get_field("name").max_length or 100


def playground_key_of(*, user, organization: Organization) -> ApiKey | None:
    """The member's live playground key in the organisation, if they have used the playground there."""
    return ApiKey.objects.filter(
        organization=organization, created_by=user, purpose=KeyPurpose.PLAYGROUND, revoked_at__isnull=True
    ).first()


def playground_key_for(*, user, organization: Organization, actor: Actor | None = None) -> ApiKey:
    """The member's playground key in the organisation, made (and audited, as key.create) the first time.

    Two first uses at once make one key: the database's one_live_playground_key constraint refuses the second,
    which then reads the first's.
    """
    key = playground_key_of(user=user, organization=organization)
    if key is not None:
        return key
    name = f"Playground · {user.get_username()}"[:NAME_LENGTH]
    try:
        with transaction.atomic():
            key, _ = api_key_create(
                organization=organization,
                name=name,
                created_by=user,
                scope=KeyScope.INFERENCE,
                actor=actor or Actor(user=user),
            )
            ApiKey.objects.filter(pk=key.pk).update(purpose=KeyPurpose.PLAYGROUND)
    except IntegrityError:
        key = playground_key_of(user=user, organization=organization)
        if key is None:
            raise
        return key
    key.purpose = KeyPurpose.PLAYGROUND
    return key
