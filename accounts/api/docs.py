"""The management API's documentation page."""

from csp.decorators import csp_update
from django.utils.decorators import method_decorator
from drf_spectacular.views import SpectacularSwaggerSplitView, _get_sidecar_url
from rest_framework.authentication import SessionAuthentication

# The one inline style Swagger UI's bundle adds at run time (drf-spectacular-sidecar as pinned), allowed by its
# hash on this page only: the site's Content-Security-Policy refuses inline styles (hub/settings.py). A new
# bundle with another style fails tests/test_pages_browser.py, which reports the refusal and its hash.
SWAGGER_UI_STYLE = "'sha256-MMpT0iDxyjALd9PdfepImGX3DBfJPXZ4IlDWdPAgtn0='"


@method_decorator(csp_update({"style-src": ["'self'", SWAGGER_UI_STYLE]}), name="dispatch")
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
