import zoneinfo
from contextvars import ContextVar

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.utils import timezone, translation
from django.utils.decorators import sync_and_async_middleware
from django.utils.deprecation import MiddlewareMixin

from . import addresses

# The address of the request being served, for audit events written by code
# that has no request at hand (the admin's LogEntry signal).
client_address: ContextVar[str | None] = ContextVar("client_address", default=None)


@sync_and_async_middleware
def AuditContextMiddleware(get_response):
    if iscoroutinefunction(get_response):

        async def async_middleware(request):
            token = client_address.set(addresses.client_address(request) or None)
            try:
                return await get_response(request)
            finally:
                client_address.reset(token)

        return markcoroutinefunction(async_middleware)

    def middleware(request):
        token = client_address.set(addresses.client_address(request) or None)
        try:
            return get_response(request)
        finally:
            client_address.reset(token)

    return middleware


class UserPreferencesMiddleware(MiddlewareMixin):
    """The signed-in user's own time zone and language (the settings page) on every page of the site.

    After AuthenticationMiddleware (it reads request.user) and so after LocaleMiddleware: the saved language
    wins over the language cookie and Accept-Language, which stay for visitors and users who saved none. The
    footer's switch (Django's set_language) saves a signed-in user's choice, so the two never disagree.
    """

    def process_request(self, request):
        user = request.user
        zone = _zone(user.time_zone) if user.is_authenticated else None
        # Always set: a thread serves the next request too, which may be another user's or a visitor's.
        if zone is None:
            timezone.deactivate()
        else:
            timezone.activate(zone)
        if user.is_authenticated and user.language:
            translation.activate(user.language)
            request.LANGUAGE_CODE = translation.get_language()

    def process_response(self, request, response):
        match = request.resolver_match
        if match is not None and match.url_name == "set_language" and request.user.is_authenticated:
            _save_switched_language(request.user, response)
        return response


def _zone(name: str) -> zoneinfo.ZoneInfo | None:
    try:
        return zoneinfo.ZoneInfo(name) if name else None
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None  # a zone tzdata dropped since it was saved: the site's, rather than an error on every page


def _save_switched_language(user, response) -> None:
    """The language set_language just put in its cookie (it sets none for a language it refuses)."""
    morsel = response.cookies.get(settings.LANGUAGE_COOKIE_NAME)
    if morsel is None or not morsel.value:
        return
    try:
        language = translation.get_supported_language_variant(morsel.value)
    except LookupError:
        return
    if language != user.language:
        user.language = language
        user.save(update_fields=["language"])
