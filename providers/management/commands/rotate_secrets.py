from django.core.management.base import BaseCommand
from django.db import transaction

from providers import crypto
from providers.models import Credential


class Command(BaseCommand):
    help = "Re-encrypt every provider secret with the first key of HUB_ENCRYPTION_KEYS."

    @transaction.atomic
    def handle(self, *args, **options):
        count = 0
        for credential in Credential.objects.select_for_update().exclude(encrypted_secret=""):
            credential.encrypted_secret = crypto.rotate(credential.encrypted_secret)
            credential.save(update_fields=["encrypted_secret", "updated_at"])
            count += 1
        self.stdout.write(f"re-encrypted {count} secret(s)")
