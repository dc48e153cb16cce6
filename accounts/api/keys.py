"""An organisation's API keys: list, create, revoke, rotate, and put in a team."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, status
from rest_framework.response import Response

from .. import permissions, selectors, serializers, services, teams
from ..models import KeyScope
from .base import OrgView, actor_of, validated


class KeyList(OrgView):
    actions = {"GET": "view_keys", "POST": "create_keys"}

    @extend_schema(responses=serializers.ApiKeySerializer(many=True), summary="List keys")
    def get(self, request, slug):
        keys = selectors.keys_of(organization=request.organization)
        return Response(serializers.ApiKeySerializer(keys, many=True).data)

    @extend_schema(
        request=serializers.ApiKeyCreateSerializer,
        responses={201: serializers.NewApiKeySerializer},
        summary="Create a key (the raw key is returned this once)",
    )
    def post(self, request, slug):
        data = validated(serializers.ApiKeyCreateSerializer, request.data)
        if data["scope"] == KeyScope.ADMIN and not permissions.allows(request.role, "create_admin_keys"):
            raise exceptions.PermissionDenied(f"Your role ({request.role}) does not allow create_admin_keys.")
        actor = actor_of(request)
        api_key, raw = services.api_key_create(
            organization=request.organization,
            name=data["name"],
            scope=data["scope"],
            expires_at=data.get("expires_at"),
            created_by=actor.user,
            actor=actor,
            limits={name: data[name] for name in serializers.LIMIT_FIELDS if name in data},
        )
        return _new_key_response(api_key, raw)


def _new_key_response(api_key, raw):
    api_key.key = raw
    return Response(serializers.NewApiKeySerializer(api_key).data, status=status.HTTP_201_CREATED)


class KeyRevoke(OrgView):
    actions = {"POST": "revoke_keys"}

    @extend_schema(request=None, responses=serializers.ApiKeySerializer, summary="Revoke a key")
    def post(self, request, slug, key_id):
        api_key = get_object_or_404(selectors.keys_of(organization=request.organization), pk=key_id)
        services.api_key_revoke(api_key=api_key, actor=actor_of(request))
        return Response(serializers.ApiKeySerializer(api_key).data)


class KeyRotate(OrgView):
    actions = {"POST": ("revoke_keys", "create_keys")}

    @extend_schema(
        request=None,
        responses={201: serializers.NewApiKeySerializer},
        summary="Rotate a key: a new key with the same name, scope, limits and team, the old one revoked",
    )
    def post(self, request, slug, key_id):
        api_key = get_object_or_404(selectors.keys_of(organization=request.organization), pk=key_id)
        if api_key.scope == KeyScope.ADMIN and not permissions.allows(request.role, "create_admin_keys"):
            raise exceptions.PermissionDenied(f"Your role ({request.role}) does not allow create_admin_keys.")
        new_key, raw = services.api_key_rotate(api_key=api_key, actor=actor_of(request))  # limits and team kept
        return _new_key_response(new_key, raw)


class KeyDetail(OrgView):
    actions = {"PATCH": "manage_teams"}

    @extend_schema(
        request=serializers.ApiKeyTeamSerializer,
        responses=serializers.ApiKeySerializer,
        summary="Put a key in a team (or in none)",
    )
    def patch(self, request, slug, key_id):
        api_key = get_object_or_404(selectors.keys_of(organization=request.organization), pk=key_id)
        data = validated(serializers.ApiKeyTeamSerializer, request.data)
        team = None
        if data["team"] is not None:
            team = teams.teams_of(organization=request.organization).filter(pk=data["team"]).first()
            if team is None:
                raise services.AccountsError("No such team in this organisation.", code="team_not_found", param="team")
        teams.api_key_team_set(api_key=api_key, team=team, actor=actor_of(request))
        return Response(serializers.ApiKeySerializer(api_key).data)
