"""Format markers of the files dpupose writes and reads back ("NAME/N": an image's manifest, a quantize
summary), and how one that a newer dpupose wrote is told from a damaged one (board-safe, standard library
only)."""

from __future__ import annotations

import re

from dpupose import __version__


def newer_format(value: object, ours: str) -> bool:
    """Whether `value` is the marker `ours` ("NAME/N") with a higher N: a file a newer dpupose wrote, to be
    refused as such (naming the version that reads it), not as a damaged one."""
    name, _, number = ours.rpartition("/")
    found = re.fullmatch(re.escape(name) + r"/([0-9]+)", value) if isinstance(value, str) else None
    return found is not None and int(found.group(1)) > int(number)


def newer_format_refusal(what: str, value: str, ours: str, by: str = "a newer dpupose") -> str:
    """The start of the refusal of a file a newer dpupose wrote (newer_format): `what` (the file, as the user
    knows it) is format `value`, written by `by`; this dpupose reads `ours`, the whole marker. The caller adds
    what to do."""
    return f"{what} is format {value}, written by {by}; this dpupose ({__version__}) reads {ours}"
