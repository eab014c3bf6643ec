"""docs/rules.md's recipes: each rule file lints clean (no problems, no warnings) and
`keepwell simulate` prints exactly what the chapter shows for it."""
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from plugin.cli import main
from plugin.rulefile import RULES_DIR, lint

DOC = Path(__file__).resolve().parents[1] / "docs" / "rules.md"
RECIPE = re.compile(r"```yaml\n(?P<yaml>.*?)```\n\n```console\n\$ keepwell simulate (?P<args>[^\n]*) --rules "
                    r"my-rules/(?P<name>\w+)\.yaml\n(?P<output>.*?)```", re.S)


def recipes():
    text = DOC.read_text(encoding="utf-8")
    chapter = text[text.index("## 14. Recipes"):text.index("## 15. Quick reference")]
    return [m.groupdict() for m in RECIPE.finditer(chapter)]


def test_the_chapter_has_every_playbook():
    assert [r["name"] for r in recipes()] == ["icebreaker", "cross_sell", "referral", "winback", "welcome",
                                               "occasion", "vip", "ab_test", "moments"]


@pytest.mark.parametrize("recipe", [pytest.param(r, id=r["name"]) for r in recipes()])
def test_recipe_lints_clean_and_simulates_as_documented(tmp_path, recipe):
    folder = tmp_path / "my-rules"
    shutil.copytree(RULES_DIR / "templates", folder / "templates")
    path = folder / f"{recipe['name']}.yaml"
    path.write_text(recipe["yaml"], encoding="utf-8")
    result = lint([path])
    assert (result.problems, result.warnings) == ([], [])
    run = CliRunner().invoke(main, ["simulate", *recipe["args"].split(), "--rules", str(path)])
    assert run.exit_code == 0, run.output
    assert run.output == recipe["output"]
