"""`keepwell simulate` streams its history: the same reports, emails and explanations as the
in-memory simulator made (golden files in tests/fixtures/simulate), in memory that follows the
customers, not the events."""
import json
import random

import pytest
from click.testing import CliRunner

from plugin.cli import main
from plugin.cli.replay import format_report
from plugin.engine.state import state_to_dict
from plugin.explain import explain
from plugin.history_stream import TimeOrdered
from plugin.rulefile import load_rules
from plugin.simulate import Simulator, read_events, simulate, time_ordered
from plugin.simulate_store import Hashes, PackedStates
from tests.streaming_histories import GOLDEN, HISTORIES, explained_customers, renderer, rules, write_history


@pytest.mark.parametrize("name", sorted(HISTORIES))
def test_streamed_out_of_order_history_reproduces_the_in_memory_reports(tmp_path, name):
    golden = json.loads((GOLDEN / f"{name}.json").read_text(encoding="utf-8"))
    path = write_history(name, tmp_path / "history.jsonl")
    with path.open(encoding="utf-8") as f:
        events = TimeOrdered(f, chunk=700)  # several sorted runs merged
        assert not events.in_order and len(events) == len(path.read_text(encoding="utf-8").splitlines())
        # a few customers unpacked at a time: nearly every event unpacks a state and packs another
        report = simulate(events, rules(), render=renderer(), states=PackedStates(hot=16), keep_ledger=False)
        assert json.loads(json.dumps(report.to_dict())) == golden["report"]  # as `--format json` prints it
        assert format_report(report) == golden["table"]
        for customer in explained_customers(name):
            assert explain(events, rules(), customer) == golden["explain"][customer]


def test_a_history_in_order_is_read_twice_and_never_held(tmp_path):
    path = write_history("shopify_eur", tmp_path / "shuffled.jsonl")
    with path.open(encoding="utf-8") as f:
        ordered = list(time_ordered(read_events(f)))
    from plugin.events import event_to_dict

    sorted_path = tmp_path / "sorted.jsonl"
    sorted_path.write_text("".join(json.dumps(event_to_dict(e), ensure_ascii=False) + "\n" for e in ordered),
                           encoding="utf-8")
    with sorted_path.open(encoding="utf-8") as f:
        stream = TimeOrdered(f)
        assert stream.in_order and len(stream) == len(ordered)
        assert [e.id for e in stream] == [e.id for e in ordered]
        assert not isinstance(iter(stream), list)


def test_packed_states_come_back_equal(tmp_path):
    path = write_history("woocommerce_ils", tmp_path / "history.jsonl")
    with path.open(encoding="utf-8") as f:
        events = list(TimeOrdered(f))
    plain, packed = Simulator(rules()), Simulator(rules(), states=PackedStates(hot=3))
    for e in events:
        plain.feed(e)
        packed.feed(e)
    assert len(packed.states) == len(plain.states) > 1000
    assert {k: state_to_dict(s) for k, s in packed.states.items()} == \
           {k: state_to_dict(s) for k, s in plain.states.items()}
    hebrew = [s for s in plain.states.values() if s.locale == "he" and s.first_name]
    assert hebrew and all(packed.states.get((s.shop, s.customer_id)) == s for s in hebrew)


def test_the_cli_streams_a_file_and_stdin_with_the_same_report(tmp_path):
    path = write_history("shopify_eur", tmp_path / "history.jsonl")
    with path.open(encoding="utf-8") as f:
        expected = simulate(time_ordered(read_events(f)), load_rules(), render=renderer(), states={}).to_dict()
    runner = CliRunner()
    from_file = runner.invoke(main, ["simulate", str(path), "--format", "json"])
    assert from_file.exit_code == 0, from_file.output
    assert json.loads(from_file.output) == expected
    from_stdin = runner.invoke(main, ["simulate", "-", "--format", "json"], input=path.read_text(encoding="utf-8"))
    assert from_stdin.exit_code == 0, from_stdin.output
    assert json.loads(from_stdin.output) == expected


def test_a_bad_line_fails_before_anything_is_simulated(tmp_path):
    path = write_history("shopify_eur", tmp_path / "history.jsonl")
    lines = path.read_text(encoding="utf-8").splitlines()
    lines.insert(4000, '{"id": "x", "type": "order.paid", "shop": "s", "customer_id": "1"}')
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["simulate", str(path), "--format", "json"])
    assert result.exit_code == 1
    assert "line 4001:" in result.output and "rules" not in result.output


def test_hashes_keep_every_entry_as_they_grow():
    rng = random.Random(1)
    expected = {rng.getrandbits(64) - (1 << 63): rng.randint(1, 255) for _ in range(50_000)}
    table = Hashes(size=16)
    for h, v in expected.items():
        table.put(h, v)
    assert len(table) == len(expected)
    assert all(table.get(h) == v for h, v in expected.items())
    assert table.get(12345) == 0 and 12345 not in table
