"""Shared fixtures: tiny synthetic data roots and MPII annotation fixtures. Imports only what the board has
(numpy, OpenCV): `make test-board-py` loads this file under Python 3.10 without torch or onnx."""

from __future__ import annotations

import builtins
import contextlib
import errno
import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest

from dpupose.data.synthetic import SynthSpec, generate

BOARD_PY_MARK = "pytestmark = pytest.mark.board_py"

# A process started with SIGINT ignored (a shell script's `make test &`: without job control the shell
# ignores SIGINT in background commands) gets no KeyboardInterrupt from Python, and every test of what
# Ctrl-C leaves behind failed there ("DID NOT RAISE KeyboardInterrupt"). The tests send SIGINT themselves,
# so they take Python's own handler whatever the disposition they were started with.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def _the_current_folder_is_put_back():
    """A test that changes the process's folder (os.chdir) without putting it back makes every later test run
    from there, and the one that reads a path relative to the checkout fails far from the cause: it is put back,
    and the test that moved it fails by name (monkeypatch.chdir puts it back itself)."""
    before = os.getcwd()
    yield
    after = os.getcwd()
    if after != before:
        os.chdir(before)
        pytest.fail(f"the test left the process in {after} (it started in {before}): use monkeypatch.chdir")


class Hung(BaseException):
    """A test's own wait limit (hang_guard) ran out: not an Exception, so no except clause in the code under test
    takes it for an error of its own."""


@pytest.fixture
def hang_guard():
    """guard(seconds, what): a block that raises Hung(what) after `seconds` (a command that waits on a FIFO for
    ever), sooner and by name, where pytest-timeout's limit (300 s) would fail the whole test. Both use SIGALRM's
    one timer: pytest-timeout's is put back after the block, less the time the block took, where a test's own
    signal.alarm(0) had cancelled it, leaving the rest of the test without a guard."""
    import time

    @contextlib.contextmanager
    def guard(seconds: float, what: str):
        def hung(signum, frame):
            raise Hung(what)

        previous = signal.signal(signal.SIGALRM, hung)
        pending, _ = signal.setitimer(signal.ITIMER_REAL, seconds)  # pytest-timeout's, 0 without it
        start = time.monotonic()
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
            if pending:  # at once, if it ran out meanwhile: the test is past pytest-timeout's limit
                signal.setitimer(signal.ITIMER_REAL, max(pending - (time.monotonic() - start), 1e-3))

    return guard


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """With `-m board_py` (make test-board-py: Python 3.10, no torch or onnx) only the test modules marked
    board_py at module level are imported: the others import host packages, and their tests would all be
    deselected anyway."""
    if config.option.markexpr != "board_py":
        return None
    if collection_path.is_dir():
        return True if collection_path.name == "boardtests" else None
    if collection_path.name.startswith("test_") and collection_path.suffix == ".py":
        return True if BOARD_PY_MARK not in collection_path.read_text(encoding="utf-8") else None
    return None


