"""The management API (/manage/v1/): keys, teams, members, invitations, usage, balance, audit log.

Every endpoint under orgs/<slug>/ names the action of accounts.permissions it
needs. A caller with no access to the organisation gets 404, as if it did not
exist; a member whose role lacks the action gets 403.
"""

from django.conf import settings
from django.shortcuts import get_object_or_404
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularSwaggerView, _get_sidecar_url
from rest_framework import exceptions, generics, status
from rest_framework.authentication import BaseAuthentication, SessionAuthentication
from rest_framework.pagination import CursorPagination
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from billing import teams

from . import addresses, permissions, selectors, serializers, services
from .models import ApiKey, KeyScope


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
        if not addresses.address_allowed(addresses.networks_of(key, key.organization),
                                         addresses.client_address(request)):
            raise AddressNotAllowed("This API key may not be used from your address.")
        return KeyPrincipal(key), key

    def authenticate_header(self, request):
        return 'Bearer realm="manage"'


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.api.ApiKeyAuthentication"
    name = "adminKey"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "An admin-scoped hub key (sk-hub-…)."}


def actor_of(request) -> services.Actor:
    ip = request.META.get("REMOTE_ADDR") or None
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


class OrganizationList(ManageView):
    @extend_schema(responses=serializers.OrganizationSerializer(many=True), summary="Your organisations")
    def get(self, request):
        if isinstance(request.user, KeyPrincipal):
            org = request.user.api_key.organization
            org.role = permissions.KEY_ROLE
            orgs = [org]
        else:
            orgs = []
            for membership in selectors.memberships_of_user(user=request.user):
                membership.organization.role = membership.role
                orgs.append(membership.organization)
        return Response(serializers.OrganizationSerializer(orgs, many=True).data)


class KeyList(OrgView):
    actions = {"GET": "view_keys", "POST": "create_keys"}

    @extend_schema(responses=serializers.ApiKeySerializer(many=True), summary="List keys")
    def get(self, request, slug):
        keys = selectors.keys_of(organization=request.organization)
        return Response(serializers.ApiKeySerializer(keys, many=True).data)

    @extend_schema(request=serializers.ApiKeyCreateSerializer, responses={201: serializers.NewApiKeySerializer},
                   summary="Create a key (the raw key is returned this once)")
    def post(self, request, slug):
        data = _valid(serializers.ApiKeyCreateSerializer, request.data)
        if data["scope"] == KeyScope.ADMIN and not permissions.allows(request.role, "create_admin_keys"):
            raise exceptions.PermissionDenied(f"Your role ({request.role}) does not allow create_admin_keys.")
        actor = actor_of(request)
        api_key, raw = services.api_key_create(
            organization=request.organization, name=data["name"], scope=data["scope"],
            expires_at=data.get("expires_at"), created_by=actor.user, actor=actor,
            limits={name: data[name] for name in serializers.LIMIT_FIELDS if name in data},
        )
        return _new_key_response(api_key, raw)


def _new_key_response(api_key, raw):
    api_key.key = raw
    return Response(serializers.NewApiKeySerializer(api_key).data, status=status.HTTP_201_CREATED)


def _valid(serializer_class, data):
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class KeyRevoke(OrgView):
    actions = {"POST": "revoke_keys"}

    @extend_schema(request=None, responses=serializers.ApiKeySerializer, summary="Revoke a key")
    def post(self, request, slug, key_id):
        api_key = get_object_or_404(selectors.keys_of(organization=request.organization), pk=key_id)
        services.api_key_revoke(api_key=api_key, actor=actor_of(request))
        return Response(serializers.ApiKeySerializer(api_key).data)


class KeyRotate(OrgView):
    actions = {"POST": ("revoke_keys", "create_keys")}

    @extend_schema(request=None, responses={201: serializers.NewApiKeySerializer},
                   summary="Rotate a key: a new key with the same name, scope, limits and team, the old one revoked")
    def post(self, request, slug, key_id):
        api_key = get_object_or_404(selectors.keys_of(organization=request.organization), pk=key_id)
        if api_key.scope == KeyScope.ADMIN and not permissions.allows(request.role, "create_admin_keys"):
            raise exceptions.PermissionDenied(f"Your role ({request.role}) does not allow create_admin_keys.")
        new_key, raw = services.api_key_rotate(api_key=api_key, actor=actor_of(request))  # limits and team kept
        return _new_key_response(new_key, raw)


