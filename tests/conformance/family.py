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
