import importlib

import pytest

from tests.fakes.server import FAKE_OPTIONS, running, served

from .cases import PIXEL_PNG

FAMILIES = ["openai", "anthropic", "gemini", "bedrock"]


async def _pixel(scope, receive, send):
    found = scope["type"] == "http" and scope["method"] == "GET" and scope["path"] == "/pixel.png"
    body, kind = (PIXEL_PNG, b"image/png") if found else (b"Not Found", b"text/plain")
    await send(
        {
            "type": "http.response.start",
            "status": 200 if found else 404,
            "headers": [(b"content-type", kind), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


@pytest.fixture(scope="session")
def image_url():
    """A loopback URL serving a real PNG, for image_url parts given as http URLs."""
    with served(_pixel, "pixel", **FAKE_OPTIONS) as server:
        yield f"{server.base_url}/pixel.png"


@pytest.fixture(scope="session", params=FAMILIES)
def family(request):
    module = importlib.import_module(f"tests.conformance.family_{request.param}")
    with running(module.FAMILY) as family:
        yield family
