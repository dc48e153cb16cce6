"""The caller's organisations, with its role in each."""

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response

from .. import permissions, selectors, serializers
from .base import KeyPrincipal, ManageView


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
