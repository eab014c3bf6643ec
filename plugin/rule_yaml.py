"""Rule files as YAML: parsed safely (standard tags only, a cap on nodes so alias bombs are
refused, no merge keys, no duplicate keys) with the line and column of every node, and syntax
errors told in a marketer's words (plugin.yaml_errors)."""
from __future__ import annotations

import yaml

from plugin import yaml_errors
from plugin.errors import KeepwellError

MAX_NODES = 20_000
_STANDARD_TAGS = {f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "map", "seq", "timestamp")}


class Doc:
    """One parsed YAML file: its data and the (line, col) of every node by path."""

    def __init__(self, file: str, data, positions: dict, text: str = ""):
        self.file, self.data, self.positions, self.text = file, data, positions, text

    def where(self, path) -> tuple[int, int]:
        path = tuple(path)
        while path and path not in self.positions:
            path = path[:-1]
        return self.positions.get(path, (1, 1))

    def rule_id(self, path) -> str | None:
        if len(path) >= 2 and path[0] == "rules" and isinstance(self.data, dict):
            rules = self.data.get("rules")
            if isinstance(rules, list) and isinstance(path[1], int) and path[1] < len(rules):
                rule = rules[path[1]]
                if isinstance(rule, dict) and isinstance(rule.get("id"), str):
                    return rule["id"]
        return None


class YamlProblem(KeepwellError):
    def __init__(self, line, col, message):
        self.line, self.col, self.message = line, col, message


def parse(text: str, file: str) -> Doc:
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        raise YamlProblem(*yaml_errors.explain(exc, text))
    finally:
        loader.dispose()
    if root is None:
        return Doc(file, {}, {(): (1, 1)}, text)
    positions: dict = {}
    count = 0

    def build(node, path):
        nonlocal count
        count += 1
        if count > MAX_NODES:
            raise YamlProblem(node.start_mark.line + 1, node.start_mark.column + 1,
                               f"too many YAML nodes (over {MAX_NODES}): alias expansion is limited")
        positions.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
        if node.tag not in _STANDARD_TAGS:
            raise YamlProblem(node.start_mark.line + 1, node.start_mark.column + 1,
                               f"custom YAML tag {node.tag!r} is not allowed in rule files")
        if isinstance(node, yaml.MappingNode):
            out = {}
            for knode, vnode in node.value:
                if knode.tag == "tag:yaml.org,2002:merge" or getattr(knode, "value", None) == "<<":
                    raise YamlProblem(knode.start_mark.line + 1, knode.start_mark.column + 1,
                                       "YAML merge keys (<<) are not supported in rule files; repeat the fields")
                key = loader.construct_object(knode) if isinstance(knode, yaml.ScalarNode) else None
                if isinstance(knode, yaml.MappingNode) and text[knode.start_mark.index - 1:knode.start_mark.index] == "{":
                    raise YamlProblem(knode.start_mark.line + 1, knode.start_mark.column, yaml_errors.JINJA_UNQUOTED)
                if not isinstance(key, (str, int, bool)) or isinstance(key, bool):
                    raise YamlProblem(knode.start_mark.line + 1, knode.start_mark.column + 1, "mapping keys must be plain text")
                key = str(key)
                if key in out:
                    raise YamlProblem(knode.start_mark.line + 1, knode.start_mark.column + 1, f"duplicate key {key!r}")
                positions[path + (key,)] = (knode.start_mark.line + 1, knode.start_mark.column + 1)
                out[key] = build(vnode, path + (key,))
            return out
        if isinstance(node, yaml.SequenceNode):
            return [build(child, path + (i,)) for i, child in enumerate(node.value)]
        value = loader.construct_object(node)
        if hasattr(value, "isoformat"):  # unquoted dates: keep as text, the rule checks parse them
            return node.value
        return value

    return Doc(file, build(root, ()), positions, text)


def rule_positions(docs: list[Doc]) -> dict:
    """Rule id -> (doc, index in its file)."""
    placed = {}
    for doc in docs:
        for i, rule in enumerate(doc.data.get("rules") or []):
            if isinstance(rule, dict) and isinstance(rule.get("id"), str):
                placed.setdefault(rule["id"], (doc, i))
    return placed
