"""What accounts tells the layers above it, without importing them.

The gateway caches keys (hub/auth.py); it connects to `keys_changed` in its
AppConfig.ready(). Sent on commit: sent before, a concurrent request could
read the old row and cache it again for HUB_AUTH_CACHE_SECONDS.
"""

from django.db import transaction
from django.dispatch import Signal

# hashed: the changed key's hash, or None for every key.
keys_changed = Signal()


def keys_changed_on_commit(hashed: str | None = None) -> None:
    transaction.on_commit(lambda: keys_changed.send(sender=None, hashed=hashed))


# organization: a new Organization, sent inside the transaction that creates
# it; billing opens its credit account there (billing/apps.py).
organization_opened = Signal()
