"""Read-back verification: does the target hold what was written?

Before reading, the target's cached pages are dropped (`posix_fadvise(DONTNEED)` after the writer's
fsync), so the bytes come from the card rather than from the kernel's page cache. Three checks:
- `verify_digests`: SHA-256 of every 4 MiB chunk against the digests taken while copying;
- `verify_bmap`: every mapped range against the block map's checksums (after `bmaptool copy`);
- `compare_with_image`: the target against the image stream itself, byte by byte (`sdcard verify`).
A mismatch raises VerificationFailed (a DeviceError) naming the byte range.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

from dpupose.board.bmap import Bmap
from dpupose.board.images import ImageInfo, image_reader, read_chunk
from dpupose.board.progress import Progress
from dpupose.errors import DeviceError
from dpupose.fsio import signals_deferred

CHUNK = 4 * 1024 * 1024


class VerificationFailed(DeviceError):
    """The target does not hold the image: bytes that differ, or a target that ends before the image does (a
    failed check, which `sdcard verify` reports with exit status 1; a target that cannot be read is bad input).
    `offset` is the first differing byte (None when the target ends early)."""

    offset: int | None = None


def _open_uncached(target: Path) -> int:
    """A descriptor reading `target` past the page cache. The caller opens it with signals deferred and closes it
    in its own frame's finally (a Ctrl-C or SIGTERM as os.open returned, before a name held the descriptor, left
    the card open for the life of a notebook's process), not in a generator context manager's __exit__: one a
    signal began, before it resumed the generator, left the card open until the generator was collected, which
    the exception's traceback (a notebook's last exception) put off for as long as it was kept."""
    try:
        fd = os.open(target, os.O_RDONLY)
    except OSError as exc:
        raise DeviceError(f"cannot read {target} back for verification: {exc.strerror}") from None
    # Where fadvise is not supported the read-back may come from the cache.
    with contextlib.suppress(OSError, AttributeError):
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    return fd


def _pread_exact(fd: int, length: int, offset: int, target: Path) -> bytes:
    parts = []
    got = 0
    while got < length:
        try:
            data = os.pread(fd, length - got, offset + got)
        except OSError as exc:
            raise DeviceError(f"read error at byte {offset + got} of {target}: {exc.strerror}") from None
        if not data:
            raise VerificationFailed(
                f"verification failed: {target} ends at byte {offset + got}, before the image does "
                "(it is smaller than the image, or the write stopped early)"
            )
        parts.append(data)
        got += len(data)
    return b"".join(parts)


def _mismatch(target: Path, offset: int, length: int) -> VerificationFailed:
    exc = VerificationFailed(
        f"verification failed: bytes {offset}-{offset + length - 1} of {target} differ from the image; "
        "the card may be failing or fake (its real capacity smaller than claimed): flash again or use "
        "another card"
    )
    exc.offset = offset
    return exc


def chunk_digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def verify_digests(
    target: Path, size: int, digests: Sequence[bytes], progress: Progress | None = None, chunk: int = CHUNK
) -> None:
    """Check bytes [0, size) of target chunk by chunk against `digests` (SHA-256 of each chunk)."""
    if len(digests) != (size + chunk - 1) // chunk:
        raise ValueError("digest count does not match the size")
    fd: int | None = None
    try:
        with signals_deferred():  # until `fd` names the descriptor, for the finally to close it: see _open_uncached
            fd = _open_uncached(target)
        for i, want in enumerate(digests):
            offset = i * chunk
            length = min(chunk, size - offset)
            data = _pread_exact(fd, length, offset, target)
            if chunk_digest(data) != want:
                raise _mismatch(target, offset, length)
            if progress:
                progress.update(length)
    finally:
        if fd is not None:
            os.close(fd)


def verify_bmap(target: Path, bmap: Bmap, progress: Progress | None = None) -> None:
    """Check every mapped range of target against the block map's per-range checksum."""
    fd: int | None = None
    try:
        with signals_deferred():  # until `fd` names the descriptor, for the finally to close it: see _open_uncached
            fd = _open_uncached(target)
        for offset, length, checksum in bmap.byte_ranges():
            if checksum is None:
                raise ValueError("range without checksum")
            h = hashlib.new(bmap.checksum_type)
            done = 0
            while done < length:
                n = min(CHUNK, length - done)
                h.update(_pread_exact(fd, n, offset + done, target))
                done += n
                if progress:
                    progress.update(n)
            if h.hexdigest() != checksum.lower():
                raise _mismatch(target, offset, length)
    finally:
        if fd is not None:
            os.close(fd)


def compare_with_image(
    info: ImageInfo,
    target: Path,
    ranges: Sequence[tuple[int, int]] | None = None,
    progress: Progress | None = None,
) -> None:
    """Check target against the image's raw bytes; only within `ranges` (offset, length) if given."""
    wanted = sorted(ranges) if ranges is not None else [(0, info.size)]
    buf = bytearray(CHUNK)
    fd: int | None = None
    try:
        with signals_deferred():  # until `fd` names the descriptor, for the finally to close it: see _open_uncached
            fd = _open_uncached(target)
        with open(info.path, "rb") as f:  # closed in this frame: see image_reader
            stream = image_reader(info, f)
            pos = 0
            while pos < info.size:
                n = read_chunk(stream, buf, info)
                if n == 0:
                    break
                for start, length in wanted:
                    lo, hi = max(start, pos), min(start + length, pos + n)
                    if lo >= hi:
                        continue
                    got, want = _pread_exact(fd, hi - lo, lo, target), bytes(buf[lo - pos : hi - pos])
                    if got != want:
                        first = next(i for i, (x, y) in enumerate(zip(got, want)) if x != y)
                        raise _mismatch(target, lo + first, 1)
                pos += n
                if progress:
                    progress.update(n)
    finally:
        if fd is not None:
            os.close(fd)
