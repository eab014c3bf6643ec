"""shopify.app.toml says what the code does: its webhook subscriptions are the topics the edge
handles, its compliance topics the ones the edge answers, its scopes the ones Keepwell asks for
and exactly those the connector's GraphQL documents need; and `keepwell shopify-config` fills it
in for a deployment."""
from __future__ import annotations

import importlib
import pkgutil
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner
from graphql import GraphQLSyntaxError, parse
from graphql.language import FieldNode, OperationDefinitionNode

import connectors.shopify
from connectors.shopify import API_VERSION, connector, oauth, subscriptions
from plugin.cli import main
from plugin.config import Config
from connectors.shopify.app_config import render
from connectors.shopify import compliance

TOML = Path(__file__).resolve().parents[1] / "shopify.app.toml"

#: Admin API root fields -> the access scope each needs (shopify.dev, GraphQL Admin API reference:
#: "Requires ... access scope" on each query and mutation). A document using a root field missing
#: here fails the test until its scope is looked up and added.
SCOPE_OF_ROOT_FIELD = {
    "order": "read_orders",
    "orders": "read_orders",
    "customers": "read_customers",
    "nodes": "read_products",  # Product nodes (order enrichment)
    "collectionByIdentifier": "read_products",
    "discountCodeBasicCreate": "write_discounts",
    "codeDiscountNodeByCode": "read_discounts",
    "tagsAdd": "write_customers",  # on Customer ids
    "customerEmailMarketingConsentUpdate": "write_customers",
    "customerSmsMarketingConsentUpdate": "write_customers",  # "Requires write_customers access scope."
    "customer": "read_customers",
    "shop": None,  # the shop's own name, contact email and address: any app may read them
    "webhookSubscriptionCreate": None,  # each topic needs its resource's scope instead
    "bulkOperationRunQuery": None,  # the bulk query's own fields (customers, orders) need theirs
    "bulkOperation": None,  # the app's own bulk operation
}


@pytest.fixture(scope="module")
def app_toml() -> dict:
    return tomllib.loads(TOML.read_text(encoding="utf-8"))


def effective(scopes) -> set[str]:
    """Scopes as Shopify grants them: a write scope includes its read."""
    scopes = set(scopes)
    return {s for s in scopes if not (s.startswith("read_") and s.replace("read_", "write_", 1) in scopes)}


def documents() -> list[tuple[str, OperationDefinitionNode]]:
    """Every GraphQL operation the Shopify connector's modules hold, by module and name."""
    found = []
    for info in pkgutil.iter_modules(connectors.shopify.__path__):
        module = importlib.import_module(f"connectors.shopify.{info.name}")
        for name, value in vars(module).items():
            if not (isinstance(value, str) and name.isupper() and ("query " in value or "mutation " in value)):
                continue
            try:
                doc = parse(value)
            except GraphQLSyntaxError:
                continue
            found += [(f"{info.name}.{name}", d) for d in doc.definitions if isinstance(d, OperationDefinitionNode)]
    return found


def test_the_app_is_embedded_and_pins_the_api_version(app_toml):
    assert app_toml["embedded"] is True
    assert app_toml["webhooks"]["api_version"] == API_VERSION == "2026-10"
    assert app_toml["access_scopes"]["use_legacy_install_flow"] is False
    assert app_toml["application_url"] == "https://keepwell.example.com/admin"
    assert app_toml["auth"]["redirect_urls"] == ["https://keepwell.example.com/shopify/callback"]


def test_subscriptions_are_the_topics_the_edge_handles(app_toml):
    subs = app_toml["webhooks"]["subscriptions"]
    topics = [t for s in subs for t in s.get("topics", [])]
    assert len(topics) == len(set(topics))
    handled = set(connector.topics) | {"app/uninstalled"}
    assert set(topics) <= handled  # nothing delivered that the edge would answer 404/ignore
    # every handled topic is subscribed, the consent topic under its subscription name only
    assert handled - set(topics) == {"customers/email_marketing_consent_update"}
    assert set(topics) == set(subscriptions.TOPICS.values())  # the per-shop (legacy) subscriptions too
    compliance_topics = [t for s in subs for t in s.get("compliance_topics", [])]
    assert set(compliance_topics) == set(compliance.TOPICS) and len(compliance_topics) == 3
    assert {s["uri"] for s in subs} == {"https://keepwell.example.com/webhooks/shopify"}


def test_scopes_are_those_asked_for_and_those_the_api_calls_need(app_toml):
    scopes = app_toml["access_scopes"]["scopes"].split(",")
    assert scopes == list(oauth.SCOPES)
    ops = documents()
    assert len(ops) >= 8  # the queries and mutations of coupons, tags, enrichment, reconciliation, webhooks
    needed = set()
    for where, op in ops:
        for field in op.selection_set.selections:
            assert isinstance(field, FieldNode)
            assert field.name.value in SCOPE_OF_ROOT_FIELD, f"{where}: which scope does {field.name.value} need?"
            needed.add(SCOPE_OF_ROOT_FIELD[field.name.value])
    needed.discard(None)
    assert effective(needed) == effective(scopes)


def test_shopify_config_fills_in_the_deployment(tmp_path):
    out = tmp_path / "shopify.app.production.toml"
    env = {"SHOPIFY_API_KEY": "a61950a2cbd5f32876b0b55587ec7a27", "KEEPWELL_APP_URL": "https://shop-keep.example.org/"}
    result = CliRunner().invoke(main, ["shopify-config", "--output", str(out)], env=env)
    assert result.exit_code == 0, result.output
    filled = tomllib.loads(out.read_text())
    assert filled["client_id"] == "a61950a2cbd5f32876b0b55587ec7a27"
    assert filled["application_url"] == "https://shop-keep.example.org/admin"
    assert filled["auth"]["redirect_urls"] == ["https://shop-keep.example.org/shopify/callback"]
    assert {s["uri"] for s in filled["webhooks"]["subscriptions"]} == {"https://shop-keep.example.org/webhooks/shopify"}
    assert "keepwell.example.com" not in out.read_text()


@pytest.mark.parametrize("overrides,problem", [
    ({"shopify_api_key": ""}, "SHOPIFY_API_KEY"),
    ({"app_url": "http://127.0.0.1:5000"}, "https URL"),
    ({"shopify_api_key": 'x" \nname = "evil'}, "not a client id"),
    ({"app_url": 'https://k.example.org/"x'}, "https URL"),
])
def test_shopify_config_refuses_what_would_not_deploy(overrides, problem):
    config = Config(**{"shopify_api_key": "client-id", "app_url": "https://k.example.org", **overrides})
    with pytest.raises(ValueError, match=problem):
        render(config)
