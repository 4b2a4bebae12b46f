"""Format markers of the files dpupose writes and reads back ("NAME/N": an image's manifest, a quantize
summary), and how one that a newer dpupose wrote is told from a damaged one (board-safe, standard library
only)."""

from __future__ import annotations

import re


def newer_format(value: object, ours: str) -> bool:
    """Whether `value` is the marker `ours` ("NAME/N") with a higher N: a file a newer dpupose wrote, to be
    refused as such (naming the version that reads it), not as a damaged one."""
    name, _, number = ours.rpartition("/")
    found = re.fullmatch(re.escape(name) + r"/([0-9]+)", value) if isinstance(value, str) else None
    return found is not None and int(found.group(1)) > int(number)
