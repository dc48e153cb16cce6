"""The caller's organisations, with its role in each; one organisation, and renaming it."""

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response

from .. import permissions, selectors, serializers, services
from .base import KeyPrincipal, ManageView, OrgView, actor_of, validated


class OrganizationList(ManageView):
    @extend_schema(responses=serializers.OrganizationSerializer(many=True), summary="Your organisations")
    def get(self, request):
        if isinstance(request.user, KeyPrincipal):
            roles = [(request.user.api_key.organization, permissions.KEY_ROLE)]
        else:
            roles = [(m.organization, m.role) for m in selectors.memberships_of_user(user=request.user)]
        # The caller's role goes beside each organisation, not onto the model instance.
        rows = [{"slug": org.slug, "name": org.name, "role": role} for org, role in roles]
        return Response(serializers.OrganizationSerializer(rows, many=True).data)


class OrganizationDetail(OrgView):
    """The organisation with the caller's role; PATCH renames it (its slug stays: URLs and clients name it)."""

    actions = {"GET": "view_members", "PATCH": "manage_organization"}

    def _answer(self, request):
        row = {"slug": request.organization.slug, "name": request.organization.name, "role": request.role}
        return Response(serializers.OrganizationSerializer(row).data)

    @extend_schema(responses=serializers.OrganizationSerializer, summary="The organisation")
    def get(self, request, slug):
        return self._answer(request)

    @extend_schema(
        request=serializers.OrganizationUpdateSerializer,
        responses=serializers.OrganizationSerializer,
        summary="Rename the organisation",
    )
    def patch(self, request, slug):
        data = validated(serializers.OrganizationUpdateSerializer, request.data)
        services.organization_update(
            organization=request.organization, name=data["name"], actor_role=request.role, actor=actor_of(request)
        )
        return self._answer(request)
