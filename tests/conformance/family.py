"""What each provider family plugs into the conformance suite (tests/conformance/family_<name>.py).

A family module defines ``FAMILY``, an object with:

* ``name``: "openai", "anthropic", "gemini" or "bedrock".
* ``start()`` / ``stop()``: start and stop its fake upstream (once per test session).
* ``reset()``: forget recorded requests (before each test).
* ``configure() -> str``: create, in the test database, the Provider (kind, base
  URL of the fake, options), its Credential and a CatalogModel with a ModelRate,
  and return the model's public id.
* ``requests``: the native requests the fake received, in order; each has
  ``.path``, ``.headers`` (lower-case names) and ``.json`` (the parsed body).
* ``check_request(case, request, stream)``: assert that ``request`` is exactly
  the native request the provider documents for that case (the conformance
  "upstream receives exactly" half).
* ``overrides``: {case name: Expect} where the provider's own semantics
  differ from the table's default (e.g. a safety block that is a 200 with
  finish_reason "content_filter").
* ``upstream_secret``: the credential's secret, which must never reach the tenant.
"""


class FakeFamily:
    """The half every family shares: its fake server's lifecycle, and one provider,
    credential and model in the catalogue pointing at it. A family sets the class
    attributes below and writes `check_request`."""

    name = ""
    kind = "openai_compatible"
    preset = "custom"
    options: dict = {}
    upstream_model = ""
    overrides: dict = {}

    def __init__(self, fake, secret: str, upstream_secret: str = ""):
        self.fake = fake
        self.secret = secret  # what the hub's credential holds
        self.upstream_secret = upstream_secret or secret  # what must never reach the tenant

    def start(self):
        self.fake.start()

    def stop(self):
        self.fake.stop()

    def reset(self):
        self.fake.reset()

    @property
    def requests(self):
        return self.fake.requests

    @property
    def public_id(self) -> str:
        return f"conf-{self.name}/model"

    def configure(self) -> str:
        from tests import factories

        provider = factories.provider(
            f"conf-{self.name}",
            kind=self.kind,
            preset=self.preset,
            base_url=self.fake.base_url,
            options=self.options,
            secret=self.secret,
        )
        factories.add_model(provider, self.public_id, self.upstream_model)
        return self.public_id
