"""The training/evaluation progress bar: redrawn in place on a terminal, plain lines elsewhere."""

from __future__ import annotations

import io
import os

from dpupose.progress import Progress


class Tty(io.StringIO):
    def isatty(self):
        return True


def draws(columns: str, postfixes: list[str], monkeypatch) -> list[str]:
    monkeypatch.setenv("COLUMNS", columns)
    tty = Tty()
    bar = Progress(10, "epoch 1/8", unit="batch", stream=tty)
    for postfix in postfixes:
        bar._last = -1e9  # draw every update
        bar.update(1, postfix=postfix)
    bar.close()
    return tty.getvalue().split("\r")[1:]


def test_a_terminal_redraw_fits_its_width(monkeypatch):
    first, second, last = draws("50", ["loss 0.123456789", ""], monkeypatch)
    assert len(first) == len(second) == 49 and first.startswith("epoch 1/8 [##")
    assert last.endswith("\n") and len(last) == 50  # a wrapped line would leave one line per redraw


def test_a_shorter_redraw_blanks_the_rest_of_the_previous_line(monkeypatch):
    first, second, _ = draws("200", ["loss 0.123456789", ""], monkeypatch)
    assert "loss 0.123456789" in first and len(first) < 199
    assert len(second) == len(first) and "loss" not in second and second.endswith("   ")


def test_not_a_terminal_gets_whole_lines(monkeypatch):
    monkeypatch.setenv("COLUMNS", "20")
    log = io.StringIO()
    bar = Progress(4, "eval", stream=log)
    bar.update(4)
    bar.close()
    text = log.getvalue()
    assert "\r" not in text and text.count("\n") == 1
    assert text.startswith("eval [########################] 4/4 ")  # not cut to the terminal's width


def test_the_width_is_the_terminal_the_bar_writes_to(monkeypatch):
    """A 40-column terminal on stderr while stdout is a pipe (`dpupose train | tee log`): the bar is cut to
    that terminal, not to the 80 columns assumed for a stdout that is not one (both bars)."""
    import fcntl
    import select
    import struct
    import termios

    from dpupose.board.progress import Progress as CopyProgress

    monkeypatch.delenv("COLUMNS", raising=False)
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 40, 0, 0))
    with open(slave, "w", closefd=True) as tty, open(master, "rb", buffering=0, closefd=True) as screen:
        bar = Progress(10, "epoch 1/8", unit="batch", stream=tty)
        bar._last = -1e9
        bar.update(1, postfix="loss 0.123456789")
        copy = CopyProgress(4 * 1024**2, "write ", enabled=True, stream=tty, interval=0.0)
        copy.update(1024**2)
        tty.flush()
        text = b""
        while text.count(b"\r") < 2 and select.select([screen], [], [], 10)[0]:  # the pty hands it on in pieces
            text += screen.read(4096)
    first, second = text.decode().split("\r")[1:]
    assert len(first) == 39 and first.startswith("epoch 1/8 [##")
    assert second.endswith("\x1b[K") and len(second) == 39 + len("\x1b[K")


def test_a_resumed_bar_counts_only_this_run_in_its_rate(monkeypatch):
    # A training run resumed at batch 375 of 625, then 10 batches in 50 s: 0.2 batch/s and 1200 s left,
    # not 385 batches in 50 s (7.7/s, 31 s left).
    clock = iter([1000.0, 1050.0])
    monkeypatch.setattr("dpupose.progress.time.monotonic", lambda: next(clock))
    log = io.StringIO()
    bar = Progress(625, "epoch 2/8", "batch", stream=log, initial=375)
    bar.count += 10
    assert bar._line(1050.0).startswith("epoch 2/8 [##############          ] 385/625 0.2 batch/s eta 1200s")


class Clock:
    """time.monotonic for the bar, moved by hand."""

    def __init__(self, monkeypatch, start: float = 1000.0) -> None:
        self.now = start
        monkeypatch.setattr("dpupose.progress.time.monotonic", lambda: self.now)


def test_a_terminal_is_redrawn_at_most_every_0_2_s_and_at_the_last_unit(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    clock, tty = Clock(monkeypatch), Tty()
    bar = Progress(3, "eval", stream=tty)
    clock.now += 0.1
    bar.update()  # 0.1 s after the start: not drawn
    assert tty.getvalue() == ""
    clock.now += 0.15
    bar.update()  # 0.25 s: drawn
    assert tty.getvalue().count("\r") == 1 and " 2/3 " in tty.getvalue()
    clock.now += 0.05
    bar.update()  # the last unit, 0.05 s after the last draw: drawn all the same
    assert tty.getvalue().count("\r") == 2 and tty.getvalue().split("\r")[-1].startswith("eval [" + "#" * 24 + "] 3/3")


def test_a_log_gets_a_line_every_30_s_and_none_for_the_last_unit(monkeypatch):
    """Not a terminal: one line per 30 s, counted from the last line (not one per update after the first 30 s),
    and none when the count reaches the total, as close() writes the final one."""
    clock, log = Clock(monkeypatch), io.StringIO()
    with Progress(6, "eval", stream=log) as bar:
        for at, expected in ((29.0, 0), (31.0, 1), (32.0, 1), (60.0, 1), (61.5, 2)):
            clock.now = 1000.0 + at
            bar.update()
            assert log.getvalue().count("\n") == expected, at
        assert log.getvalue().splitlines()[-1].startswith("eval [####################    ] 5/6 0.1 it/s eta 12s")
        clock.now += 40.0
        bar.update()  # 6/6, 40 s after the last line
        assert log.getvalue().count("\n") == 2
    lines = log.getvalue().splitlines()  # the with block's close() wrote the final line
    assert len(lines) == 3 and lines[-1].startswith("eval [########################] 6/6 0.1 it/s eta 0s")


def test_an_empty_or_negative_total_is_a_full_bar_of_0(monkeypatch):
    for total in (0, -2):
        log = io.StringIO()
        Progress(total, "none", stream=log).close()
        assert log.getvalue().startswith("none [########################] 0/0 ")


def test_the_width_is_columns_when_set_else_the_terminal_else_the_fallback(monkeypatch):
    """COLUMNS comes first, also over the terminal's own width; a terminal that reports 0 columns (a pty whose
    size no one set: `docker run -t`, `script`) is no width, and the fallback (80 where nothing says) is used."""
    import fcntl
    import shutil
    import struct
    import termios

    from dpupose.progress import terminal_columns

    master, slave = os.openpty()
    try:
        with open(slave, "w", closefd=False) as tty:
            fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 40, 0, 0))
            monkeypatch.setenv("COLUMNS", "55")
            assert terminal_columns(tty) == 55
            monkeypatch.delenv("COLUMNS")
            assert terminal_columns(tty) == 40
            fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 0, 0, 0, 0))
            monkeypatch.setattr(shutil, "get_terminal_size", lambda: os.terminal_size((66, 24)))  # stdout's
            assert terminal_columns(tty) == 66
            assert terminal_columns(io.StringIO()) == 66
    finally:
        os.close(slave)
        os.close(master)
