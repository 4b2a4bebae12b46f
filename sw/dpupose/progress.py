"""A small progress bar on stderr (board-safe, no dependencies). When stderr is not a terminal it writes a
plain line every 30 seconds and a final one, so logs stay readable."""

from __future__ import annotations

import os
import shutil
import sys
import time
from typing import TextIO


def terminal_columns(stream: TextIO) -> int:
    """Columns of the terminal `stream` writes to: COLUMNS when set, else the stream's own terminal (the bar
    goes to stderr, while stdout may be a pipe or a file: `dpupose ... | tee log`), else 80."""
    if not os.environ.get("COLUMNS"):
        try:
            columns = os.get_terminal_size(stream.fileno()).columns
        except (AttributeError, OSError, ValueError):  # no file descriptor, or not a terminal
            columns = 0
        if columns > 0:
            return columns
    return shutil.get_terminal_size().columns


class Progress:
    def __init__(
        self, total: int, desc: str = "", unit: str = "it", stream: TextIO | None = None, initial: int = 0
    ) -> None:
        """`initial`: units already done before this bar started (a resumed run), counted in the position but
        not in the rate and the time left."""
        self.total = max(total, 0)
        self.desc = desc
        self.unit = unit
        self.stream = stream or sys.stderr
        self.count = self.initial = initial
        self.start = time.monotonic()
        self._last = self.start
        self.postfix = ""
        self.tty = getattr(self.stream, "isatty", lambda: False)()
        self._shown = 0  # length of the line on screen (a shorter redraw blanks the rest)

    def update(self, n: int = 1, postfix: str | None = None) -> None:
        self.count += n
        if postfix is not None:
            self.postfix = postfix
        now = time.monotonic()
        if self.tty and (now - self._last > 0.2 or self.count >= self.total):
            self._last = now
            self.stream.write("\r" + self._fit(self._line(now)))
            self.stream.flush()
        elif not self.tty and now - self._last > 30.0 and self.count < self.total:
            self._last = now
            self.stream.write(self._line(now) + "\n")
            self.stream.flush()

    def _line(self, now: float) -> str:
        elapsed = max(now - self.start, 1e-9)
        rate = (self.count - self.initial) / elapsed
        frac = self.count / self.total if self.total else 1.0
        bar = "#" * int(frac * 24)
        eta = (self.total - self.count) / rate if rate > 0 else 0.0
        return (
            f"{self.desc} [{bar:<24}] {self.count}/{self.total} {rate:.1f} {self.unit}/s eta {eta:.0f}s {self.postfix}"
        )

    def _fit(self, line: str) -> str:
        """On a terminal: the line cut to its width (a longer one wraps, and each redraw adds a line) and
        padded over what the previous redraw left."""
        line = line[: max(terminal_columns(self.stream) - 1, 20)]
        padded, self._shown = line.ljust(self._shown), len(line)
        return padded

    def close(self) -> None:
        line = self._line(time.monotonic())
        self.stream.write(("\r" + self._fit(line)) if self.tty else line)
        self.stream.write("\n")
        self.stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
