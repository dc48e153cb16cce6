"""Images in OpenAI messages (`image_url`: a data: URL or an http(s) URL) as bytes.

APIs that only take inline bytes (Gemini inline_data, Bedrock) need URL images
fetched by the hub. The fetch is bounded in size and time, and refuses
addresses on private networks unless HUB_FETCH_ALLOW_PRIVATE is set, so a
tenant cannot make the hub read its own internal services: checked up front
for a clear error, and again on the addresses actually connected to
(providers/http.py), so DNS rebinding cannot slip past the first check.
"""

import asyncio
import base64
import binascii
import ipaddress
import socket
from urllib.parse import urlsplit

import httpx
from django.conf import settings

from providers.http import fetch_client

from .base import UpstreamError

IMAGE_TYPES = {"image/png", "image/jpeg", "image/gif", "image/webp"}


def bad_image(message: str) -> UpstreamError:
    return UpstreamError(message, status=400, type="invalid_request_error", code="invalid_image", param="messages")


def parse_data_url(url: str) -> tuple[str, bytes]:
    head, _, data = url.partition(",")
    if not head.startswith("data:") or ";base64" not in head:
        raise bad_image("An image data URL must look like data:image/png;base64,….")
    mime = head[5:].split(";")[0].lower()
    try:
        return mime, base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise bad_image("The image's base64 data is not valid.") from None


async def _check_public(host: str) -> None:
    if getattr(settings, "HUB_FETCH_ALLOW_PRIVATE", False):
        return
    infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            raise bad_image("Image URLs must point to a public address.")


async def fetch_image(url: str) -> tuple[str, bytes]:
    """(MIME type, bytes) of an image_url, decoding data: URLs and fetching http(s) ones."""
    if url.startswith("data:"):
        return parse_data_url(url)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise bad_image("An image URL must be an http(s) URL or a data: URL.")
    await _check_public(parts.hostname)
    limit = settings.HUB_MAX_IMAGE_BYTES
    try:
        async with fetch_client().stream("GET", url, timeout=settings.HUB_UPSTREAM_CONNECT_TIMEOUT) as response:
            if response.status_code != 200:
                raise bad_image(f"The image URL answered {response.status_code}.")
            data = b""
            async for chunk in response.aiter_bytes():
                data += chunk
                if len(data) > limit:
                    raise bad_image(f"The image is larger than {limit} bytes.")
            mime = response.headers.get("content-type", "").split(";")[0].strip().lower()
    except httpx.HTTPError:
        raise bad_image("The image URL could not be fetched.") from None
    if mime not in IMAGE_TYPES:
        raise bad_image(f"The image URL did not return an image (content type {mime or 'missing'}).")
    return mime, data
