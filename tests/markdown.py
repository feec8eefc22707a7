"""Reading the README's markdown in tests: a table under its header line."""

from __future__ import annotations


def table_rows(text: str, header: str) -> dict[str, list[str]]:
    """The markdown table of ``text`` whose header line is ``header``: first cell -> the other cells, per row."""
    lines = text[text.index(header):].splitlines()[2:]
    out = {}
    for line in lines:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        out[cells[0]] = cells[1:]
    return out
