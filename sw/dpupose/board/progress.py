"""A one-line progress bar with throughput for long copies (written to stderr, redrawn in place)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

from dpupose.board.devices import human_bytes
from dpupose.progress import terminal_columns


def progress_wanted(flag: bool | None, stream: TextIO | None = None) -> bool:
    """--progress / --no-progress win; otherwise only when the stream is a terminal."""
    if flag is not None:
        return flag
    stream = stream or sys.stderr
    return bool(getattr(stream, "isatty", lambda: False)())


class Progress:
    """`update(n)` after each chunk; draws at most every `interval` seconds on a terminal, every
    `file_interval` seconds into a file or pipe (a log: a line every quarter second of a ten-minute write
    would be thousands), and once at `close()`."""

    WIDTH = 30

    def __init__(
        self,
        total: int,
        label: str,
        *,
        enabled: bool,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
        interval: float = 0.25,
        file_interval: float = 30.0,
    ) -> None:
        self.total = max(total, 0)
        self.label = label
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.clock = clock
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = interval if self.tty else file_interval
        self.done = 0
        self.start = clock()
        self._last_draw = -1e9 if self.tty else self.start  # in a log, the first line after file_interval

    def line(self) -> str:
        elapsed = max(self.clock() - self.start, 1e-9)
        rate = self.done / elapsed
        frac = min(self.done / self.total, 1.0) if self.total else 1.0
        filled = int(frac * self.WIDTH)
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        eta = ""
        if rate > 0 and self.done < self.total:
            secs = int((self.total - self.done) / rate)
            eta = f" ETA {secs // 60}:{secs % 60:02d}"
        return (
            f"{self.label} [{bar}] {frac * 100:5.1f}% {human_bytes(self.done)} / {human_bytes(self.total)} "
            f"{human_bytes(rate)}/s{eta}"
        )

    def update(self, n: int) -> None:
        self.done += n
        if not self.enabled:
            return
        if not self.tty and self.done >= self.total:
            return  # close() writes the last line: not twice in a log
        now = self.clock()
        if now - self._last_draw >= self.interval:
            self._last_draw = now
            self._draw("")
            self.stream.flush()

    def _draw(self, end: str) -> None:
        """On a terminal: redrawn in place, cut to its width (a wrapped line would add a line per redraw);
        elsewhere (--progress into a file or pipe): one plain line per draw, no control codes."""
        if self.tty:
            width = max(terminal_columns(self.stream) - 1, 20)
            self.stream.write("\r" + self.line()[:width] + "\x1b[K" + end)
        else:
            self.stream.write(self.line() + "\n")

    def close(self) -> None:
        if self.enabled:
            self._draw("\n")
            self.stream.flush()
