import json
import sys
from pathlib import Path

import pytest

import children

pytest.importorskip("business_rules")
pytest.importorskip("rule_engine")

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "conditions.py"


def test_bench_conditions_prints_json_figures():
    result = children.run([sys.executable, str(SCRIPT), "--seconds", "0.05", "--rounds", "1"])
    assert result.returncode == 0, result.stderr
    out = result.stdout
    figures = json.loads(out.strip().splitlines()[-1])
    for key in ("keepwell", "lambda", "business_rules", "rule_engine", "ratio", "ratio_vs_lambda", "targets", "pass"):
        assert key in figures
    assert figures["targets"] == {"ratio": 10, "ratio_vs_lambda": 0.15}
    assert figures["ratio"] == pytest.approx(figures["keepwell"] / figures["business_rules"], rel=0.01)
    assert isinstance(figures["pass"], bool)