class KeyDetail(OrgView):
    actions = {"PATCH": "manage_teams"}

    @extend_schema(request=serializers.ApiKeyTeamSerializer, responses=serializers.ApiKeySerializer,
                   summary="Put a key in a team (or in none)")
    def patch(self, request, slug, key_id):
        api_key = get_object_or_404(selectors.keys_of(organization=request.organization), pk=key_id)
        data = _valid(serializers.ApiKeyTeamSerializer, request.data)
        team = None
        if data["team"] is not None:
            team = teams.teams_of(organization=request.organization).filter(pk=data["team"]).first()
            if team is None:
                raise services.AccountsError("No such team in this organisation.", code="team_not_found",
                                             param="team")
        teams.api_key_team_set(api_key=api_key, team=team, actor=actor_of(request))
        return Response(serializers.ApiKeySerializer(api_key).data)


class TeamList(OrgView):
    actions = {"GET": "view_keys", "POST": "manage_teams"}

    @extend_schema(responses=serializers.TeamSerializer(many=True), summary="List teams")
    def get(self, request, slug):
        return Response(serializers.TeamSerializer(teams.teams_of(organization=request.organization), many=True).data)

    @extend_schema(request=serializers.TeamNameSerializer, responses={201: serializers.TeamSerializer},
                   summary="Create a team")
    def post(self, request, slug):
        data = _valid(serializers.TeamNameSerializer, request.data)
        team = teams.team_create(organization=request.organization, name=data["name"], actor=actor_of(request))
        return Response(serializers.TeamSerializer(team).data, status=status.HTTP_201_CREATED)


