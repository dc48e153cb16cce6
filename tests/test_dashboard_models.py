"""The catalogue pages by HTTP (hub/catalogue_pages.py): the dashboard's Models page, for every role, lists what
the organisation may use at its price plan's prices (the very numbers /v1/models gives its keys, per million
here) with the availability /v1/status reports; its search filters on the server and refuses hostile input with
a 400, never a 500. The public pricing page needs no sign-in, shows list prices and only what the catalogue
offers, and is a 404 when HUB_PUBLIC_PRICING is off."""

import re
import time
from decimal import Decimal

import pytest
from django.test import Client

from billing.models import CreditAccount, PricePlan
from hub import catalogue, route_health
from hub import db as hub_db
from providers.models import CatalogModel, Credential
from tests import factories
from tests.actors import ROLES

# The catalogue is read on the gateway's own database thread (hub/db.py): the test's rows must be committed.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module", autouse=True)
def gateway_threads_closed():
    """The gateway's database threads keep their connections: closed before the test database is dropped."""
    yield
    hub_db.close()


def client_of(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def shop(world):
    """Acme on a 25%-off plan; a chat model with cached-input prices, an image model with tiers, a speech-to-text
    model, a model on two credentials (for "degraded"), a disabled model and one without a route."""
    openai = factories.provider("openai", base_url="http://127.0.0.1:9/v1", secret="sk-upstream-1")
    other = factories.provider("acmeai", base_url="http://127.0.0.1:9/v1", secret="sk-upstream-2")
    factories.credential(other, "sk-upstream-3", name="spare")
    chat = factories.add_model(
        openai,
        "openai/gpt-4o-mini",
        "gpt-4o-mini",
        alias="gpt-4o-mini",
        input_price=Decimal("0.15"),
        output_price=Decimal("0.6"),
        cached_input_price=Decimal("0.075"),
    )
    CatalogModel.objects.filter(pk=chat.pk).update(
        context_window=128000, max_output_tokens=16384, supports_vision=False
    )
    image = factories.add_model(
        openai, "openai/gpt-image-1", "gpt-image-1", image_price=Decimal("0.04"), image_prices={"1024x1024/hd": "0.08"}
    )
    whisper = factories.add_model(openai, "openai/whisper-1", "whisper-1", audio_second_price=Decimal("0.0001"))
    CatalogModel.objects.filter(pk=image.pk).update(kind="image", supports_tools=False, supports_json=False)
    CatalogModel.objects.filter(pk=whisper.pk).update(kind="transcription")
    factories.add_model(other, "acmeai/big", "big", input_cost=Decimal("3"), output_cost=Decimal("9"))
    hidden = factories.add_model(openai, "openai/internal-secret", "secret")
    CatalogModel.objects.filter(pk=hidden.pk).update(enabled=False)
    factories.catalog_model("openai/no-route")
    plan = PricePlan.objects.create(name="partner", discount=Decimal("0.25"))
    CreditAccount.objects.filter(organization=world.acme).update(price_plan=plan)
    return world


def rows(page: str) -> dict[str, str]:
    """Each table row's HTML by its model's public id."""
    return dict(re.findall(r'<tr id="row-\d+" data-model="([^"]+)">(.*?)</tr>', page, re.S))


def price(row: str, which: str) -> Decimal:
    found = re.search(rf'class="price-{which}"><dt>[^<]*</dt><dd>([^<]+)</dd>', row)
    assert found, row
    return Decimal(found[1].replace(",", ""))


def listed(raw_key: str) -> dict[str, dict]:
    response = Client().get("/v1/models", HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    assert response.status_code == 200
    return {m["id"]: m for m in response.json()["data"]}


@pytest.mark.parametrize("role", ROLES)
def test_every_role_sees_the_organisations_models(shop, role):
    response = client_of(getattr(shop, role)).get("/dashboard/models/")
    assert response.status_code == 200
    page = response.content.decode()
    assert set(rows(page)) == {
        "openai/gpt-4o-mini",
        "openai/gpt-image-1",
        "openai/whisper-1",
        "acmeai/big",
    }
    assert 'aria-current="page"' in page and "/dashboard/models/" in page  # the nav's Models section
    assert "A key limited to some models may use only those of them" in page


def test_a_visitor_is_sent_to_sign_in(shop):
    response = Client().get("/dashboard/models/")
    assert response.status_code == 302 and "/accounts/login/" in response["location"]


def test_the_page_prices_are_v1_models_prices_for_the_organisation(shop):
    page = rows(client_of(shop.viewer).get("/dashboard/models/").content.decode())
    api = listed(shop.acme_raw_key)
    million = Decimal(10**6)
    mini = api["openai/gpt-4o-mini"]["pricing"]
    assert price(page["openai/gpt-4o-mini"], "input") == Decimal(mini["prompt"]) * million == Decimal("0.1125")
    assert price(page["openai/gpt-4o-mini"], "output") == Decimal(mini["completion"]) * million == Decimal("0.45")
    assert price(page["openai/gpt-4o-mini"], "cached") == Decimal(mini["input_cache_read"]) * million
    big = api["acmeai/big"]["pricing"]  # priced over cost at HUB_DEFAULT_MARGIN, then 25% off
    assert price(page["acmeai/big"], "input") == Decimal(big["prompt"]) * million
    assert price(page["acmeai/big"], "output") == Decimal(big["completion"]) * million
    image = api["openai/gpt-image-1"]["pricing"]
    assert price(page["openai/gpt-image-1"], "image") == Decimal(image["image"]) == Decimal("0.03")
    assert f"<dd>{Decimal(image['image_tiers']['1024x1024/hd']):f}</dd>" in page["openai/gpt-image-1"]
    whisper = api["openai/whisper-1"]["pricing"]
    assert price(page["openai/whisper-1"], "second") == Decimal(whisper["audio_second"]) == Decimal("0.000075")


def test_each_model_shows_its_id_copy_button_kind_context_and_capabilities(shop):
    page = client_of(shop.developer).get("/dashboard/models/").content.decode()
    mini = rows(page)["openai/gpt-4o-mini"]
    number = re.search(r'<code id="model-(\d+)">openai/gpt-4o-mini</code>', mini)[1]
    assert f'data-copy="#model-{number}"' in mini and 'data-copied="Copied"' in mini
    assert "<code>gpt-4o-mini</code>" in mini  # the alias
    assert ">Chat<" in mini and ">128000<" in mini and ">16384<" in mini
    assert "Tools" in mini and "JSON output" in mini and "Vision" not in mini
    assert "Image generation" in rows(page)["openai/gpt-image-1"]
    assert "not stated" in rows(page)["acmeai/big"]
    assert "USD" in page


def test_a_model_the_organisation_may_not_use_is_absent(shop):
    shop.acme.allowed_models = ["openai/*"]
    shop.acme.save()
    page = rows(client_of(shop.owner).get("/dashboard/models/").content.decode())
    assert "acmeai/big" not in page and "openai/gpt-4o-mini" in page


def test_another_organisations_plan_is_not_this_ones(shop):
    """Globex has no plan: list prices."""
    page = rows(client_of(shop.outsider).get("/dashboard/models/").content.decode())
    assert price(page["openai/gpt-4o-mini"], "input") == Decimal("0.15")


def test_hidden_models_are_never_listed(shop):
    page = client_of(shop.owner).get("/dashboard/models/").content.decode()
    assert "openai/internal-secret" not in page and "openai/no-route" not in page


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("q=MINI", {"openai/gpt-4o-mini"}),
        ("q=gpt", {"openai/gpt-4o-mini", "openai/gpt-image-1"}),
        ("provider=acmeai", {"acmeai/big"}),
        ("kind=image", {"openai/gpt-image-1"}),
        ("capability=vision", {"acmeai/big"}),  # only chat models have capabilities
        ("capability=json", {"openai/gpt-4o-mini", "acmeai/big"}),
        ("capability=tools&kind=chat&provider=openai", {"openai/gpt-4o-mini"}),
        ("q=nothing-like-it", set()),
    ],
)
def test_search_and_filters(shop, query, expected):
    response = client_of(shop.viewer).get(f"/dashboard/models/?{query}")
    assert response.status_code == 200
    page = response.content.decode()
    assert set(rows(page)) == expected
    if not expected:
        assert "No model matches this search." in page


