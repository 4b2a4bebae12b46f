"""numpy's OpenBLAS held to one thread while the emulator runs (board-safe: ctypes and /proc only).

OpenBLAS starts a thread per core and splits each matrix product across them. The emulator's products
are small (a layer of one frame), and on a PC with few cores or with other work running those threads
wait on each other and on the run's own: docs/runtime.md has the figures. threadpoolctl, which sets the
count from Python, is not on the board, so the library numpy loaded is found in /proc/self/maps and its
own openblas_set_num_threads is called (under the prefix and suffix numpy's wheels give it). A count the
environment sets (OPENBLAS_NUM_THREADS, or GOTO_NUM_THREADS or OMP_NUM_THREADS, which OpenBLAS also reads)
is the user's and stays; so does a BLAS other than OpenBLAS, or none found.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

ENVIRONMENT = ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS")
# numpy >= 2's wheels: scipy_openblas_..._64_ or ...64_; numpy 1's: openblas_...64_; a system OpenBLAS: plain.
_NAMES = [(prefix, suffix) for prefix in ("scipy_", "") for suffix in ("64_", "_64", "")]

_lock = threading.Lock()
_held = 0  # blocks inside one_blas_thread now (pipelined runs run emulators in several threads)
_saved: list[tuple[Callable[[int], None], int]] = []  # each library's setter and the count it had
_libraries: list[tuple[Any, Any]] | None = None


def _loaded_openblas() -> list[str]:
    """The OpenBLAS libraries mapped into this process (numpy's own copy, or a system one behind libblas)."""
    import numpy  # noqa: F401  (loads its BLAS)

    paths: list[str] = []
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            for line in maps:  # address, permissions, offset, device, inode and (for a file) its path
                fields = line.split(maxsplit=5)
                path = fields[5].strip() if len(fields) == 6 else ""
                if "openblas" in path.lower() and ".so" in os.path.basename(path) and path not in paths:
                    paths.append(path)
    except OSError:  # no /proc (not Linux): left as it is
        return []
    return paths


def _openblas_threads() -> list[tuple[Any, Any]]:
    """(set, get) of each OpenBLAS loaded; looked up once."""
    global _libraries
    if _libraries is None:
        found = []
        for path in _loaded_openblas():
            try:
                lib = ctypes.CDLL(path, mode=os.RTLD_NOLOAD | os.RTLD_LAZY)
            except OSError:
                continue
            for prefix, suffix in _NAMES:
                setter = getattr(lib, f"{prefix}openblas_set_num_threads{suffix}", None)
                getter = getattr(lib, f"{prefix}openblas_get_num_threads{suffix}", None)
                if setter is not None and getter is not None:
                    setter.argtypes, setter.restype = [ctypes.c_int], None
                    getter.argtypes, getter.restype = [], ctypes.c_int
                    found.append((setter, getter))
                    break
        _libraries = found
    return _libraries


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """Run the block with numpy's OpenBLAS on one thread, then give it back the count it had (once the last
    of the blocks running at once ends), unless the environment sets the count."""
    global _held
    if any(os.environ.get(name) for name in ENVIRONMENT):
        yield
        return
    with _lock:
        if _held == 0:
            _saved[:] = [(setter, getter()) for setter, getter in _openblas_threads()]
            for setter, _ in _saved:
                setter(1)
        _held += 1
    try:
        yield
    finally:
        with _lock:
            _held -= 1
            if _held == 0:
                for setter, count in _saved:
                    setter(count)
                _saved.clear()
