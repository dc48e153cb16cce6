"""A user's own time zone and language (the dashboard's settings page; accounts/middleware.py applies them)."""

import accounts.models
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0008_totp_devices_to_allauth"),
    ]

    operations = [
        migrations.AddField(
            model_name="user",
            name="language",
            field=models.CharField(
                blank=True,
                help_text="Empty: the browser's language",
                max_length=16,
                validators=[accounts.models.validate_language],
            ),
        ),
        migrations.AddField(
            model_name="user",
            name="time_zone",
            field=models.CharField(
                blank=True,
                help_text="Empty: the site's TIME_ZONE",
                max_length=64,
                validators=[accounts.models.validate_time_zone],
            ),
        ),
    ]
