"""The code's guardrails, part of the one test command: ruff (with its complexity limit), mypy
--strict on the engine and the connector interface, the import-linter layer contracts, and the
size of each module. Their settings live in pyproject.toml."""
from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
MAX_LINES = 400
# Modules over the limit: none. A module that grows past it is split by reason to change.
OVER_LIMIT: dict[str, int] = {}


def _run(*command: str) -> None:
    done = subprocess.run([str(BIN / command[0]), *command[1:]], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}"


def test_ruff():
    _run("ruff", "check", "--no-cache", ".")


def test_mypy_strict():
    _run("mypy", "--no-incremental", "--cache-dir", "/dev/null")


def test_import_contracts():
    _run("lint-imports", "--no-cache")


@pytest.mark.parametrize("package", ["plugin", "connectors", "webhooks"])
def test_no_module_over_the_size_limit(package):
    too_long = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        name = path.relative_to(ROOT).as_posix()
        if "/migrations/versions/" in name:
            continue
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > OVER_LIMIT.get(name, MAX_LINES):
            too_long[name] = lines
    assert not too_long, f"split these modules by reason to change (at most {MAX_LINES} lines each): {too_long}"


def _project_modules():
    for package in ("plugin", "connectors", "webhooks"):
        root = importlib.import_module(package)
        yield root
        for info in pkgutil.walk_packages(root.__path__, f"{package}."):
            if not info.name.startswith("plugin.migrations"):  # alembic scripts run on import
                yield importlib.import_module(info.name)


def test_every_error_derives_from_one_base():
    """One hierarchy (plugin/errors.py): a caller can catch what Keepwell raises on purpose."""
    from plugin.errors import KeepwellError

    strays = sorted({f"{cls.__module__}.{cls.__qualname__}"
                     for module in _project_modules() for cls in vars(module).values()
                     if isinstance(cls, type) and issubclass(cls, BaseException)
                     and cls.__module__ == module.__name__ and not issubclass(cls, KeepwellError)})
    assert not strays, f"derive these from plugin.errors.KeepwellError: {strays}"
