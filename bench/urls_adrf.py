"""hub.urls, but /v1/chat/completions is an adrf APIView doing what hub.views.chat_completions does.

Same steps, same helpers (authenticate → parse/validate → hub.relay), so the
difference measured is DRF's request wrapping, content negotiation, parsing
and dispatch, not the gateway's own work.
"""

from adrf.views import APIView
from django.urls import path
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from hub import urls as hub_urls
from hub import views
from hub.auth import authenticate
from hub.errors import BadRequest, HubError, error_response
from hub.relay import Call, chat_completion


class ChatCompletions(APIView):
    # The hub authenticates with its own API keys (hub.auth), not DRF's.
    authentication_classes = []
    permission_classes = []
    parser_classes = [JSONParser]

    async def post(self, request):
        try:
            key = await authenticate(request)
            try:
                body = request.data
            except ParseError as exc:
                raise BadRequest(f"We could not parse the JSON body of your request: {exc.detail}.") from None
            if not isinstance(body, dict):
                raise BadRequest("The request body must be a JSON object.")
            views._validate(views.CHAT_REQUEST, body)
        except HubError as error:
            return error_response(error)
        call = Call(key=key, endpoint="chat.completions", model_name=body["model"], stream=body.get("stream") is True)
        return await chat_completion(call, body)


urlpatterns = [
    path("v1/chat/completions", ChatCompletions.as_view()),
    *(p for p in hub_urls.urlpatterns if str(p.pattern) != "v1/chat/completions"),
]

handler404 = views.not_found
