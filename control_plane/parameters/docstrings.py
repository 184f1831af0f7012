"""Parameter descriptions from a flow's docstring, as Prefect finds them.

griffe's Google parser (what Prefect uses), reduced to what decides parameter
descriptions: section detection, block reading and the `name (type): text` items.
"""

from __future__ import annotations

import re
from inspect import cleandoc
from typing import Final

_SECTION_KINDS: Final[dict[str, str]] = {
    "args": "parameters",
    "arguments": "parameters",
    "params": "parameters",
    "parameters": "parameters",
    "keyword args": "other",
    "keyword arguments": "other",
    "other args": "other",
    "other arguments": "other",
    "other params": "other",
    "other parameters": "other",
    "type args": "other",
    "type arguments": "other",
    "type params": "other",
    "type parameters": "other",
    "raises": "other",
    "exceptions": "other",
    "returns": "other",
    "yields": "other",
    "receives": "other",
    "examples": "block",
    "attributes": "other",
    "functions": "other",
    "methods": "other",
    "classes": "other",
    "type aliases": "other",
    "modules": "other",
    "warns": "other",
    "warnings": "other",
}
_RE_ADMONITION: Final = re.compile(
    r"^(?P<type>[\w][\s\w-]*):(\s+(?P<title>[^\s].*))?\s*$", re.IGNORECASE
)


def _is_empty(line: str) -> bool:
    return not line or line.isspace()


def _read_block_items(lines: list[str], offset: int) -> tuple[list[list[str]], int]:
    if offset >= len(lines):
        return [], offset
    new_offset = offset
    while new_offset < len(lines) and _is_empty(lines[new_offset]):
        new_offset += 1
    if new_offset >= len(lines):
        return [], new_offset - 1
    indent = len(lines[new_offset]) - len(lines[new_offset].lstrip())
    if indent == 0:
        return [], new_offset - 1
    items: list[list[str]] = []
    current = [lines[new_offset][indent:]]
    new_offset += 1
    while new_offset < len(lines):
        line = lines[new_offset]
        if _is_empty(line):
            current.append("")
        elif line.startswith(indent * 2 * " "):
            current.append(line[indent * 2 :])
        elif line.startswith((indent + 1) * " "):
            current.append(line[len(line) - len(line.lstrip()) :])
        elif line.startswith(indent * " "):
            items.append(current)
            current = [line[indent:]]
        else:
            break
        new_offset += 1
    items.append(current)
    return items, new_offset - 1


def _read_block(lines: list[str], offset: int) -> tuple[str, int]:
    if offset >= len(lines):
        return "", offset - 1
    new_offset = offset
    while new_offset < len(lines) and _is_empty(lines[new_offset]):
        new_offset += 1
    if new_offset >= len(lines):
        return "", offset - 1
    indent = len(lines[new_offset]) - len(lines[new_offset].lstrip())
    if indent == 0:
        return "", offset - 1
    block = [lines[new_offset].lstrip()]
    new_offset += 1
    while new_offset < len(lines) and (
        lines[new_offset].startswith(indent * " ") or _is_empty(lines[new_offset])
    ):
        block.append(lines[new_offset][indent:])
        new_offset += 1
    return "\n".join(block).rstrip("\n"), new_offset - 1


def docstring_parameter_descriptions(docstring: str | None) -> dict[str, str]:
    """Parameter descriptions from a Google-style docstring, as Prefect finds them.

    Same result as `prefect.utilities.callables.parameter_docstrings` (griffe's Google
    parser): the last `Args:`/`Arguments:`/`Params:`/`Parameters:` section wins, a section
    needs a blank line above it and its items indented below it, continuation lines are
    joined with newlines.
    """
    if not docstring:
        return {}
    return _descriptions(cleandoc(docstring.rstrip()).split("\n"))


def _descriptions(lines: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    in_code_block = False
    offset = 0
    count = len(lines)
    while offset < count:
        line = lines[offset]
        is_fence = line.lstrip(" ").startswith("```")
        if in_code_block:
            if is_fence:
                in_code_block = False
        elif is_fence:
            in_code_block = True
        elif ":" in line and (match := _RE_ADMONITION.match(line)):
            blank_above = offset == 0 or _is_empty(lines[offset - 1])
            has_next = offset < count - 1
            has_next2 = offset < count - 2
            blank_below = has_next and _is_empty(lines[offset + 1])
            blank_below2 = has_next2 and _is_empty(lines[offset + 2])
            indented_below = has_next and not blank_below and lines[offset + 1].startswith(" ")
            indented_below2 = has_next2 and not blank_below2 and lines[offset + 2].startswith(" ")
            if (
                not (indented_below or indented_below2)
                or not blank_above
                or (indented_below2 and blank_below)
            ):
                offset += 1
                continue
            kind = _SECTION_KINDS.get(match.group("type").lower())
            if kind == "parameters":
                items, offset = _read_block_items(lines, offset + 1)
                # A section where no item parses is empty, and griffe drops it.
                found = _parameter_items(items) or found
            elif kind == "other":
                _, offset = _read_block_items(lines, offset + 1)
            else:  # examples and admonitions read a plain block
                _, offset = _read_block(lines, offset + 1)
        offset += 1
    return found


def _parameter_items(items: list[list[str]]) -> dict[str, str]:
    found: dict[str, str] = {}
    for item in items:
        head, sep, description = item[0].partition(":")
        if not sep:
            continue
        text = "\n".join([description.lstrip(), *item[1:]]).rstrip("\n")
        # `name (type): text`; otherwise griffe keeps the head as is, spaces included.
        name = head.split("(", 1)[0].strip() if "(" in head and head.endswith(")") else head
        found[name] = text
    return found
