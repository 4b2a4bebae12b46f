"""Read-back verification (board/verify.py) against files made here of random bytes, with digests and block map
checksums taken by hashlib here: the last chunk or range shorter than the others, ranges that cross a 4 MiB
chunk, a difference at the last byte, the byte ranges and offsets named, the progress counted, and the page
cache dropped before the first read. No image tools needed: the image is a raw file of no partition table."""

from __future__ import annotations

import errno
import hashlib
import os
import re

import numpy as np
import pytest

from dpupose.board.bmap import Bmap, BmapRange
from dpupose.board.images import ImageInfo, ImageKind
from dpupose.board.verify import CHUNK, VerificationFailed, compare_with_image, verify_bmap, verify_digests
from dpupose.errors import DeviceError


class Counted:
    """A progress bar that keeps the steps it was given."""

    def __init__(self) -> None:
        self.steps: list[int] = []

    def update(self, n: int) -> None:
        self.steps.append(n)


def random_file(path, size: int, seed: int = 0) -> bytes:
    data = np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes()
    path.write_bytes(data)
    return data


def flip(path, offset: int) -> None:
    with path.open("r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x40]))


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def test_digests_of_a_size_that_is_not_a_whole_number_of_chunks(tmp_path):
    """10,000 bytes in chunks of 4096: two whole chunks and one of 1808 bytes (8192-9999)."""
    target = tmp_path / "card.img"
    data = random_file(target, 10_000)
    digests = [sha256(data[0:4096]), sha256(data[4096:8192]), sha256(data[8192:10_000])]
    progress = Counted()
    verify_digests(target, 10_000, digests, progress, chunk=4096)
    assert progress.steps == [4096, 4096, 1808]
    for wrong in (digests[:2], [*digests, digests[0]]):  # a digest short, or one too many: not checked in part
        with pytest.raises(ValueError, match="digest count does not match the size"):
            verify_digests(target, 10_000, wrong, chunk=4096)
    flip(target, 9000)
    with pytest.raises(VerificationFailed) as exc:
        verify_digests(target, 10_000, digests, chunk=4096)
    assert str(exc.value).startswith(f"verification failed: bytes 8192-9999 of {target} differ from the image;")
    assert exc.value.offset == 8192
    target.write_bytes(data[:9000])  # the target ends inside the last chunk
    with pytest.raises(VerificationFailed) as exc:
        verify_digests(target, 10_000, digests, chunk=4096)
    assert str(exc.value).startswith(f"verification failed: {target} ends at byte 9000, before the image does")
    assert exc.value.offset is None


def test_a_read_error_names_its_byte_and_a_target_that_cannot_be_opened_is_named(tmp_path, monkeypatch):
    target = tmp_path / "card.img"
    data = random_file(target, 10_000)
    digests = [sha256(data[i : i + 4096]) for i in range(0, 10_000, 4096)]
    real = os.pread

    def pread(fd, n, offset):  # the card fails from byte 5000 on
        if offset + n > 5000:
            if offset < 5000:
                return real(fd, 5000 - offset, offset)
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real(fd, n, offset)

    monkeypatch.setattr(os, "pread", pread)
    message = rf"^read error at byte 5000 of {re.escape(str(target))}: Input/output error$"
    with pytest.raises(DeviceError, match=message):
        verify_digests(target, 10_000, digests, chunk=4096)
    monkeypatch.undo()
    gone = tmp_path / "gone.img"
    with pytest.raises(DeviceError) as exc:
        verify_digests(gone, 10_000, digests, chunk=4096)
    assert str(exc.value) == f"cannot read {gone} back for verification: No such file or directory"
    assert not isinstance(exc.value, VerificationFailed)  # bad input, not a failed check


def test_each_check_drops_the_target_s_cached_pages_before_reading(tmp_path, monkeypatch):
    """Read from the page cache, the bytes just written would verify whatever the card holds."""
    target = tmp_path / "card.img"
    data = random_file(target, 10_000)
    events = []
    real_pread = os.pread
    monkeypatch.setattr(os, "posix_fadvise", lambda fd, offset, length, advice: events.append((offset, length, advice)))
    monkeypatch.setattr(os, "pread", lambda fd, n, offset: (events.append("read"), real_pread(fd, n, offset))[1])
    checks = {
        "digests": lambda: verify_digests(target, 10_000, [sha256(data)], chunk=16_384),
        "bmap": lambda: verify_bmap(target, Bmap(10_000, 4096, "sha256", (BmapRange(0, 2, sha256(data).hex()),))),
        "compare": lambda: compare_with_image(ImageInfo(target, ImageKind.RAW, 10_000), target),
    }
    for name, check in checks.items():
        events.clear()
        check()
        assert events[0] == (0, 0, os.POSIX_FADV_DONTNEED) and events[1:] == ["read"] * (len(events) - 1), name
        assert len(events) > 1, name


def test_a_block_map_s_ranges_longer_than_a_chunk_upper_case_checksums_and_holes(tmp_path):
    """Blocks of 4096 over 6 MiB + 5000 bytes: range 0-1535 (6 MiB, read in a 4 MiB and a 2 MiB piece) with its
    checksum in capitals, block 1536 a hole, block 1537 clipped to the image's end (904 bytes)."""
    size = 6 * 1024 * 1024 + 5000
    target = tmp_path / "card.img"
    data = random_file(target, size)
    last = 1537 * 4096
    bmap = Bmap(
        size,
        4096,
        "sha256",
        (
            BmapRange(0, 1535, hashlib.sha256(data[: 6 * 1024 * 1024]).hexdigest().upper()),
            BmapRange(1537, 1537, hashlib.sha256(data[last:]).hexdigest()),
        ),
    )
    progress = Counted()
    verify_bmap(target, bmap, progress)
    assert progress.steps == [CHUNK, 2 * 1024 * 1024, size - last] and size - last == 904
    flip(target, 6 * 1024 * 1024 + 10)  # in the hole: not checked
    verify_bmap(target, bmap)
    flip(target, size - 1)
    with pytest.raises(VerificationFailed, match=rf"bytes {last}-{size - 1} of .* differ from the image"):
        verify_bmap(target, bmap)
    with pytest.raises(ValueError, match="range without checksum"):
        verify_bmap(target, Bmap(size, 4096, "sha256", (BmapRange(0, 0, None),)))


def test_comparing_with_the_image_within_ranges(tmp_path):
    """An image of two chunks and 5000 bytes; the ranges (given out of order) are bytes CHUNK+100 to CHUNK+149
    and CHUNK-10 to CHUNK+9 (across the first chunk's end). Differences outside them pass; the first differing
    byte inside them is named, the last byte of each range included."""
    size = 2 * CHUNK + 5000
    image = tmp_path / "pynq.img"
    data = random_file(image, size)
    info = ImageInfo(image, ImageKind.RAW, size)
    target = tmp_path / "card.img"
    target.write_bytes(data)
    progress = Counted()
    compare_with_image(info, target, progress=progress)
    assert progress.steps == [CHUNK, CHUNK, 5000]
    ranges = [(CHUNK + 100, 50), (CHUNK - 10, 20)]
    for outside in (0, CHUNK - 11, CHUNK + 10, CHUNK + 150, size - 1):
        flip(target, outside)
    compare_with_image(info, target, ranges)
    with pytest.raises(VerificationFailed) as exc:  # not checked against the image as a whole: the last byte
        compare_with_image(info, target)
    assert exc.value.offset == 0
    for inside in (CHUNK + 149, CHUNK + 120, CHUNK + 5):
        flip(target, inside)
        with pytest.raises(VerificationFailed) as exc:
            compare_with_image(info, target, ranges)
        assert exc.value.offset == inside and f"bytes {inside}-{inside} of" in str(exc.value)
    target.write_bytes(data)
    flip(target, size - 1)  # the image's last byte
    with pytest.raises(VerificationFailed, match=rf"bytes {size - 1}-{size - 1} of "):
        compare_with_image(info, target)


# --- found by a mutation audit: behaviour no test above pinned ---------------------------------


@pytest.mark.parametrize("unsupported", ["refused", "absent"])
def test_each_check_still_reads_where_the_page_cache_cannot_be_dropped(tmp_path, monkeypatch, unsupported):
    """Where fadvise is refused (a file system without it: EINVAL, ESPIPE) or absent from os (macOS), the read-back
    goes on from what the kernel gives: a card that matches passes and one that differs still fails."""
    target = tmp_path / "card.img"
    data = random_file(target, 10_000)
    if unsupported == "refused":

        def refuse(fd, offset, length, advice):
            raise OSError(errno.EINVAL, "Invalid argument")

        monkeypatch.setattr(os, "posix_fadvise", refuse)
    else:
        monkeypatch.delattr(os, "posix_fadvise")
    checks = {
        "digests": lambda: verify_digests(target, 10_000, [sha256(data)], chunk=16_384),
        "bmap": lambda: verify_bmap(target, Bmap(10_000, 4096, "sha256", (BmapRange(0, 2, sha256(data).hex()),))),
        "compare": lambda: compare_with_image(ImageInfo(image, ImageKind.RAW, 10_000), target),
    }
    image = tmp_path / "pynq.img"
    image.write_bytes(data)
    for check in checks.values():
        check()
    flip(target, 9_999)
    for name, check in checks.items():
        with pytest.raises(VerificationFailed):
            check()
        assert name


def test_each_check_closes_the_target_whether_it_passes_or_fails(tmp_path):
    """The read-back's descriptor (an int from os.open, which nothing closes but the check itself) is closed as each
    check ends, passed, failed or refused: none of the target's is left in /proc/self/fd, the exception kept."""
    target = tmp_path / "card.img"
    data = random_file(target, 10_000)
    image = tmp_path / "pynq.img"
    image.write_bytes(data)

    def open_of_target() -> int:
        real = os.path.realpath(target)
        links = [f"/proc/self/fd/{fd}" for fd in os.listdir("/proc/self/fd")]
        return sum(os.path.exists(link) and os.readlink(link) == real for link in links)

    checks = {
        "digests": lambda: verify_digests(target, 10_000, [sha256(data)], chunk=16_384),
        "bmap": lambda: verify_bmap(target, Bmap(10_000, 4096, "sha256", (BmapRange(0, 2, sha256(data).hex()),))),
        "bmap without checksum": lambda: verify_bmap(target, Bmap(10_000, 4096, "sha256", (BmapRange(0, 2, None),))),
        "compare": lambda: compare_with_image(ImageInfo(image, ImageKind.RAW, 10_000), target),
    }
    kept = []
    for name, check in checks.items():
        try:
            check()
        except ValueError as exc:
            kept.append(exc)
        assert open_of_target() == 0, name
    flip(target, 9_999)
    for name, check in checks.items():
        with pytest.raises((VerificationFailed, ValueError)) as exc:
            check()
        kept.append(exc.value)
        assert open_of_target() == 0, name
    assert len(kept) == 5


@pytest.mark.parametrize("check", ["digests", "bmap", "compare"])
def test_ctrl_c_as_the_target_is_opened_is_held_back_until_it_can_be_closed(tmp_path, monkeypatch, check):
    """A Ctrl-C that lands as os.open returns the read-back's descriptor, before a name holds it, is held back until
    the finally that closes it can: the check stops (KeyboardInterrupt) with none of the target's left open."""
    import signal

    target = tmp_path / "card.img"
    data = random_file(target, 10_000)
    image = tmp_path / "pynq.img"
    image.write_bytes(data)
    real, real_open = os.path.realpath(target), os.open

    def open_(path, flags, *args, **kwargs):
        fd = real_open(path, flags, *args, **kwargs)
        if os.path.realpath(path) == real:
            signal.raise_signal(signal.SIGINT)
        return fd

    def open_of_target() -> int:
        links = [f"/proc/self/fd/{fd}" for fd in os.listdir("/proc/self/fd")]
        return sum(os.path.exists(link) and os.readlink(link) == real for link in links)

    run = {
        "digests": lambda: verify_digests(target, 10_000, [sha256(data)], chunk=16_384),
        "bmap": lambda: verify_bmap(target, Bmap(10_000, 4096, "sha256", (BmapRange(0, 2, sha256(data).hex()),))),
        "compare": lambda: compare_with_image(ImageInfo(image, ImageKind.RAW, 10_000), target),
    }[check]
    monkeypatch.setattr(os, "open", open_)
    with pytest.raises(KeyboardInterrupt) as kept:
        run()
    assert open_of_target() == 0 and kept.value is not None
