"""What billing tells the layers above it, without importing them.

The gateway caches balances (hub/credit.py) and connects to these in its
AppConfig.ready(); billing sends them on commit.
"""

from django.dispatch import Signal

# organization_id: whose balance or credit changed.
balance_changed = Signal()
