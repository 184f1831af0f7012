"""Parameter descriptions from a flow's docstring, parsed by griffe as Prefect parses them.

`docstring_parameter_descriptions` is `prefect.utilities.callables.parameter_docstrings`
without Prefect: griffe's Google parser over the docstring, the last parameters section
winning, griffe's logger silenced while it parses. griffe is a package of its own (Prefect
depends on it; importing it imports no Prefect), so the descriptions follow the griffe the
installed Prefect uses, quirks included, with no copy of its parser to keep in step.

What it costs discovery (measured on the 1000-file repository of `bench/discovery.py`):
`import griffe` adds ~42 ms to a process that has imported discovery (`python -X
importtime`), and griffe reads a flow's docstring in ~30 us where the reduced copy of its
parser this module held before took ~7 us (24 ms against 5 ms for the 801 docstrings).
griffe is imported only for a docstring that can hold a section (one with a ':'), so a
repository without such docstrings never pays for it; with a forked child both processes
import it. The whole `deploy-manager discover` command's median grew by 0.06-0.11 s
(0.678 -> 0.737 s back to back at load 0.9-1.1; +79 ms over 21 interleaved pairs); the
goal is under 1 s.
"""

from __future__ import annotations

import logging


def docstring_parameter_descriptions(docstring: str | None) -> dict[str, str]:
    """Parameter descriptions from a Google-style docstring, as Prefect finds them."""
    if not docstring or ":" not in docstring:  # no section, and no griffe to import
        return {}
    from griffe import Docstring, DocstringSectionKind, Parser, parse

    logger = logging.getLogger("griffe")
    disabled = logger.disabled
    logger.disabled = True  # what Prefect's disable_logger("griffe") does
    try:
        sections = parse(Docstring(docstring), Parser.google)
    finally:
        logger.disabled = disabled
    found: dict[str, str] = {}
    for section in sections:
        if section.kind == DocstringSectionKind.parameters:
            found = {parameter.name: parameter.description for parameter in section.value}
    return found
