"""An organisation's teams of keys (their cost is billing's: billing/api.py)."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response

from .. import serializers, teams
from .base import OrgView, actor_of, validated


class TeamList(OrgView):
    actions = {"GET": "view_keys", "POST": "manage_teams"}

    @extend_schema(responses=serializers.TeamSerializer(many=True), summary="List teams")
    def get(self, request, slug):
        return Response(serializers.TeamSerializer(teams.teams_of(organization=request.organization), many=True).data)

    @extend_schema(
        request=serializers.TeamNameSerializer, responses={201: serializers.TeamSerializer}, summary="Create a team"
    )
    def post(self, request, slug):
        data = validated(serializers.TeamNameSerializer, request.data)
        team = teams.team_create(organization=request.organization, name=data["name"], actor=actor_of(request))
        return Response(serializers.TeamSerializer(team).data, status=status.HTTP_201_CREATED)


class TeamDetail(OrgView):
    actions = {"PATCH": "manage_teams", "DELETE": "manage_teams"}

    def _team(self, request, team_id):
        return get_object_or_404(teams.teams_of(organization=request.organization), pk=team_id)

    @extend_schema(
        request=serializers.TeamNameSerializer, responses=serializers.TeamSerializer, summary="Rename a team"
    )
    def patch(self, request, slug, team_id):
        team = self._team(request, team_id)
        data = validated(serializers.TeamNameSerializer, request.data)
        teams.team_rename(team=team, name=data["name"], actor=actor_of(request))
        return Response(serializers.TeamSerializer(team).data)

    @extend_schema(responses={204: None}, summary="Delete a team (its keys stay, in no team)")
    def delete(self, request, slug, team_id):
        teams.team_delete(team=self._team(request, team_id), actor=actor_of(request))
        return Response(status=status.HTTP_204_NO_CONTENT)
