"""The JSON keys the docs list, read from the docs themselves, so tests can compare them with what a real
run writes: a key added, renamed or dropped in one place and not the other fails a test."""

from __future__ import annotations

import re
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"


def table_keys(doc: str, after: str) -> list[str]:
    """The first column's `key`s of the first Markdown table after the line that contains `after`."""
    lines = (DOCS / doc).read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if after in line)
    keys: list[str] = []
    for line in lines[start + 1 :]:
        row = line.strip()
        if not row.startswith("|"):
            if keys:
                break
            continue
        keys += re.findall(r"`([^`]+)`", row.split("|")[1])  # a cell may name two: `fingerprint`, `dpu_config`
    assert keys, f"no table of keys after {after!r} in docs/{doc}"
    return keys


def listed_keys(doc: str, start: str, end: str) -> list[str]:
    """The `key`s named between `start` and `end` in the doc, outside parentheses (which say
    what a key holds)."""
    text = " ".join((DOCS / doc).read_text(encoding="utf-8").split())  # wrapped lines read as one
    part = text[text.index(start) + len(start) :]
    part = part[: part.index(end)]
    while re.search(r"\([^()]*\)", part):  # nested ones from the inside out
        part = re.sub(r"\([^()]*\)", "", part)
    keys = re.findall(r"`([^`]+)`", part)
    assert keys, f"no keys after {start!r} in docs/{doc}"
    return keys