class TeamDetail(OrgView):
    actions = {"PATCH": "manage_teams", "DELETE": "manage_teams"}

    def _team(self, request, team_id):
        return get_object_or_404(teams.teams_of(organization=request.organization), pk=team_id)

    @extend_schema(request=serializers.TeamNameSerializer, responses=serializers.TeamSerializer,
                   summary="Rename a team")
    def patch(self, request, slug, team_id):
        team = self._team(request, team_id)
        data = _valid(serializers.TeamNameSerializer, request.data)
        teams.team_rename(team=team, name=data["name"], actor=actor_of(request))
        return Response(serializers.TeamSerializer(team).data)

    @extend_schema(responses={204: None}, summary="Delete a team (its keys stay, in no team)")
    def delete(self, request, slug, team_id):
        teams.team_delete(team=self._team(request, team_id), actor=actor_of(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class MemberList(OrgView):
    actions = {"GET": "view_members"}

    @extend_schema(responses=serializers.MemberSerializer(many=True), summary="List members")
    def get(self, request, slug):
        members = selectors.members_of(organization=request.organization)
        return Response(serializers.MemberSerializer(members, many=True).data)


class MemberDetail(OrgView):
    actions = {"PATCH": "change_roles", "DELETE": "remove_members"}

    def _membership(self, request, member_id):
        return get_object_or_404(selectors.members_of(organization=request.organization), pk=member_id)

    @extend_schema(request=serializers.RoleSerializer, responses=serializers.MemberSerializer,
                   summary="Change a member's role")
    def patch(self, request, slug, member_id):
        membership = self._membership(request, member_id)
        data = _valid(serializers.RoleSerializer, request.data)
        services.membership_change_role(membership=membership, role=data["role"], actor_role=request.role,
                                        actor=actor_of(request))
        return Response(serializers.MemberSerializer(membership).data)

    @extend_schema(responses={204: None}, summary="Remove a member")
    def delete(self, request, slug, member_id):
        membership = self._membership(request, member_id)
        services.membership_remove(membership=membership, actor_role=request.role, actor=actor_of(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class Leave(OrgView):
    @extend_schema(request=None, responses={204: None}, summary="Leave the organisation")
    def post(self, request, slug):
        if isinstance(request.user, KeyPrincipal):
            raise exceptions.PermissionDenied("A key is not a member: it cannot leave.")
        membership = get_object_or_404(selectors.members_of(organization=request.organization), user=request.user)
        services.membership_leave(membership=membership, actor=actor_of(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class InvitationList(OrgView):
    actions = {"GET": "invite_members", "POST": "invite_members"}

    @extend_schema(responses=serializers.InvitationSerializer(many=True), summary="List invitations")
    def get(self, request, slug):
        invitations = selectors.invitations_of(organization=request.organization)
        return Response(serializers.InvitationSerializer(invitations, many=True).data)

    @extend_schema(request=serializers.InvitationCreateSerializer, responses={201: serializers.InvitationSerializer},
                   summary="Invite someone by email")
    def post(self, request, slug):
        data = _valid(serializers.InvitationCreateSerializer, request.data)
        invitation, _ = services.invitation_create(
            organization=request.organization, email=data["email"], role=data["role"], actor_role=request.role,
            actor=actor_of(request), accept_url_base=request.build_absolute_uri("/"),
        )
        return Response(serializers.InvitationSerializer(invitation).data, status=status.HTTP_201_CREATED)


class InvitationDetail(OrgView):
    actions = {"DELETE": "invite_members"}

    @extend_schema(responses={204: None}, summary="Revoke an invitation")
    def delete(self, request, slug, invitation_id):
        invitation = get_object_or_404(selectors.invitations_of(organization=request.organization), pk=invitation_id)
        services.invitation_revoke(invitation=invitation, actor=actor_of(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class InvitationByToken(ManageView):
    """The email's links: GET shows the invitation, POST accepts (or declines) it as the signed-in user."""

    decline = False

    @extend_schema(responses=serializers.InvitationPreviewSerializer, summary="See an invitation")
    def get(self, request, token):
        return Response(serializers.InvitationPreviewSerializer(services.invitation_by_token(token)).data)

    @extend_schema(request=None, responses=serializers.InvitationPreviewSerializer,
                   summary="Accept (or decline) an invitation")
    def post(self, request, token):
        if isinstance(request.user, KeyPrincipal):
            raise exceptions.PermissionDenied("An invitation is answered by a signed-in user, not a key.")
        if self.decline:
            invitation = services.invitation_decline(token=token, actor=actor_of(request))
        else:
            services.invitation_accept(token=token, user=request.user, actor=actor_of(request))
            invitation = services.invitation_by_token(token)
        return Response(serializers.InvitationPreviewSerializer(invitation).data)


def _range(request):
    data = _valid(serializers.DateRangeSerializer, request.query_params)
    return selectors.day_range(data.get("start"), data.get("end"))


class UsageRecords(OrgView, generics.ListAPIView):
    actions = {"GET": "view_usage"}
    serializer_class = serializers.UsageRecordSerializer
    pagination_class = Pages

    def get_queryset(self):
        since, until = _range(self.request)
        return selectors.usage_records_of(organization=self.request.organization, since=since, until=until)

    @extend_schema(parameters=[serializers.DateRangeSerializer], summary="Usage records of a date range, newest first")
    def get(self, request, slug):
        return self.list(request)


class UsageTotals(OrgView):
    actions = {"GET": "view_usage"}

    @extend_schema(parameters=[serializers.DateRangeSerializer], responses=serializers.UsageTotalSerializer(many=True),
                   summary="Requests, tokens and price per model and UTC day")
    def get(self, request, slug):
        since, until = _range(request)
        totals = selectors.usage_totals_of(organization=request.organization, since=since, until=until)
        return Response(serializers.UsageTotalSerializer(totals, many=True).data)


class Balance(OrgView):
    actions = {"GET": "view_balance"}

    @extend_schema(responses=serializers.BalanceSerializer, summary="Credit balance")
    def get(self, request, slug):
        account = selectors.balance_of(organization=request.organization)
        data = {"balance": account.balance, "currency": settings.STRIPE_CURRENCY, "updated_at": account.updated_at}
        return Response(serializers.BalanceSerializer(data).data)


class AuditLog(OrgView, generics.ListAPIView):
    actions = {"GET": "view_audit_log"}
    serializer_class = serializers.AuditEventSerializer
    pagination_class = Pages

    def get_queryset(self):
        return selectors.audit_events_of(organization=self.request.organization)

    @extend_schema(summary="Audit log, newest first")
    def get(self, request, slug):
        return self.list(request)


class Docs(SpectacularSwaggerView):
    """Swagger UI from drf-spectacular-sidecar's static files: no CDN."""

    authentication_classes = [SessionAuthentication]

    @staticmethod
    def _swagger_ui_resource(filename):
        return _get_sidecar_url(f"swagger-ui-dist/{filename}")

    @staticmethod
    def _swagger_ui_favicon():
        return _get_sidecar_url("swagger-ui-dist/favicon-32x32.png")

