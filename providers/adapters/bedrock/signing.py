"""SigV4 signing of Bedrock requests with botocore: no I/O, but the clock is part of every signature."""

import json
from urllib.parse import quote

import yarl
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from ..errors import no_credential


def credentials(route) -> Credentials:
    """The route's secret, JSON with access_key_id, secret_access_key (and session_token), as botocore's."""
    try:
        secret = json.loads(route.secret or "")
        return Credentials(secret["access_key_id"], secret["secret_access_key"], secret.get("session_token"))
    except (ValueError, TypeError, KeyError):
        # Never quote the secret, even a malformed one.
        raise no_credential(route.provider_name, " (expected JSON with access_key_id and secret_access_key)") from None


def signed_request(route, operation: str, payload: bytes) -> tuple[str, dict]:
    """The URL and SigV4-signed headers for POST /model/{modelId}/{operation}."""
    url = f"{route.base_url}/model/{quote(route.upstream_name, safe='')}/{operation}"
    # The shared transport (aiohttp) re-quotes URLs with yarl, which sends %3A as
    # ":"; SigV4 signs the path exactly as the server receives it, so sign the
    # URL in the form it will travel in.
    url = str(yarl.URL(url))
    accept = "application/vnd.amazon.eventstream" if operation == "converse-stream" else "application/json"
    request = AWSRequest(
        method="POST", url=url, data=payload, headers={"content-type": "application/json", "accept": accept}
    )
    region = route.options.get("region") or "us-east-1"
    SigV4Auth(credentials(route), "bedrock", region).add_auth(request)
    return url, dict(request.headers.items())
