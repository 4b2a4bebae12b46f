"""Signal sweeps: a signal sent at each point of a piece of code in turn where Python runs a signal's handler.

Python runs a handler between bytecodes, after a call into C returns and as a Python function starts: the
points here are those events (a profile function's 'c_return' and 'call') in the files watched, counted
while armed. A sweep gives SignalAt(1), SignalAt(2), ... until the code ends before the Nth point.
"""

from __future__ import annotations

import inspect
import os
import signal
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

# The file writer, the temporary's creation and the context managers' entry and exit.
GENERATOR = inspect.CO_GENERATOR
WATCHED = ("fsio.py", "tempfile.py", "contextlib.py")


class SignalAt:
    def __init__(self, n: int, signum: int, watched: tuple[str, ...] = WATCHED) -> None:
        self.n, self.signum = n, signum
        self.watched = tuple(f"{os.sep}{name}" for name in watched)
        self.sent = False
        self.where = ""

    @contextmanager
    def armed(self) -> Iterator[None]:
        """The block runs with the signal sent at its Nth point (its handler runs there: KeyboardInterrupt)."""
        count = 0

        def profile(frame, event, arg):
            nonlocal count
            if event == "call" and frame.f_code.co_flags & GENERATOR and frame.f_lasti > 0:
                # A generator resumed (at its yield): Python 3.10 leaves a frame whose profile function raised
                # at its 'call' without running its handlers, which no real signal does (it is handled at an
                # instruction, inside the frame's try). The resumed frame's next point stands for this one.
                return
            if event in ("call", "c_return") and frame.f_code.co_filename.endswith(self.watched):
                count += 1
                if count == self.n:
                    self.sent, self.where = True, f"{frame.f_code.co_name}:{frame.f_lineno}"
                    os.kill(os.getpid(), self.signum)

        sys.setprofile(profile)
        try:
            yield
        finally:
            # Only its own: a signal that came as this generator's __exit__ began leaves the generator to be
            # finalized when collected (later, with the exception kept), and its finally would then take
            # another point's profile away in the middle of that point's block, which ran to its end unswept.
            if sys.getprofile() is profile:
                sys.setprofile(None)

    def __repr__(self) -> str:
        return f"{signal.Signals(self.signum).name} at point {self.n} ({self.where or 'not reached'})"


def signal_sweep(signum: int, limit: int = 10_000, watched: tuple[str, ...] = WATCHED) -> Iterator[SignalAt]:
    """SignalAt(1), SignalAt(2), ... for `signum` at the points of the files `watched` (by name), the last one
    being the first whose block ended unsignalled."""
    # tempfile's first temporary name takes a lock with no try around its acquire: a signal just after it
    # would leave it taken, and the next temporary wait for ever (the sweep would hang, not fail). Made here.
    os.rmdir(tempfile.mkdtemp())
    for n in range(1, limit):
        point = SignalAt(n, signum, watched)
        yield point
        if not point.sent:
            return
    raise AssertionError(f"more than {limit} points: the sweep did not end")
