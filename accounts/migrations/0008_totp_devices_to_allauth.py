"""Operators' django-otp TOTP devices become allauth.mfa authenticators, with the same secret: their authenticator
apps keep working. django-otp is no longer installed, so its table is read by SQL, if it is there at all (a new
install never had it). A device allauth cannot reproduce (not 30-second steps of 6 digits from t0 = 0) is left out:
its operator enrols again. The old table is then dropped (its foreign key to the user, which Django no longer
cascades, would stop a user from being deleted), and django-otp's migrations forgotten."""

from base64 import b32encode

from django.db import migrations

OTP_TABLE = "otp_totp_totpdevice"


def forwards(apps, schema_editor):
    from allauth.mfa.adapter import get_adapter

    connection = schema_editor.connection
    if OTP_TABLE not in connection.introspection.table_names():
        return
    authenticators = apps.get_model("mfa", "Authenticator")
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT user_id, key FROM {OTP_TABLE} "  # noqa: S608 (a constant table name)
            "WHERE confirmed AND step = 30 AND digits = 6 AND t0 = 0 ORDER BY id"
        )
        rows = cursor.fetchall()
    for user_id, key in rows:
        if authenticators.objects.filter(user_id=user_id, type="totp").exists():
            continue  # one TOTP a user: the first device (or one enrolled with allauth already) wins
        secret = b32encode(bytes.fromhex(key)).decode()
        authenticators.objects.create(user_id=user_id, type="totp", data={"secret": get_adapter().encrypt(secret)})
    schema_editor.execute(f"DROP TABLE {OTP_TABLE}")
    schema_editor.execute("DELETE FROM django_migrations WHERE app = 'otp_totp'")


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0007_operator_groups_teams_invoices"),
        ("mfa", "0003_authenticator_type_uniq"),
    ]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