@pytest.fixture
def disk_events(monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    """Records ("fsync", inode) and ("replace", source inode, destination) in the order they happen."""
    events: list[tuple] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append(("fsync", os.fstat(fd).st_ino))
        real_fsync(fd)

    def replace(src, dst) -> None:
        events.append(("replace", os.stat(src).st_ino, str(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    return events


@pytest.fixture
def small_fs(tmp_path: Path):
    """mount(kib, read_only=False): a fresh tmpfs of `kib` KiB (a real full disk, or a real read-only file
    system) under tmp_path, unmounted at the end; the test is skipped where mounting is not permitted."""
    import subprocess

    mounted: list[Path] = []

    def mount(kib: int, read_only: bool = False) -> Path:
        point = tmp_path / f"fs{len(mounted)}"
        point.mkdir()
        argv = ["mount", "-t", "tmpfs", "-o", f"size={kib}k", "tmpfs", str(point)]
        if os.geteuid() != 0:  # as an ordinary user's `make test`
            pytest.skip("needs root: it mounts a small tmpfs (a real full or read-only file system)")
        proc = subprocess.run(argv, capture_output=True, text=True)
        if proc.returncode != 0:  # root in a container without CAP_SYS_ADMIN, say
            pytest.skip(f"mounting a tmpfs is not permitted here: {proc.stderr.strip()}")
        mounted.append(point)
        if read_only:
            subprocess.run(["mount", "-o", "remount,ro", str(point)], check=True, capture_output=True)
        return point

    yield mount
    for point in reversed(mounted):
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


@pytest.fixture
def bind_mount(tmp_path: Path):
    """bind(folder): `folder` bind-mounted at a new folder under tmp_path (returned), a name of it that real paths
    do not tie to it, unmounted at the end; the test is skipped where mounting is not permitted."""
    import subprocess

    mounted: list[Path] = []

    def bind(folder: Path) -> Path:
        point = tmp_path / f"bound{len(mounted)}"
        point.mkdir()
        if os.geteuid() != 0:  # as an ordinary user's `make test`
            pytest.skip("needs root: it bind-mounts a folder")
        proc = subprocess.run(["mount", "--bind", str(folder), str(point)], capture_output=True, text=True)
        if proc.returncode != 0:  # root in a container without CAP_SYS_ADMIN, say
            pytest.skip(f"bind-mounting a folder is not permitted here: {proc.stderr.strip()}")
        mounted.append(point)
        return point

    yield bind
    for point in reversed(mounted):
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


def fill(folder: Path, leave: int = 0) -> None:
    """Fill the file system of `folder` until at most `leave` bytes are free (a file named .filler)."""
    st = os.statvfs(folder)
    size = max(0, st.f_bavail * st.f_frsize - leave)
    with open(folder / ".filler", "wb", buffering=0) as f, contextlib.suppress(OSError):
        f.write(bytes(size))  # an error: the last block did not fit, as full as it gets


class FullDiskFile:
    """A file on a disk that takes `room[0]` more bytes (one list shared by every file on that disk), then
    fails as a full one does: what fits is written, the rest is an ENOSPC that names no file."""

    def __init__(self, f, room: list[int]) -> None:
        self.f, self.room = f, room

    def write(self, data) -> int:
        data = bytes(data)
        fits = min(len(data), self.room[0])
        self.f.write(data[:fits])
        self.room[0] -= fits
        if fits < len(data):
            raise OSError(errno.ENOSPC, "No space left on device")
        return fits

    def __getattr__(self, name: str):
        return getattr(self.f, name)

    def __enter__(self) -> FullDiskFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.f.close()


def full_disk_open(room: int, under: Path | None = None):
    """A stand-in for `open` whose files opened for writing (under the folder `under`, or anywhere) are on
    a disk with `room` bytes left in all (FullDiskFile); every other file is opened as usual."""
    real_open = builtins.open
    left = [room]

    def opener(file, mode="r", *args, **kwargs):
        f = real_open(file, mode, *args, **kwargs)
        if "w" in mode and (under is None or str(file).startswith(str(under))):
            return FullDiskFile(f, left)
        return f

    return opener


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic data root: 24 training and 12 validation scenes."""
    root = tmp_path_factory.mktemp("synth") / "root"
    return generate(root, SynthSpec(seed=7, num_train=24, num_valid=12, image_size=128), workers=1)


def write_mpii_json(root: Path, records: list[dict], split: str = "valid") -> Path:
    (root / "annot").mkdir(parents=True, exist_ok=True)
    path = root / "annot" / f"{split}.json"
    path.write_text(json.dumps(records))
    return path


def mat_struct(**fields: object) -> np.ndarray:
    """A 1x1 MATLAB struct for scipy.io.savemat."""
    arr = np.empty((1, 1), dtype=[(k, "O") for k in fields])
    for k, v in fields.items():
        arr[0, 0][k] = v
    return arr


def mat_struct_array(items: list[dict]) -> np.ndarray:
    keys = list(items[0])
    arr = np.empty((1, len(items)), dtype=[(k, "O") for k in keys])
    for i, item in enumerate(items):
        for k in keys:
            arr[0, i][k] = item[k]
    return arr
