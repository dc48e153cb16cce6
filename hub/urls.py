from django.contrib import admin
from django.urls import include, path

from . import api_docs, catalogue_pages, metrics, playground, views

urlpatterns = [
    path("v1/chat/completions", views.chat_completions),
    path("api/chat/completions", views.chat_completions),
    path("v1/messages", views.anthropic_messages),
    path("api/messages", views.anthropic_messages),
    path("v1/messages/count_tokens", views.count_tokens),
    path("api/messages/count_tokens", views.count_tokens),
    path("v1/models", views.models),
    path("v1/models/<path:model_id>", views.models),
    path("api/models", views.models),
    path("v1/embeddings", views.embeddings),
    path("api/embeddings", views.embeddings),
    path("v1/audio/speech", views.speech),
    path("api/audio/speech", views.speech),
    path("v1/images/generations", views.image_generations),
    path("api/images/generations", views.image_generations),
    path("api/image/generations", views.image_generations),
    path("v1/images/edits", views.image_edits),
    path("api/images/edits", views.image_edits),
    path("v1/files/images/<str:name>", views.image_file),
    path("v1/audio/transcriptions", views.transcriptions),
    path("api/audio/transcriptions", views.transcriptions),
    path("v1/audio/translations", views.translations),
    path("api/audio/translations", views.translations),
    path("v1/status", views.service_status),
    # For Prometheus (hub/metrics.py): a bearer token or an address allow-list, no session; off (404) without.
    path("metrics", metrics.scrape),
    path("api/status", views.service_status),
    # The gateway API described (hub/openapi.py); its Swagger UI is a page of the site, outside /v1/.
    path("v1/openapi.json", views.openapi_document, name="gateway-openapi"),
    path("api/openapi.json", views.openapi_document),
    path("docs/api/", api_docs.GatewayDocs.as_view(), name="gateway-docs"),
    # The management API and Stripe's webhook need sessions and CSRF, so they live
    # outside the gateway's /v1/ and /api/ prefixes (see hub/asgi.py).
    path("manage/v1/", include("accounts.urls")),
    path("manage/v1/", include("billing.urls")),
    path("admin/", admin.site.urls),
    # End users' sign-up, login, email and password (django-allauth; accounts/auth_adapter.py).
    path("accounts/", include("allauth.urls")),
    # The catalogue as pages (hub/catalogue_pages.py): the organisation's models, and the public price list.
    path("dashboard/models/", catalogue_pages.models, name="dashboard-models"),
    path("dashboard/models/availability", catalogue_pages.availability, name="dashboard-models-availability"),
    path("pricing/", catalogue_pages.pricing, name="pricing"),
    # The playground (hub/playground.py): the gateway's own handling, called with the member's playground key.
    path("dashboard/playground/", playground.page, name="dashboard-playground"),
    path("dashboard/playground/chat", playground.chat, name="dashboard-playground-chat"),
    path("dashboard/playground/image", playground.image, name="dashboard-playground-image"),
    path("dashboard/playground/usage/<str:request_id>", playground.usage, name="dashboard-playground-usage"),
    path("dashboard/", include("accounts.dashboard_urls")),
    path("dashboard/", include("billing.dashboard_urls")),
    # The language switch (templates/base.html posts to its set_language view).
    path("i18n/", include("django.conf.urls.i18n")),
    path("", views.home, name="home"),
]

handler404 = views.not_found
handler500 = views.server_error
