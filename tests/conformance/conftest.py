import importlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from .cases import PIXEL_PNG

FAMILIES = ["openai", "anthropic", "gemini", "bedrock"]


class _ImageHandler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's naming
        if self.path != "/pixel.png":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("content-type", "image/png")
        self.send_header("content-length", str(len(PIXEL_PNG)))
        self.end_headers()
        self.wfile.write(PIXEL_PNG)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="session")
def image_url():
    """A loopback URL serving a real PNG, for image_url parts given as http URLs."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ImageHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/pixel.png"
    server.shutdown()


@pytest.fixture(scope="session", params=FAMILIES)
def family(request):
    module = importlib.import_module(f"tests.conformance.family_{request.param}")
    family = module.FAMILY
    family.start()
    yield family
    family.stop()
