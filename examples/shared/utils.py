"""Helpers shared by the flows (not a flow file)."""

from collections.abc import Iterator


def chunked(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
