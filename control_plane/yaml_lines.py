"""YAML read with its lines: the machinery prefect.yaml and deploy-manager.yaml share.

`load_with_lines` is `yaml.safe_load` (what Prefect reads prefect.yaml with; libyaml's
parser where PyYAML has it) whose mappings and sequences also know their lines
(`LineMapping`, `LineSequence`), which keys a mapping has of its own rather than through a
`<<:` merge, and which keys are given twice in one mapping. `plain_copy` turns that tree
into plain dicts and lists, refusing alias bombs and cycles, before anything validates it.
`data_path` and `line_at` take the location of a pydantic error back to the YAML line that
caused it.

It knows nothing of what either file means: messages, codes and remedies are the callers'.
"""

from __future__ import annotations

from typing import Any

import yaml

# An untrusted file can make a few aliases expand into billions of values.
MAX_EXPANDED_VALUES = 200_000


class LineMapping(dict[Any, Any]):
    """A YAML mapping that knows its line, its keys' lines and which keys are its own."""

    line: int
    key_lines: dict[Any, int]
    own_keys: set[Any]


class LineSequence(list[Any]):
    """A YAML sequence that knows its line and the line of each item."""

    line: int
    item_lines: list[int]


# libyaml's parser when PyYAML was built with it (it is ~10x faster than the pure-Python
# one, and its nodes carry the same marks); the constructors below are Python either way.
SAFE_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _LineLoader(SAFE_LOADER):  # type: ignore[valid-type,misc]
    """`yaml.safe_load`, as Prefect uses it, that also records lines and duplicate keys."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicates: list[tuple[int, str, int]] = []  # (line, key, first line)


_MERGE_TAG = "tag:yaml.org,2002:merge"


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> Any:
    data = LineMapping()
    data.line = node.start_mark.line + 1
    data.key_lines = {}
    data.own_keys = set()
    yield data
    seen: dict[tuple[str, str], int] = {}
    for key_node, _ in node.value:
        if key_node.tag == _MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
            continue
        line = key_node.start_mark.line + 1
        first = seen.setdefault((key_node.tag, key_node.value), line)
        if first != line:
            loader.duplicates.append((line, key_node.value, first))
        data.own_keys.add(loader.construct_object(key_node))
    data.update(loader.construct_mapping(node))
    # construct_mapping flattened the merge keys into node.value, merged pairs first:
    # the last line recorded for a key is the one whose value won.
    for key_node, _ in node.value:
        data.key_lines[loader.construct_object(key_node)] = key_node.start_mark.line + 1


def _construct_sequence(loader: _LineLoader, node: yaml.SequenceNode) -> Any:
    data = LineSequence()
    data.line = node.start_mark.line + 1
    data.item_lines = [item.start_mark.line + 1 for item in node.value]
    yield data
    data.extend(loader.construct_sequence(node))


_LineLoader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)
_LineLoader.add_constructor("tag:yaml.org,2002:seq", _construct_sequence)


def load_with_lines(text: str) -> tuple[Any, list[tuple[int, str, int]]]:
    """The YAML document with its lines, and the keys given twice: (line, key, first line).

    Raises what `yaml.safe_load` raises: a `yaml.YAMLError` (a `MarkedYAMLError` knows
    where), or RecursionError for a document nested too deeply.
    """
    loader = _LineLoader(text)
    try:
        return loader.get_single_data(), loader.duplicates
    finally:
        loader.dispose()


class ExpansionError(Exception):
    """The document cannot be copied: its aliases expand too far, or form a cycle."""


def plain_copy(tree: Any) -> Any:
    """The tree as plain dicts and lists (raises ExpansionError or RecursionError)."""
    return _plain(tree, [MAX_EXPANDED_VALUES], set())


def _plain(value: Any, budget: list[int], active: set[int]) -> Any:
    """A copy made of plain dicts and lists; refuses cycles and alias bombs."""
    budget[0] -= 1
    if budget[0] < 0:
        raise ExpansionError(f"its aliases expand to more than {MAX_EXPANDED_VALUES} values")
    if isinstance(value, dict | list):
        if id(value) in active:
            raise ExpansionError("an alias refers to a mapping or list that contains it")
        active.add(id(value))
        try:
            if isinstance(value, dict):
                return {k: _plain(v, budget, active) for k, v in value.items()}
            return [_plain(v, budget, active) for v in value]
        finally:
            active.discard(id(value))
    return value


def node_at(tree: Any, path: tuple[Any, ...]) -> tuple[Any, int]:
    """The deepest node of `path` found in the line-annotated tree, and its line."""
    line = getattr(tree, "line", 0)
    node = tree
    for part in path:
        if isinstance(node, LineMapping):
            try:
                found = part in node
            except TypeError:
                found = False
            if not found:
                break
            line = node.key_lines.get(part, line)
            node = node[part]
        elif isinstance(node, LineSequence) and isinstance(part, int) and 0 <= part < len(node):
            line = node.item_lines[part]
            node = node[part]
        else:
            break
    return node, line


def line_at(tree: Any, path: tuple[Any, ...]) -> int:
    """The line of the deepest node of `path` found in the tree (its key's line)."""
    return node_at(tree, path)[1]


def data_path(data: Any, loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """The parts of a pydantic error location that index into the data (no union tags)."""
    path: list[Any] = []
    node = data
    for part in loc:
        if isinstance(node, dict):
            try:
                found = part in node
            except TypeError:
                found = False
            if found:
                path.append(part)
                node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            path.append(part)
            node = node[part]
    return tuple(path)


def value_at(data: Any, path: tuple[Any, ...]) -> Any:
    """The value at a path `data_path` returned."""
    for part in path:
        data = data[part]
    return data