def test_htmx_gets_only_the_results(shop):
    response = client_of(shop.viewer).get("/dashboard/models/?kind=image", HTTP_HX_REQUEST="true")
    page = response.content.decode()
    assert response.status_code == 200 and page.lstrip().startswith('<div id="catalogue-results"')
    assert set(rows(page)) == {"openai/gpt-image-1"}
    restore = client_of(shop.viewer).get(
        "/dashboard/models/?kind=image", HTTP_HX_REQUEST="true", HTTP_HX_HISTORY_RESTORE_REQUEST="true"
    )
    assert "<html" in restore.content.decode()


@pytest.mark.parametrize(
    "query",
    [
        "q=%00",
        "q=a%00b",
        "provider=%00",
        "kind=%ED%A0%80",
        "q=%ED%A0%80",
        "q=%F0%9F",
        "capability=root",
        "q=" + "x" * 5000,
    ],
)
def test_hostile_input_gets_a_clean_answer(shop, query):
    for path in ("/dashboard/models/", "/dashboard/models/availability", "/pricing/"):
        response = client_of(shop.viewer).get(f"{path}?{query}")
        assert response.status_code in (200, 400), (path, query)
        if path != "/dashboard/models/availability":
            assert "catalogue-results" in response.content.decode()


def test_a_refused_search_says_why(shop):
    response = client_of(shop.viewer).get("/dashboard/models/?q=" + "x" * 300)
    assert response.status_code == 400
    assert "Ensure this value has at most 200 characters" in response.content.decode()


