"""The management API's documentation page."""

from drf_spectacular.views import SpectacularSwaggerSplitView, _get_sidecar_url
from rest_framework.authentication import SessionAuthentication


class Docs(SpectacularSwaggerSplitView):
    """Swagger UI from drf-spectacular-sidecar's static files: no CDN. Split: its setup script is served from
    this URL too (?script), not inline, which the site's Content-Security-Policy would refuse."""

    authentication_classes = [SessionAuthentication]

    @staticmethod
    def _swagger_ui_resource(filename):
        return _get_sidecar_url(f"swagger-ui-dist/{filename}")

    @staticmethod
    def _swagger_ui_favicon():
        return _get_sidecar_url("swagger-ui-dist/favicon-32x32.png")
