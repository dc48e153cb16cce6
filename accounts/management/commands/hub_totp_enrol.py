"""Give an operator a TOTP authenticator (allauth.mfa) and print its otpauth:// URL, once."""

from allauth.mfa.adapter import get_adapter
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts.models import User


class Command(BaseCommand):
    help = (
        "Give a staff user a TOTP authenticator and print its otpauth:// URL once (to stdout only: hand it to the "
        "operator, who scans it). From the next login on, the login asks for a code."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument(
            "--replace", action="store_true", help="Remove the user's existing authenticators first (a lost phone)."
        )

    def handle(self, *args, username, replace, **options):
        user = User.objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user {username!r}.")
        if not user.is_staff:
            raise CommandError(f"{username} is not staff: everyone else enrols at /accounts/2fa/.")
        with transaction.atomic():
            existing = Authenticator.objects.filter(user=user)
            if existing.filter(type=Authenticator.Type.TOTP).exists() and not replace:
                raise CommandError(f"{username} already has an authenticator (use --replace to start over).")
            existing.delete()  # recovery codes too: they went with the lost phone
            secret = generate_totp_secret()
            TOTP.activate(user, secret)
        self.stdout.write(get_adapter().build_totp_url(user, secret))