def badge(page: str, public_id: str) -> str:
    found = re.search(r'class="availability (\w+)"', rows(page)[public_id])
    assert found
    return found[1]


def test_availability_follows_route_health(shop):
    spare = Credential.objects.get(name="spare")
    route_health.store().write(spare.pk, route_health.Health(cooldown_until=time.time() + 60, reason="down"))
    Credential.objects.filter(provider__name="openai").update(last_check_ok=False)
    page = client_of(shop.viewer).get("/dashboard/models/").content.decode()
    assert badge(page, "acmeai/big") == "degraded"  # one of its two credentials is cooling down
    assert badge(page, "openai/gpt-4o-mini") == "unavailable"  # its one credential failed its health check
    status = Client().get("/v1/status", HTTP_AUTHORIZATION=f"Bearer {shop.acme_raw_key}").json()
    by_id = {m["id"]: m for m in status["models"]}
    assert by_id["acmeai/big"]["routes_available"] == 1 and by_id["openai/gpt-4o-mini"]["available"] is False
    assert "down" not in page


def test_availability_fragment_swaps_each_badge_by_id(shop):
    client = client_of(shop.billing)
    assert badge(client.get("/dashboard/models/").content.decode(), "acmeai/big") == "available"
    Credential.objects.filter(provider__name="acmeai").update(last_check_ok=False)
    catalogue.invalidate()  # what the catalogue's refresh (HUB_CATALOGUE_CACHE_SECONDS) does
    response = client.get("/dashboard/models/availability?provider=acmeai")
    fragment = response.content.decode()
    assert response.status_code == 200
    assert fragment.count('hx-swap-oob="true"') == 1 and 'class="availability unavailable"' in fragment
    page = client.get("/dashboard/models/").content.decode()
    assert 'hx-get="/dashboard/models/availability"' in page and 'hx-trigger="every 30s"' in page


# The public pricing page.


def test_pricing_needs_no_sign_in_and_shows_list_prices(shop):
    response = Client().get("/pricing/")
    assert response.status_code == 200
    page = response.content.decode()
    assert set(rows(page)) == {"openai/gpt-4o-mini", "openai/gpt-image-1", "openai/whisper-1", "acmeai/big"}
    assert price(rows(page)["openai/gpt-4o-mini"], "input") == Decimal("0.15")  # not Acme's 25% off
    assert price(rows(page)["openai/gpt-image-1"], "image") == Decimal("0.04")
    assert "openai/internal-secret" not in page and "openai/no-route" not in page
    assert "availability" not in page.split('id="catalogue-results"')[1]
    assert "sk-upstream" not in page and "127.0.0.1:9" not in page


def test_pricing_prices_are_v1_models_without_a_plan(shop):
    page = rows(Client().get("/pricing/").content.decode())
    api = listed(factories.api_key(shop.globex, "list")[1])
    assert price(page["acmeai/big"], "input") == Decimal(api["acmeai/big"]["pricing"]["prompt"]) * 10**6


def test_pricing_filters_without_sign_in(shop):
    response = Client().get("/pricing/?kind=transcription")
    assert set(rows(response.content.decode())) == {"openai/whisper-1"}


def test_pricing_is_linked_from_the_home_page_and_header(shop):
    page = Client().get("/").content.decode()
    assert page.count('href="/pricing/"') == 2


def test_pricing_switched_off_is_not_found(shop, settings):
    settings.HUB_PUBLIC_PRICING = False
    assert Client().get("/pricing/").status_code == 404
    assert 'href="/pricing/"' not in Client().get("/").content.decode()
    assert client_of(shop.viewer).get("/dashboard/models/").status_code == 200


def test_pricing_only_answers_get(shop):
    assert Client().post("/pricing/").status_code in (403, 405)
