"""Django's and allauth's strings whose own catalogues lack a translation in one of the site's languages (found by
tests/test_i18n.py, which renders every page in each). Marked here so that makemessages keeps them in hub/locale/,
whose translations come before the packages' own (LOCALE_PATHS). Nothing imports this module."""

from django.utils.translation import ngettext_lazy

# Django 5.2's MinimumLengthValidator says "%d"; its zh_Hans catalogue still has the older "%(min_length)d".
PASSWORD_TOO_SHORT = ngettext_lazy(
    "This password is too short. It must contain at least %d character.",
    "This password is too short. It must contain at least %d characters.",
    8,
)
