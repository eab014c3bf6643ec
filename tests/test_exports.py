"""`keepwell simulate --from PLATFORM`: raw order exports go through the connectors' parsers."""
import json
from pathlib import Path

from click.testing import CliRunner

from plugin.cli import main
from plugin.exports import export_events, read_orders

SAMPLES = Path(__file__).resolve().parent / "fixtures"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "shopify"


def test_woocommerce_orders_list_export():
    orders = read_orders((SAMPLES / "woocommerce/rest-v3-docs-examples/orders_list_response.json").read_text())
    events = list(export_events("woocommerce", orders))
    assert [e.type for e in events] == ["order.paid", "order.refunded", "order.refunded"]
    assert all(e.order.total.currency == "USD" for e in events)


def test_shopify_export_shapes_agree():
    order = json.loads((FIXTURES / "order_paid.json").read_text())
    as_object = [e.type for e in export_events("shopify", read_orders(json.dumps({"orders": [order]})))]
    as_lines = [e.type for e in export_events("shopify", read_orders(json.dumps(order) + "\n" + json.dumps(order)))]
    assert as_object == ["order.created", "order.paid"]
    assert as_lines == as_object * 2


def test_simulate_from_export_runs_the_rules(tmp_path):
    export = SAMPLES / "woocommerce/rest-v3-docs-examples/orders_list_response.json"
    result = CliRunner().invoke(main, ["simulate", "--from", "woocommerce", str(export), "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["events"] == 3 and report["rules"]["icebreaker"]["triggered"] >= 1


def test_simulate_refuses_a_file_that_is_not_an_export(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    result = CliRunner().invoke(main, ["simulate", "--from", "shopify", str(bad)])
    assert result.exit_code != 0 and "not a shopify order export" in result.output
