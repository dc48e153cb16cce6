"""What every management API view shares: key and session authentication, the organisation access check,
pagination, and reading a request's input."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, SessionAuthentication
from rest_framework.pagination import CursorPagination
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.views import APIView

from .. import addresses, permissions, selectors, services
from ..models import ApiKey, KeyScope


class InvalidApiKey(exceptions.AuthenticationFailed):
    default_code = "invalid_api_key"


class AddressNotAllowed(exceptions.PermissionDenied):
    default_code = "ip_not_allowed"


class KeyPrincipal:
    """request.user when an admin-scoped key calls: no user, the key's organisation only."""

    is_authenticated = True
    is_staff = False
    pk = None

    def __init__(self, api_key: ApiKey):
        self.api_key = api_key

    def __str__(self):
        return f"key {self.api_key.prefix}…"


class ApiKeyAuthentication(BaseAuthentication):
    """`Authorization: Bearer sk-hub-…` or `x-api-key`, admin-scoped keys only. No CSRF: no cookie involved."""

    def authenticate(self, request):
        header = request.headers.get("authorization", "")
        raw = header[7:].strip() if header[:7].lower() == "bearer " else request.headers.get("x-api-key", "").strip()
        if not raw:
            return None
        key = ApiKey.objects.select_related("organization").filter(hashed_key=services.hash_api_key(raw)).first()
        if key is None or not key.is_active or not key.organization.is_active:
            raise InvalidApiKey("Incorrect, revoked or expired API key.")
        if key.scope != KeyScope.ADMIN:
            raise InvalidApiKey("This key is for the gateway only; the management API needs an admin-scoped key.")
        # The same policy as on the gateway: a key kept to some addresses is kept to them here too, or it
        # could mint itself an unrestricted successor from anywhere.
        if not addresses.address_allowed(
            addresses.networks_of(key, key.organization), addresses.client_address(request)
        ):
            raise AddressNotAllowed("This API key may not be used from your address.")
        return KeyPrincipal(key), key

    def authenticate_header(self, request):
        return 'Bearer realm="manage"'


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.api.base.ApiKeyAuthentication"
    name = "adminKey"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "An admin-scoped hub key (sk-hub-…)."}


def actor_of(request) -> services.Actor:
    ip = addresses.client_address(request) or None
    if isinstance(request.user, KeyPrincipal):
        return services.Actor(api_key=request.user.api_key, ip_address=ip)
    return services.Actor(user=request.user, ip_address=ip)


class OrganizationAccess(BasePermission):
    """Resolves orgs/<slug>/ to request.organization and request.role, then checks the view's action."""

    def has_permission(self, request, view):
        principal = request.user
        key = principal.api_key if isinstance(principal, KeyPrincipal) else None
        access = selectors.access_of(user=None if key else principal, api_key=key, slug=view.kwargs["slug"])
        if access is None:
            raise exceptions.NotFound("No such organisation.")
        request.organization, request.role = access
        for action in view.actions_for(request):
            if not permissions.allows(request.role, action):
                raise exceptions.PermissionDenied(f"Your role ({request.role}) does not allow {action}.")
        return True


class ManageView(APIView):
    authentication_classes = [ApiKeyAuthentication, SessionAuthentication]
    permission_classes = [IsAuthenticated]


class OrgView(ManageView):
    permission_classes = [IsAuthenticated, OrganizationAccess]
    actions: dict[str, str | tuple[str, ...]] = {}  # HTTP method → the matrix action(s) it needs

    def actions_for(self, request) -> tuple[str, ...]:
        needed = self.actions.get(request.method, ())
        return (needed,) if isinstance(needed, str) else needed


class Pages(CursorPagination):
    page_size = 100
    page_size_query_param = "limit"
    max_page_size = 1000
    ordering = "-created_at"


def validated(serializer_class, data):
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data
