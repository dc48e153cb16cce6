from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"

    def ready(self):
        from allauth.mfa import signals

        from . import mfa

        signals.authentication_failed.connect(mfa.on_authentication_failed, dispatch_uid="hub-mfa-failed")
        signals.authenticator_added.connect(mfa.on_authenticator_added, dispatch_uid="hub-mfa-added")
