"""Two-factor sign-in for operators: TOTP devices (django-otp) on the admin.

A staff user with a confirmed TOTP device must give a code at every admin
login; with HUB_OPERATOR_2FA_REQUIRED every staff user must, and one without a
device is sent to enrol first. Tenants (non-staff sessions, the management API,
API keys) are untouched.

A device's secret is shown once, while it is being enrolled (unconfirmed); once
confirmed it is never rendered again (OTP_ADMIN_HIDE_SENSITIVE_DATA hides it in
the admin too).
"""

import io

from django.conf import settings
from django.db import transaction
from django_otp import devices_for_user, user_has_device, verify_token
from django_otp.plugins.otp_totp.models import TOTPDevice


def code_required(user) -> bool:
    """Must this user give a code to sign in to the admin?"""
    return bool(user.is_staff and (settings.HUB_OPERATOR_2FA_REQUIRED or user_has_device(user)))


def must_enrol(user) -> bool:
    """A signed-in operator who has to set up a device before using the admin."""
    return bool(
        user.is_authenticated
        and user.is_active
        and user.is_staff
        and settings.HUB_OPERATOR_2FA_REQUIRED
        and not user_has_device(user)
    )


def is_verified(user) -> bool:
    # Set by django_otp's OTPMiddleware: the session was signed in with a device.
    return bool(getattr(user, "is_verified", lambda: False)())


def device_for_code(user, code: str):
    """The confirmed device that accepts this code, or None.

    django-otp refuses a code already used (a TOTP device remembers the last
    time step it accepted) and throttles a device after failures.
    """
    code = (code or "").strip().replace(" ", "")
    if not code:
        return None
    for device in devices_for_user(user):
        verified = verify_token(user, device.persistent_id, code)
        if verified is not None:
            return verified
    return None


@transaction.atomic
def enrolment_start(*, user) -> TOTPDevice:
    """A fresh unconfirmed device; any earlier unconfirmed one (its secret already shown) is dropped."""
    TOTPDevice.objects.filter(user=user, confirmed=False).delete()
    return TOTPDevice.objects.create(user=user, name="authenticator", confirmed=False)


def enrolment_pending(*, user) -> TOTPDevice | None:
    return TOTPDevice.objects.filter(user=user, confirmed=False).order_by("-pk").first()


def enrolment_confirm(*, device: TOTPDevice, code: str) -> bool:
    """Confirm the device if the code is right (the first code proves the app holds the secret)."""
    with transaction.atomic():
        device = TOTPDevice.objects.select_for_update().get(pk=device.pk)
        if not device.verify_token((code or "").strip().replace(" ", "")):
            return False
        device.confirmed = True
        device.save(update_fields=["confirmed"])
    return True


@transaction.atomic
def device_create_confirmed(*, user, replace: bool = False) -> TOTPDevice:
    """For `hub_totp_enrol`: an operator hands the URL to its owner, who needs a code from the next login on."""
    existing = TOTPDevice.objects.filter(user=user)
    if replace:
        existing.delete()
    elif existing.filter(confirmed=True).exists():
        raise ValueError(f"{user.get_username()} already has a confirmed device (use --replace to start over).")
    else:
        existing.delete()  # unconfirmed leftovers of an abandoned enrolment
    return TOTPDevice.objects.create(user=user, name="authenticator", confirmed=True)


def qr_code_svg(data: str) -> str:
    """An inline SVG of the otpauth:// URL, or "" without the qrcode package."""
    try:
        import qrcode
        import qrcode.image.svg
    except ModuleNotFoundError:
        return ""
    out = io.BytesIO()
    qrcode.make(data, image_factory=qrcode.image.svg.SvgPathImage).save(out)
    svg = out.getvalue().decode()
    return svg[svg.index("<svg") :]  # drop the XML declaration: the SVG goes inside HTML
