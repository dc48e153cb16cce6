"""Give an operator a TOTP device and print its otpauth:// URL, once."""

from django.core.management.base import BaseCommand, CommandError

from accounts import otp
from accounts.models import User


class Command(BaseCommand):
    help = (
        "Create a confirmed TOTP device for a staff user and print its otpauth:// URL once (to stdout only: "
        "hand it to the operator, who scans it). From the next login on, the admin asks for a code."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument(
            "--replace", action="store_true", help="Delete the user's existing devices first (a lost phone)."
        )

    def handle(self, *args, username, replace, **options):
        user = User.objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user {username!r}.")
        if not user.is_staff:
            raise CommandError(f"{username} is not staff: two-factor sign-in is for the admin.")
        try:
            device = otp.device_create_confirmed(user=user, replace=replace)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(device.config_url)
