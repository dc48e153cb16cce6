"""The gateway API's documentation page: the management API's Swagger UI (accounts/api/docs.py), public."""

from rest_framework.permissions import AllowAny

from accounts.api.docs import Docs


class GatewayDocs(Docs):
    """Served by the site's handler (its Content-Security-Policy, its static files): /v1/ is the gateway's."""

    url = "/v1/openapi.json"
    title = "The hub: gateway API"
    authentication_classes = []  # nothing to sign in to: the document is public, and calls take an API key
    permission_classes = [AllowAny]
